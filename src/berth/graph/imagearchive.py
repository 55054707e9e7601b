"""``docker save`` / ``docker load``: the docker-archive tar format.

The model (Docker's ``image/tarexport``)::

    manifest.json            [{"Config": "<hex>.json", "RepoTags": ["busybox:latest"],
                               "Layers": ["<v1 id>/layer.tar", ...]}]
    repositories             {"busybox": {"latest": "<top v1 id>"}}
    <hex>.json               the image config, byte for byte (its sha256 is the image id)
    <v1 id>/VERSION, json, layer.tar      one directory per layer; layer.tar is the layer's
                                           exact tar (the graph keeps it), so diff ids match

Saving writes what the graph holds; loading extracts the archive to a temp dir (Python's
``data`` filter refuses absolute paths, links out and devices), then builds each image with
:meth:`Graph.create_image` (layers checked against the config's diff ids) and tags it.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from berth.errors import InvalidParameter, NotFound
from berth.graph import reference
from berth.graph.image import chain_ids, container_config, parse_rfc3339

if TYPE_CHECKING:
    from berth.graph.graph import Graph


def _selection(graph: Graph, names: list[str]) -> list[tuple[str, list[reference.Reference]]]:
    """Images to save with the tags to record, in first-seen order (Docker's ``parseNames``):
    a bare repository means all its tags; an id means the image without tags."""
    chosen: dict[str, list[reference.Reference]] = {}
    for name in names:
        ref = None if reference.full_id(name) else reference.parse(name)
        if ref is not None and not ref.tag and not ref.digest:
            tags = graph.db.tags_in_repository(ref.name)
            for tag in tags:
                chosen.setdefault(graph.db.tag_target(ref.name, tag) or "", []).append(
                    reference.Reference(ref.name, tag)
                )
            if tags:
                continue
        image_id = graph.resolve(name)
        refs = chosen.setdefault(image_id, [])
        if ref is not None and not ref.digest and not reference.is_id_prefix(image_id, name):
            if ref.with_default_tag() not in refs:
                refs.append(ref.with_default_tag())
    return [(image_id, refs) for image_id, refs in chosen.items() if image_id]


def save(graph: Graph, names: list[str], out: BinaryIO) -> None:
    """Write the images ``names`` (names, ids or bare repositories) as a docker-archive tar."""
    selection = _selection(graph, names)
    manifest: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    written: dict[str, str] = {}  # v1 id -> arcname of its layer.tar
    by_chain: dict[str, str] = {}  # chain id -> the one layer.tar holding its bytes
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for image_id, refs in selection:
            config = graph.config_bytes(image_id)
            doc = json.loads(config)
            mtime = _seconds(doc.get("created", ""))
            hex_id = image_id.removeprefix("sha256:")
            _add_bytes(tar, f"{hex_id}.json", config, mtime)
            diff_ids = list((doc.get("rootfs") or {}).get("diff_ids") or [])
            layers: list[str] = []
            parent = ""
            for index, (diff_id, chain) in enumerate(zip(diff_ids, chain_ids(diff_ids), strict=True)):
                top = index == len(diff_ids) - 1
                v1_id = hashlib.sha256(f"{parent} {chain} {image_id if top else ''}".encode()).hexdigest()
                layer_json = {
                    "id": v1_id,
                    **({"parent": parent} if parent else {}),
                    "created": doc.get("created", ""),
                    "container_config": container_config(),
                }
                if top:
                    layer_json.update({k: doc[k] for k in ("architecture", "os", "config") if k in doc})
                if v1_id not in written:
                    _add_dir(tar, v1_id, mtime)
                    _add_bytes(tar, f"{v1_id}/VERSION", b"1.0", mtime)
                    _add_bytes(tar, f"{v1_id}/json", json.dumps(layer_json).encode(), mtime)
                    if chain in by_chain:  # the same layer under another v1 id: link, as Docker does
                        link = tarfile.TarInfo(f"{v1_id}/layer.tar")
                        link.type, link.linkname, link.mtime = tarfile.SYMTYPE, f"../{by_chain[chain]}", mtime
                        tar.addfile(link)
                    else:
                        source = graph.layer_tar(diff_id)
                        info = tar.gettarinfo(str(source), arcname=f"{v1_id}/layer.tar")
                        info.mode, info.uid, info.gid, info.uname, info.gname, info.mtime = (
                            0o644,
                            0,
                            0,
                            "",
                            "",
                            mtime,
                        )
                        with open(source, "rb") as f:
                            tar.addfile(info, f)
                        by_chain[chain] = f"{v1_id}/layer.tar"
                    written[v1_id] = f"{v1_id}/layer.tar"
                layers.append(written[v1_id])
                parent = v1_id
            familiar = [r.familiar() for r in refs]
            manifest.append({"Config": f"{hex_id}.json", "RepoTags": familiar or None, "Layers": layers})
            for r in refs:
                if parent:
                    repositories.setdefault(r.familiar_name(), {})[r.tag] = parent
        _add_bytes(tar, "manifest.json", json.dumps(manifest).encode(), 0)
        if repositories:
            _add_bytes(tar, "repositories", json.dumps(repositories).encode(), 0)


def load(graph: Graph, stream: BinaryIO) -> list[str]:
    """Load a docker-archive tar (plain or compressed); return Docker's output lines
    (``Loaded image: busybox:latest`` / ``Loaded image ID: sha256:...``)."""
    tmp_root = graph.root / "tmp"
    tmp_root.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="load-", dir=tmp_root))
    try:
        try:
            with tarfile.open(fileobj=stream, mode="r|*") as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise InvalidParameter(f"load: invalid docker-archive tar: {exc}") from exc
        manifest_path = tmp / "manifest.json"
        if not manifest_path.is_file():
            raise InvalidParameter(
                "load: open manifest.json: no such file or directory (not a docker save archive)"
            )
        try:
            manifest = json.loads(manifest_path.read_bytes())
        except ValueError as exc:
            raise InvalidParameter(f"load: manifest.json: {exc}") from exc
        lines: list[str] = []
        for entry in manifest:
            lines += _load_one(graph, tmp, entry)
        return lines
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _load_one(graph: Graph, tmp: Path, entry: dict[str, Any]) -> list[str]:
    config_path = _inside(tmp, entry.get("Config", ""))
    config = config_path.read_bytes()
    try:
        diff_ids = json.loads(config)["rootfs"]["diff_ids"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidParameter(f"load: {entry.get('Config')}: not an image config: {exc}") from exc
    layers = entry.get("Layers") or []
    if len(layers) != len(diff_ids):
        raise InvalidParameter(
            f"invalid manifest, layers length mismatch: expected {len(diff_ids)}, got {len(layers)}"
        )
    paths = [_inside(tmp, layer) for layer in layers]
    image_id = graph.create_image(config, lambda index: open(paths[index], "rb"))
    lines = []
    for tag in entry.get("RepoTags") or []:
        ref = reference.parse_repository(tag)
        previous = graph.db.tag_target(ref.name, ref.tag)
        if previous is not None and previous != image_id:
            lines.append(
                f"The image {ref.familiar()} already exists, renaming the old one with ID {previous} to empty string"
            )
        graph.tag(image_id, ref.name, ref.tag)
        lines.append(f"Loaded image: {ref.familiar()}")
    if not entry.get("RepoTags"):
        lines.append(f"Loaded image ID: {image_id}")
    return lines


def _inside(root: Path, name: str) -> Path:
    path = (root / name).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        raise NotFound(f"load: {name!r} not found in the archive")
    return path


def _seconds(created: str) -> int:
    try:
        return max(parse_rfc3339(created) // 1_000_000_000, 0)
    except ValueError:
        return 0


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, mtime
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
    tar.addfile(info)
