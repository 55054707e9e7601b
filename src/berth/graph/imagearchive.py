"""``docker save`` / ``docker load``: the docker-archive tar format.

The model (Docker's ``image/tarexport``)::

    manifest.json            [{"Config": "<hex>.json", "RepoTags": ["busybox:latest"],
                               "Layers": ["<v1 id>/layer.tar", ...]}]
    repositories             {"busybox": {"latest": "<top v1 id>"}}
    <hex>.json               the image config, byte for byte (its sha256 is the image id)
    <v1 id>/VERSION, json, layer.tar      one directory per layer; layer.tar is the layer's
                                           exact tar (the graph keeps it), so diff ids match

Saving writes what the graph holds; loading extracts the archive to a temp dir (Python's
``data`` filter refuses absolute paths, links out and devices), checks the whole manifest (its
shape, every config, tag and layer file), then builds each image with
:meth:`Graph.create_image` (layers checked against the config's diff ids) and tags it. With
overlay2 each layer file is applied as soon as it is extracted, while the rest of the archive
still arrives (:mod:`berth.graph.ahead`), and the image takes those layers. A refused archive
leaves no image, layer or blob.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, cast

from berth.drivers.graph.archive import copy_data
from berth.drivers.graph.tarstream import HashingReader, StrictTarInfo, decompressed, short
from berth.errors import BerthError, InvalidParameter, NotFound
from berth.graph import reference
from berth.graph.ahead import LayersAhead
from berth.graph.budget import UnpackBudget
from berth.graph.configcheck import MAX_CONFIG_SIZE, check_config, json_kind, parse_json
from berth.graph.content import ContentStore
from berth.graph.image import chain_ids, container_config, parse_rfc3339
from berth.graph.imagestore import ImageStore
from berth.graph.layers import AheadLayer, OwnTar
from berth.graph.layerstore import LayerStore
from berth.graph.registration import create_image


@dataclass(frozen=True)
class Archives:
    """What save and load use of the graph: the image store (names, configs, tags), the layer
    store (the layers' tars, new layers), the content store, a scratch directory and the
    unpack limit."""

    images: ImageStore
    layers: LayerStore
    content: ContentStore
    tmp_root: Path
    max_import_size: int


def _selection(graph: Archives, names: list[str]) -> list[tuple[str, list[reference.Reference]]]:
    """Images to save with the tags to record, in first-seen order (Docker's ``parseNames``):
    a bare repository means all its tags; an id means the image without tags."""
    chosen: dict[str, list[reference.Reference]] = {}
    for name in names:
        ref = None if reference.full_id(name) else reference.parse(name)
        if ref is not None and not ref.tag and not ref.digest:
            tags = graph.images.tags_in_repository(ref.name)
            for tag in tags:
                chosen.setdefault(graph.images.tag_target(ref.name, tag) or "", []).append(
                    reference.Reference(ref.name, tag)
                )
            if tags:
                continue
        image_id = graph.images.resolve(name)
        refs = chosen.setdefault(image_id, [])
        if ref is not None and not ref.digest and not reference.is_id_prefix(image_id, name):
            if ref.with_default_tag() not in refs:
                refs.append(ref.with_default_tag())
    return [(image_id, refs) for image_id, refs in chosen.items() if image_id]


def save(graph: Archives, names: list[str], out: BinaryIO, oci: bool = False) -> None:
    """Write the images ``names`` (names, ids or bare repositories) as a docker-archive tar, or
    (``oci``) as an OCI image layout that is also a docker-archive (see ``ocilayout``)."""
    selection = _selection(graph, names)
    if oci:
        from berth.graph import ocilayout

        ocilayout.save(graph.images, graph.layers, selection, out)
        return
    manifest: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    written: dict[str, str] = {}  # v1 id -> arcname of its layer.tar
    by_chain: dict[str, str] = {}  # chain id -> the one layer.tar holding its bytes
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for image_id, refs in selection:
            config = graph.images.config_bytes(image_id)
            doc = json.loads(config)
            mtime = _seconds(doc.get("created", ""))
            hex_id = image_id.removeprefix("sha256:")
            _add_bytes(tar, f"{hex_id}.json", config, mtime)
            diff_ids = list((doc.get("rootfs") or {}).get("diff_ids") or [])
            layers: list[str] = []
            parent = ""
            chains = chain_ids(diff_ids)
            for index, (diff_id, chain, v1_id) in enumerate(zip(diff_ids, chains, _v1_ids(image_id, chains), strict=True)):
                top = index == len(diff_ids) - 1
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
                        source = graph.layers.tar(diff_id)
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


def _v1_ids(image_id: str, chains: list[str]) -> list[str]:
    """The v1 ids ``save`` names an image's layer dirs by: each from its parent's, its chain id
    and, for the top layer, the image id (so a dir name says which chain its layer.tar holds)."""
    ids: list[str] = []
    for index, chain in enumerate(chains):
        top = index == len(chains) - 1
        ids.append(hashlib.sha256(f"{ids[-1] if ids else ''} {chain} {image_id if top else ''}".encode()).hexdigest())
    return ids


class _Present:
    """Layer files of the archive the load does not need to write.

    ``save`` writes an image's config before its layers and names each ``<v1 id>/layer.tar``
    with a v1 id made from the layer's chain id (:func:`_v1_ids`). So once a config is in, the
    names of its layers' files say their chains; where the store has a chain, create_image will
    take that layer from the store (as dockerd does when a chain exists) and never read the
    file: its bytes are read past instead of written (and removed again). The layer is held
    until the load ends, so no prune takes it meanwhile; the file is an empty placeholder, which
    no image may open (a manifest naming it for another chain is refused)."""

    def __init__(self, layers: LayerStore) -> None:
        self._layers = layers
        self._chains: dict[str, str] = {}  # "<v1 id>/layer.tar" -> chain id
        self._held: list[str] = []
        self.placeholders: set[Path] = set()

    def config(self, path: Path, name: str) -> None:
        """An extracted file: where it is an image config, learn its layers' file names."""
        parts = PurePosixPath(name).parts
        if len(parts) != 1 or not parts[0].endswith(".json") or parts[0] == "manifest.json":
            return
        try:
            if path.stat().st_size > MAX_CONFIG_SIZE:
                return
            data = path.read_bytes()
            chains = chain_ids(check_config(parse_json(data, "load"), "load"))
        except (OSError, BerthError):
            return  # checked again, and refused, with the manifest
        image_id = "sha256:" + hashlib.sha256(data).hexdigest()
        for v1_id, chain in zip(_v1_ids(image_id, chains), chains, strict=True):
            self._chains.setdefault(f"{v1_id}/layer.tar", chain)

    def holds(self, name: str) -> bool:
        """The member ``name`` is the tar of a layer the store has (now held): skip its bytes."""
        chain = self._chains.get(str(PurePosixPath(name)))
        if chain is None:
            return False
        if self._layers.holds.claim(chain) is None:
            self._layers.holds.applied(chain)  # not in the store: the claim is not ours to keep
            return False
        self._held.append(chain)
        return True

    def release(self) -> None:
        self._layers.holds.release(self._held)
        self._held = []


def load(graph: Archives, stream: BinaryIO) -> list[str]:
    """Load a docker-archive tar (plain or compressed); return Docker's output lines
    (``Loaded image: busybox:latest`` / ``Loaded image ID: sha256:...``).

    The whole manifest -- its shape, every config, tag and layer path -- is checked before any
    layer is recorded, so a refused archive leaves nothing; what it unpacks, the archive and
    then each layer, is charged to one :class:`UnpackBudget`. With an ``independent_layers``
    driver each layer file is applied as soon as it is out of the archive (:mod:`ahead`), while
    the rest still arrives; the image takes those dirs once the manifest says where they go."""
    budget = UnpackBudget(graph.max_import_size, "load")
    tmp_root = graph.tmp_root
    tmp_root.mkdir(mode=0o700, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="load-", dir=tmp_root))
    ahead = LayersAhead(graph.layers, budget) if graph.layers.driver.independent_layers else None
    present = _Present(graph.layers)

    def on_file(path: Path, name: str) -> None:
        present.config(path, name)
        if ahead is not None and Path(os.path.realpath(path)) not in present.placeholders:
            ahead.offer(path, name)

    try:
        _unpack(stream, tmp, budget, on_file, present)
        manifest_path = tmp / "manifest.json"
        if not manifest_path.is_file() and (tmp / "index.json").is_file():
            return _load_oci(graph, tmp, budget, ahead)
        if not manifest_path.is_file():
            raise InvalidParameter(
                "load: open manifest.json: no such file or directory (not a docker save archive)"
            )
        images = [_checked(tmp, entry, index) for index, entry in enumerate(_manifest(manifest_path))]
        lines: list[str] = []
        for image in images:
            lines += _load_one(graph, image, budget, ahead=_taker(ahead, image.layers),
                               placeholders=present.placeholders)
        return lines
    finally:
        if ahead is not None:
            ahead.close()  # before the files go: what no image took is removed
        present.release()
        shutil.rmtree(tmp, ignore_errors=True)


def _taker(ahead: LayersAhead | None, paths: list[Path]) -> Callable[[int], AheadLayer | None] | None:
    return None if ahead is None else (lambda index: ahead.take(paths[index]))


def _unpack(stream: BinaryIO, tmp: Path, budget: UnpackBudget,
            on_file: Callable[[Path, str], None] | None = None, present: _Present | None = None) -> None:
    """Extract the archive into ``tmp``: Python's ``data`` filter refuses absolute paths, links
    out and devices; the decompressed bytes are charged to ``budget``. ``on_file(path, name)``
    is called for each regular file once it is complete (data, owner, mode and times); the
    bytes of a layer file ``present`` holds are not written (an empty placeholder)."""
    try:
        # 64 KiB reads for headers (tarfile copies its read-ahead on every small read, so that
        # one stays small against an archive of many tiny members); a file's data goes from the
        # MiB pieces read to the file (_ArchiveTar.makefile); copybufsize is TarFile's, passed on
        # by open (not in typeshed)
        with _ArchiveTar.open(  # type: ignore[call-overload]
            fileobj=HashingReader(budget.reader(decompressed(stream)), hashing=False), mode="r|",
            tarinfo=StrictTarInfo, bufsize=_READ, copybufsize=_COPY,
        ) as tar:
            tar.on_file, tar.present = on_file, present
            tar.extractall(tmp, filter="data")
    except OSError as exc:
        if exc.errno is not None and exc.errno not in _MEMBER_ERRNOS:
            raise  # the disk (ENOSPC, EIO): a failure of ours, not of the archive
        raise InvalidParameter(f"load: invalid docker-archive tar: {exc.strerror or exc}") from exc
    except (tarfile.TarError, EOFError, ValueError, OverflowError, UnicodeError) as exc:
        raise InvalidParameter(f"load: invalid docker-archive tar: {exc}") from exc


class _ArchiveTar(tarfile.TarFile):
    """tarfile's extraction (and its ``data`` filter), except that a plain member's data is
    written straight from the pieces the stream was read in (``copy_data``), not 10 KiB at a
    time through tarfile's read-ahead, joined and sliced on the way: that copying was most of
    the archive's unpacking. A file is always a new inode (a member of the same name as an
    earlier one replaces it rather than writing over it), so a file once extracted never changes."""

    on_file: Callable[[Path, str], None] | None = None
    present: _Present | None = None

    def utime(self, tarinfo: tarfile.TarInfo, targetpath: Any) -> None:
        super().utime(tarinfo, targetpath)  # the last step of a file's extraction
        if self.on_file is not None and tarinfo.isreg():
            self.on_file(Path(targetpath), tarinfo.name)

    def makefile(self, tarinfo: tarfile.TarInfo, targetpath: Any) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(targetpath)
        if tarinfo.sparse is None and self.present is not None and self.present.holds(tarinfo.name):
            with open(targetpath, "xb"):
                pass
            if copy_data(self, tarinfo, cast(BinaryIO, _Discard())):
                self.present.placeholders.add(Path(os.path.realpath(targetpath)))  # as _inside names it
                return
            os.unlink(targetpath)  # not the stream copy_data knows: write it after all
        if tarinfo.sparse is None:
            with open(targetpath, "xb") as target:
                if copy_data(self, tarinfo, target):
                    return
        super().makefile(tarinfo, targetpath)  # sparse, or not the stream copy_data knows


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass


_READ = 1 << 16
_COPY = 1 << 20
_MEMBER_ERRNOS = {errno.ENAMETOOLONG, errno.EINVAL, errno.E2BIG, errno.ERANGE, errno.EFBIG, errno.ELOOP}


def _manifest(path: Path) -> list[dict[str, Any]]:
    if path.stat().st_size > MAX_CONFIG_SIZE:
        raise InvalidParameter(f"load: manifest.json: over {MAX_CONFIG_SIZE} bytes")
    doc = parse_json(path.read_bytes(), "load: manifest.json")
    if not isinstance(doc, list):
        raise InvalidParameter(
            f"load: invalid manifest.json: want a list of images, got {json_kind(doc)}"
        )
    for index, entry in enumerate(doc):
        if not isinstance(entry, dict):
            raise InvalidParameter(
                f"load: invalid manifest.json: entry {index} must be an object with Config, RepoTags "
                f"and Layers, not {json_kind(entry)}"
            )
    return doc


@dataclass(frozen=True)
class _Image:
    config: bytes
    layers: list[Path]
    tags: list[reference.Reference]
    has_tags: bool


def _checked(tmp: Path, entry: dict[str, Any], index: int) -> _Image:
    """One manifest entry, every field checked and every file found."""
    what = f"load: manifest.json entry {index}"
    config_name = entry.get("Config")
    if not isinstance(config_name, str) or not config_name:
        raise InvalidParameter(f"{what}: Config must be the name of a file in the archive, not {json_kind(config_name)}")
    layer_names = entry.get("Layers") or []
    if not isinstance(layer_names, list) or not all(isinstance(name, str) for name in layer_names):
        raise InvalidParameter(f"{what}: Layers must be a list of file names")
    repo_tags = entry.get("RepoTags") or []
    if not isinstance(repo_tags, list) or not all(isinstance(tag, str) for tag in repo_tags):
        raise InvalidParameter(f"{what}: RepoTags must be a list of strings")
    tags = []
    for tag in repo_tags:
        try:
            tags.append(reference.parse_repository(tag))
        except InvalidParameter as exc:
            raise InvalidParameter(f"{what}: RepoTags: {short(tag)!r}: {exc.message}") from exc
    config_path = _inside(tmp, config_name)
    if config_path.stat().st_size > MAX_CONFIG_SIZE:
        raise InvalidParameter(f"load: {config_name}: over {MAX_CONFIG_SIZE} bytes")
    config = config_path.read_bytes()
    diff_ids = check_config(parse_json(config, f"load: {config_name}"), f"load: {config_name}")
    if len(layer_names) != len(diff_ids):
        raise InvalidParameter(
            f"invalid manifest, layers length mismatch: expected {len(diff_ids)}, got {len(layer_names)}"
        )
    return _Image(config, [_inside(tmp, name) for name in layer_names], tags, bool(repo_tags))


def _load_one(graph: Archives, image: _Image, budget: UnpackBudget,
              opener: Callable[[int], BinaryIO] | None = None,
              ahead: Callable[[int], AheadLayer | None] | None = None,
              placeholders: set[Path] | frozenset[Path] = frozenset()) -> list[str]:
    def open_file(index: int) -> BinaryIO:
        if image.layers[index] in placeholders:  # its file name said another chain
            raise InvalidParameter(f"load: layer {index} of the image is not the layer its file name says")
        return cast(BinaryIO, OwnTar(image.layers[index]))

    image_id = create_image(graph.images, graph.layers, graph.content, image.config, opener or open_file, None,
                            budget, ahead)
    lines = []
    for ref in image.tags:
        previous = graph.images.tag_target(ref.name, ref.tag)
        if previous is not None and previous != image_id:
            lines.append(
                f"The image {ref.familiar()} already exists, renaming the old one with ID {previous} to empty string"
            )
        graph.images.tag(image_id, ref.name, ref.tag)
        lines.append(f"Loaded image: {ref.familiar()}")
    if not image.has_tags:
        lines.append(f"Loaded image ID: {image_id}")
    return lines


def _load_oci(graph: Archives, tmp: Path, budget: UnpackBudget, ahead: LayersAhead | None) -> list[str]:
    """An OCI image layout without a docker manifest (skopeo's oci-archive, a tarred ``oci:`` dir)."""
    from berth.graph import ocilayout

    lines: list[str] = []
    for image in ocilayout.images(tmp):
        lines += _load_one(graph, _Image(image.config, [], image.tags, bool(image.tags)), budget, image.open_layer,
                           _taker(ahead, [path for path, _ in image.layers]))
    return lines


def _inside(root: Path, name: str) -> Path:
    try:
        path = (root / name).resolve()
    except (OSError, ValueError) as exc:  # a loop of links, a NUL byte
        raise InvalidParameter(f"load: {short(name)!r}: {exc}") from exc
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        raise NotFound(f"load: {short(name)!r} not found in the archive")
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
