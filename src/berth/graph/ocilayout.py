"""OCI image layouts in ``docker save``/``docker load`` archives.

Saving with ``format=oci`` writes what dockerd 25+ writes: an OCI image layout that is also a
docker-archive, so both ``docker load`` (any version) and OCI tools (``skopeo copy
oci-archive:...``) read it::

    oci-layout               {"imageLayoutVersion": "1.0.0"}
    index.json               one descriptor per tag (or per untagged image), annotated with
                             io.containerd.image.name and org.opencontainers.image.ref.name
    manifest.json            the docker-archive manifest, pointing into blobs/
    blobs/sha256/<hex>       configs, OCI manifests, and each layer's exact tar (uncompressed)

Loading takes an archive with ``index.json`` and no ``manifest.json`` (skopeo's oci-archive, an
``oci:`` directory tarred): nested indexes are resolved to linux/amd64, every blob is checked
against its digest before use, layers may be plain, gzip or zstd tars. An image is named by its
``io.containerd.image.name`` annotation, or by ``org.opencontainers.image.ref.name`` when that is
a reference with a repository (``sk:1``, what ``skopeo copy ... oci-archive:F:sk:1`` writes);
a bare tag (``latest``) alone names nothing and the image is loaded untagged (``Loaded image ID:``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from berth.errors import InvalidParameter
from berth.graph import reference
from berth.graph.configcheck import MAX_CONFIG_SIZE, check_config, parse_json

if TYPE_CHECKING:
    from berth.graph.imagestore import ImageStore
    from berth.graph.layerstore import LayerStore

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
NAME_ANNOTATION = "io.containerd.image.name"
REF_ANNOTATION = "org.opencontainers.image.ref.name"
MAX_NESTING = 4


# ---- saving ------------------------------------------------------------------------------------


def save(
    images: ImageStore, layer_store: LayerStore, selection: list[tuple[str, list[reference.Reference]]], out: BinaryIO
) -> None:
    written: set[str] = set()
    index: list[dict[str, Any]] = []
    manifest_json: list[dict[str, Any]] = []
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _bytes(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        _dir(tar, "blobs")
        _dir(tar, "blobs/sha256")
        for image_id, refs in selection:
            config = images.config_bytes(image_id)
            doc = json.loads(config)
            diff_ids = list((doc.get("rootfs") or {}).get("diff_ids") or [])
            _blob(tar, config, written)
            layers = []
            for diff_id in diff_ids:
                path = layer_store.tar(diff_id)
                hex_ = diff_id.removeprefix("sha256:")
                if hex_ not in written:
                    info = tar.gettarinfo(str(path), arcname=f"blobs/sha256/{hex_}")
                    info.mode, info.uid, info.gid, info.uname, info.gname, info.mtime = 0o644, 0, 0, "", "", 0
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                    written.add(hex_)
                layers.append({"mediaType": OCI_LAYER, "digest": diff_id, "size": path.stat().st_size})
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": image_id, "size": len(config)},
                "layers": layers,
            }).encode()
            mdigest = _blob(tar, manifest, written)
            desc = {"mediaType": OCI_MANIFEST, "digest": mdigest, "size": len(manifest)}
            for ref in refs:
                index.append({**desc, "annotations": {NAME_ANNOTATION: ref.string(), REF_ANNOTATION: ref.tag}})
            if not refs:
                index.append(desc)
            manifest_json.append({
                "Config": f"blobs/sha256/{image_id.removeprefix('sha256:')}",
                "RepoTags": [r.familiar() for r in refs] or None,
                "Layers": [f"blobs/sha256/{d.removeprefix('sha256:')}" for d in diff_ids],
            })
        _bytes(tar, "index.json", json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index}).encode())
        _bytes(tar, "manifest.json", json.dumps(manifest_json).encode())


def _blob(tar: tarfile.TarFile, data: bytes, written: set[str]) -> str:
    hex_ = hashlib.sha256(data).hexdigest()
    if hex_ not in written:
        _bytes(tar, f"blobs/sha256/{hex_}", data)
        written.add(hex_)
    return f"sha256:{hex_}"


def _bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def _dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    tar.addfile(info)


# ---- loading -----------------------------------------------------------------------------------


class OCIImage:
    def __init__(self, config: bytes, layers: list[tuple[Path, str]], tags: list[reference.Reference]) -> None:
        self.config, self.layers, self.tags = config, layers, tags

    def open_layer(self, index: int) -> BinaryIO:
        path, media_type = self.layers[index]
        raw = open(path, "rb")
        if media_type.endswith(("+zstd", ".zstd")):
            import zstandard

            return zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
        if media_type.endswith("gzip"):
            return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
        return raw


def images(root: Path) -> list[OCIImage]:
    """Every image the layout at ``root`` names, checked (shapes, digests, sizes) before use."""
    layout = root / "oci-layout"
    if layout.is_file():
        doc = parse_json(layout.read_bytes()[:4096], "load: oci-layout")
        if not isinstance(doc, dict) or not isinstance(doc.get("imageLayoutVersion"), str):
            raise InvalidParameter("load: oci-layout: imageLayoutVersion is missing")
    index = _json_file(root / "index.json", "load: index.json")
    out: list[OCIImage] = []
    for desc, names in _manifests(root, index, 0, {}):
        out.append(_image(root, desc, names))
    if not out:
        raise InvalidParameter("load: index.json lists no image for linux/amd64")
    return out


def _manifests(root: Path, index: Any, depth: int, inherited: dict[str, str]) -> list[tuple[dict[str, Any], list[str]]]:
    if depth > MAX_NESTING:
        raise InvalidParameter("load: index.json: indexes nested too deep")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise InvalidParameter("load: index.json: manifests must be a list")
    found: list[tuple[dict[str, Any], list[str]]] = []
    for i, desc in enumerate(index["manifests"]):
        if not isinstance(desc, dict) or not isinstance(desc.get("mediaType"), str):
            raise InvalidParameter(f"load: index.json: manifests[{i}] is not a descriptor")
        raw = desc.get("annotations")
        annotations: dict[str, str] = {k: v for k, v in raw.items() if isinstance(v, str)} if isinstance(raw, dict) else {}
        names = _names({**inherited, **annotations})
        platform = desc.get("platform")
        if isinstance(platform, dict) and (platform.get("os"), platform.get("architecture")) != ("linux", "amd64"):
            continue
        if desc["mediaType"] in (OCI_INDEX, DOCKER_LIST):
            child = _json_file(_blob_path(root, desc), f"load: index {desc.get('digest')}")
            nested = _manifests(root, child, depth + 1, annotations)
            # a multi-platform index: one image, named as the outer descriptor says
            found += nested[:1]
        elif desc["mediaType"] in (OCI_MANIFEST, DOCKER_MANIFEST):
            found.append((desc, [n for n in names]))
    merged: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for desc, names in found:
        key = str(desc.get("digest"))
        if key in merged:
            merged[key][1].extend(n for n in names if n not in merged[key][1])
        else:
            merged[key] = (desc, list(names))
    return list(merged.values())


def _names(annotations: dict[str, str]) -> list[str]:
    name = annotations.get(NAME_ANNOTATION, "")
    if not name:
        ref = annotations.get(REF_ANNOTATION, "")
        if "/" in ref or ":" in ref:
            name = ref
    return [name] if name else []


def _image(root: Path, desc: dict[str, Any], names: list[str]) -> OCIImage:
    manifest = _json_file(_blob_path(root, desc), f"load: manifest {desc.get('digest')}")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("config"), dict) \
            or not isinstance(manifest.get("layers"), list):
        raise InvalidParameter(f"load: manifest {desc.get('digest')}: config and layers are required")
    config_path = _blob_path(root, manifest["config"])
    config = config_path.read_bytes()
    diff_ids = check_config(parse_json(config, "load: image config"), "load: image config")
    if len(diff_ids) != len(manifest["layers"]):
        raise InvalidParameter(
            f"invalid manifest, layers length mismatch: expected {len(diff_ids)}, got {len(manifest['layers'])}")
    layers = []
    for i, layer in enumerate(manifest["layers"]):
        if not isinstance(layer, dict) or not isinstance(layer.get("mediaType"), str):
            raise InvalidParameter(f"load: manifest layer {i} is not a descriptor")
        media_type = layer["mediaType"]
        if not media_type.endswith(("tar", "tar+gzip", "tar.gzip", "tar+zstd")):
            raise InvalidParameter(f"load: unsupported layer media type {media_type[:100]!r}")
        layers.append((_blob_path(root, layer), media_type))
    tags = []
    for name in names:
        try:
            tags.append(reference.parse(name).with_default_tag())
        except InvalidParameter as exc:
            raise InvalidParameter(f"load: image name {name[:200]!r}: {exc.message}") from None
    return OCIImage(config, layers, tags)


def _blob_path(root: Path, desc: Any) -> Path:
    """The blob a descriptor names, its size and digest verified."""
    if not isinstance(desc, dict) or not isinstance(desc.get("digest"), str):
        raise InvalidParameter("load: a descriptor has no digest")
    algorithm, _, hex_ = desc["digest"].partition(":")
    if algorithm not in ("sha256", "sha512") or not hex_ or not all(c in "0123456789abcdef" for c in hex_) \
            or len(hex_) != (64 if algorithm == "sha256" else 128):
        raise InvalidParameter(f"load: invalid digest {desc['digest'][:100]!r}")
    path: Path = root / "blobs" / str(algorithm) / str(hex_)
    if not path.is_file() or path.is_symlink():
        raise InvalidParameter(f"load: blob {desc['digest']} is not in the archive")
    size = desc.get("size")
    if isinstance(size, int) and path.stat().st_size != size:
        raise InvalidParameter(f"load: blob {desc['digest']} has {path.stat().st_size} bytes, not {size}")
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    if h.hexdigest() != hex_:
        raise InvalidParameter(f"load: blob {desc['digest']} does not match its digest")
    return path


def _json_file(path: Path, what: str) -> Any:
    if not path.is_file():
        raise InvalidParameter(f"{what}: not found in the archive")
    if path.stat().st_size > MAX_CONFIG_SIZE:
        raise InvalidParameter(f"{what}: over {MAX_CONFIG_SIZE} bytes")
    return parse_json(path.read_bytes(), what)
