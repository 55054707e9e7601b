"""Container layers: the init layer, the read-write layer, and what is read or made from them.

The model (Docker's, with one init layer per image rather than per container): a container's
tree is ``rw`` over ``<top layer cache id>-init`` over the image's layers. The init layer holds empty mount points the runtime binds over (``/etc/hosts``,
``/etc/resolv.conf``, ``/etc/hostname``, ``/dev/console``, ``/proc``, ``/sys``, ``/dev/pts``,
``/dev/shm``), ``/.dockerenv`` and ``/etc/mtab -> /proc/mounts`` -- only where the image lacks
them -- so that ``docker diff`` and ``docker commit``, which look at ``rw`` alone, never show
them. Files are read, diffed and exported from the layer directories (:mod:`merged`), so a
stopped container needs no mount::

    prepare_rw(images, layers, cid, image_id)    # creates <cid> (and the image's init layer once)
    read_file(layers, cid, "/etc/passwd")        # bytes as the container sees them, or None
    commit(images, layers, content, cid, "spycommit:1", ["ENV Z=1"], "msg", "", container_config)

Everything here but ``prepare_rw`` and ``commit`` reads or changes the layer store alone.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from berth import accountfile
from berth.crashpoint import crash_point
from berth.drivers.graph.diff import IdShift, changes, write_diff_tar, write_tree_tar
from berth.drivers.graph.merged import lookup, subtree, walk
from berth.errors import Conflict, InvalidParameter
from berth.graph import txn
from berth.graph.changes import apply_changes
from berth.graph.content import ContentStore
from berth.graph.image import encode, new_config, now_ns
from berth.graph.imagestore import ImageStore
from berth.graph.layers import os_failure
from berth.graph.layerstore import INIT_SUFFIX, SCRATCH_INIT, LayerStore, init_id
from berth.graph.registration import register_image
from berth.graph.store import RwLayerRow
from berth.libcontainer import securepath

__all__ = [
    "INIT_SUFFIX", "SCRATCH_INIT", "commit", "container_changes", "copy_dir", "ensure_init", "export",
    "fill_init_layer", "init_id", "make_dirs", "prepare_rw", "read_file",
]

EMPTY_TAR_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
INIT_ENTRIES: tuple[tuple[str, str], ...] = (
    ("/dev/pts", "dir"),
    ("/dev/shm", "dir"),
    ("/proc", "dir"),
    ("/sys", "dir"),
    ("/.dockerenv", "file"),
    ("/etc/resolv.conf", "file"),
    ("/etc/hosts", "file"),
    ("/etc/hostname", "file"),
    ("/dev/console", "file"),
    ("/etc/mtab", "/proc/mounts"),
)


def ensure_init(layers: LayerStore, top_cache_id: str | None) -> str:
    """The image's init layer, created on first use (read-only once made, so it is shared
    by every container of the image; removed with the image's top layer)."""
    driver = layers.driver
    init = init_id(top_cache_id)
    if driver.exists(init):
        return init
    try:
        driver.create_layer(init, top_cache_id)
        fill_init_layer(driver.layer_dirs(init))
    except BaseException:
        driver.remove_layer(init)
        raise
    return init


def fill_init_layer(layers: list[Path]) -> None:
    """Create the init entries in ``layers[0]`` where the merged view lacks them, and a mount
    point directory (/proc, /sys, /dev/pts, /dev/shm) where the image has something else there,
    a symlink above all: the directory shadows it, as Docker's init layer does, so the runtime
    mounts procfs and sysfs on a directory of the container's own (it opens /proc without
    following symlinks) and an image cannot aim them elsewhere."""
    top = layers[0]
    for path, kind in INIT_ENTRIES:
        seen = lookup(layers, path, follow=False)
        if seen is not None and (kind != "dir" or stat.S_ISDIR(os.lstat(seen).st_mode)):
            continue
        parts = path.strip("/").split("/")
        if not _ensure_parents(layers, parts[:-1]):
            continue
        host = top.joinpath(*parts)
        if kind == "dir":
            os.mkdir(host, 0o755)
        elif kind == "file":
            os.close(os.open(host, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o755))
        else:
            os.symlink(kind, host)


def _ensure_parents(layers: list[Path], parts: list[str]) -> bool:
    """Make the directories ``parts`` exist in the top layer, copying mode and owner from the
    view; False when the view has a non-directory (or a symlink) in the way."""
    top = layers[0]
    for depth in range(1, len(parts) + 1):
        rel = parts[:depth]
        host = top.joinpath(*rel)
        visible = lookup(layers, "/".join(rel), follow=False)
        if visible is not None:
            info = os.lstat(visible)
            if not stat.S_ISDIR(info.st_mode):
                return False
            if not os.path.lexists(host):
                os.mkdir(host, 0o755)
                os.chown(host, info.st_uid, info.st_gid)
                os.chmod(host, stat.S_IMODE(info.st_mode))
        else:
            os.mkdir(host, 0o755)
    return True


def prepare_rw(images: ImageStore, layers: LayerStore, container_id: str, image_id: str) -> None:
    """The container's read-write layer on the image's (over the image's init layer). Both
    stores stay locked throughout: no removal takes the image's layers away meanwhile, and
    two containers of one image never make its init layer at once."""
    with txn.locked(images, layers):
        _prepare_rw(images, layers, container_id, image_id)


def _prepare_rw(images: ImageStore, layers: LayerStore, container_id: str, image_id: str) -> None:
    row = images.get(image_id)
    if layers.rw(container_id) is not None:
        raise Conflict(f"prepare rw layer for container {container_id}: already exists")
    top = layers.get(row.top_layer) if row.top_layer else None
    try:
        init = ensure_init(layers, top.cache_id if top else None)
    except OSError as exc:
        raise os_failure(f"prepare init layer of image {image_id}", exc) from exc
    try:
        layers.driver.prepare_rw(container_id, init)
        layers.add_rw(RwLayerRow(container_id, image_id, row.top_layer, container_id))
    except OSError as exc:
        layers.driver.remove_rw(container_id)
        raise os_failure(f"prepare rw layer of container {container_id}", exc) from exc
    except BaseException:
        layers.driver.remove_rw(container_id)
        raise


def read_file(layers_: LayerStore, container_id: str, path: str) -> bytes | None:
    """A small file (/etc/passwd) as the container sees it; None if absent (:func:`read_files`)."""
    return read_files(layers_, container_id, (path,))[0]


def read_files(layers_: LayerStore, container_id: str, paths: tuple[str, ...]) -> list[bytes | None]:
    """Small files (/etc/passwd, /etc/group) as the container sees them, each None if absent;
    the container's layers are looked up once for all of them.

    The container's layers are hostile while it runs: symlinks resolve inside the layers
    (:func:`lookup`), every component is then opened with O_NOFOLLOW from the layer's root (a
    component swapped for a symlink meanwhile fails instead of leading to the host), and the
    file is read by :func:`berth.accountfile.read` -- opened without blocking, refused unless it
    is a regular file of at most 1 MiB (``AccountFileError``)."""
    layers_.require_rw(container_id)
    layers = layers_.driver.layer_dirs(container_id)
    return [_read_in(layers, path) for path in paths]


def _read_in(layers: list[Path], path: str) -> bytes | None:
    host = lookup(layers, path)
    if host is None:
        return None
    try:
        fd = _open_beneath(layers, host)
    except FileNotFoundError:
        return None  # removed since the lookup
    except OSError as exc:  # ELOOP, ENOTDIR: a component became a symlink or a file meanwhile
        raise accountfile.AccountFileError(f"{path} changed while it was read ({exc.strerror})") from exc
    try:
        return accountfile.read(fd, path)
    finally:
        os.close(fd)


def _open_beneath(layers: list[Path], host: Path) -> int:
    """Open ``host`` (a path inside one of ``layers``) following no symlink on the way (ELOOP)."""
    layer = next(layer for layer in layers if host.is_relative_to(layer))
    return securepath.open_in_root(str(layer), str(host.relative_to(layer)), accountfile.FLAGS, symlinks=False)


def make_dirs(layers_: LayerStore, container_id: str, path: str) -> None:
    """Create ``path`` (and missing parents, root-owned 0755) in the container's layer, as
    Docker does for a missing ``WorkingDir`` before start; symlinks resolve inside the
    container. Only while the rootfs is not mounted (overlayfs wants its upper dir alone)."""
    layers_.require_rw(container_id)
    layers = layers_.driver.layer_dirs(container_id)
    pending = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while pending:
        name = pending.pop(0)
        if name == "..":
            if resolved:
                resolved.pop()
            continue
        visible = lookup(layers, "/".join([*resolved, name]), follow=False)
        if visible is None:
            if not _ensure_parents(layers, resolved):
                raise InvalidParameter(
                    f"mkdir {path} in container {container_id}: a parent is not a directory"
                )
            os.mkdir(layers[0].joinpath(*resolved, name), 0o755)
            resolved.append(name)
            continue
        info = os.lstat(visible)
        if stat.S_ISLNK(info.st_mode):
            hops += 1
            if hops > 40:
                raise InvalidParameter(f"mkdir {path} in container {container_id}: too many symbolic links")
            target = os.readlink(visible)
            if target.startswith("/"):
                resolved = []
            pending = [p for p in target.split("/") if p not in ("", ".")] + pending
            continue
        if not stat.S_ISDIR(info.st_mode):
            raise InvalidParameter(
                f"mkdir {path} in container {container_id}: /{'/'.join([*resolved, name])} is not a directory"
            )
        resolved.append(name)


def copy_dir(layers_: LayerStore, container_id: str, path: str, target: Path) -> bool:
    """Copy the directory ``path`` as the container sees it into ``target`` (an existing,
    empty directory, which takes the source's owner and mode): Docker's copy-up of image
    content into a new volume. False (nothing copied) when ``path`` is not a directory."""
    layers_.require_rw(container_id)
    layers = subtree(layers_.driver.layer_dirs(container_id), path)
    if not layers:
        return False
    _copy_meta(layers[0], target)
    for rel, host in walk(layers):
        dest = target / rel.lstrip("/")
        info = os.lstat(host)
        if stat.S_ISDIR(info.st_mode):
            dest.mkdir()
            _copy_meta(host, dest)
        elif stat.S_ISLNK(info.st_mode):
            os.symlink(os.readlink(host), dest)
            os.lchown(dest, info.st_uid, info.st_gid)
        elif stat.S_ISREG(info.st_mode):
            shutil.copy2(host, dest, follow_symlinks=False)
            _copy_meta(host, dest)
        # devices, fifos and sockets are not copied up (Docker copies them; none in practice)
    return True


def _copy_meta(src: Path, dest: Path) -> None:
    info = os.lstat(src)
    os.chown(dest, info.st_uid, info.st_gid)
    os.chmod(dest, stat.S_IMODE(info.st_mode))


def container_changes(layers_: LayerStore, container_id: str) -> list[dict[str, Any]]:
    """``GET /containers/{id}/changes`` records: ``[{"Path": "/root", "Kind": 1}]``."""
    rw = layers_.require_rw(container_id)
    return [
        {"Path": c.path, "Kind": c.kind} for c in changes(layers_.driver, container_id, layers_.init_of(rw))
    ]


def export(layers_: LayerStore, container_id: str, out: BinaryIO, to_container: IdShift | None = None) -> None:
    """Write the container's whole file system as a tar (``docker export``); ``to_container``
    maps the ids of what a container in a user namespace wrote back to its own."""
    layers_.require_rw(container_id)
    write_tree_tar(layers_.driver.layer_dirs(container_id), out, to_container)


def commit(
    images: ImageStore,
    layers_: LayerStore,
    content: ContentStore,
    tmp_dir: Path,
    container_id: str,
    repo_tag: str | None,
    change_lines: list[str],
    message: str,
    author: str,
    container_config: dict[str, Any] | None,
    image_config: dict[str, Any] | None = None,
    created_by: str | None = None,
    to_container: IdShift | None = None,
) -> str:
    """``docker commit``: the container's changes become a layer on its image; returns the id.

    ``container_config`` is the container's own config (Docker's ``container.Config``; the
    image's config when None); the ``--change`` lines are applied on top of it. A build step
    passes the new image's config (``image_config``) and history line (``created_by``).
    """
    row = layers_.require_rw(container_id)
    image = images.get(row.image_id)
    parent_doc = images.config_doc(row.image_id)
    base = container_config if container_config is not None else (parent_doc.get("config") or {})
    if image_config is not None:
        base = image_config
    config = apply_changes(base, change_lines)
    top = layers_.get(image.top_layer) if image.top_layer else None
    diff_ids = list((parent_doc.get("rootfs") or {}).get("diff_ids") or [])
    tmp_dir.mkdir(exist_ok=True)
    with tempfile.TemporaryFile(dir=tmp_dir) as spool:
        count = write_diff_tar(layers_.driver, container_id, layers_.init_of(row), spool, to_container)
        pending = []
        if count:
            spool.seek(0)
            pending = [layers_.apply(spool, top)]
            diff_ids.append(pending[0].diff_id)
    doc = new_config(
        diff_ids=diff_ids,
        config=config,
        created_ns=now_ns(),
        comment=message,
        created_by=created_by if created_by is not None else " ".join((container_config or {}).get("Cmd") or []),
        author=author,
        parent_config=parent_doc,
        container=container_id,
        container_config_values=container_config,
        empty_layer=not pending,
    )
    for key in ("variant", "os.version", "os.features"):
        if parent_doc.get(key):
            doc[key] = parent_doc[key]
    doc["architecture"] = parent_doc.get("architecture") or doc["architecture"]
    crash_point("commit.after-layer")  # its layer is on disk, no row names it: garbage at start-up
    return register_image(images, layers_, content, encode(doc), pending, repo_tag, row.image_id)
