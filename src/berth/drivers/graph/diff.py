"""What a container changed: ``docker diff`` records and the layer tar ``docker commit`` stores.

The model: compare the container's read-write layer with the layers under it, without
mounting. For overlay2 the upper directory *is* the change set (whiteout devices are
deletions, an opaque directory hides what was below); for vfs the container's full copy is
compared with its parent's copy, entry by entry (type, mode, owner, size, mtime, link target).
Kinds follow Docker: 0 modified, 1 added, 2 deleted::

    changes(driver, container_id, parent_id)   # [Change("/bin", 0), Change("/bin/ls", 2), ...]
    write_diff_tar(driver, container_id, parent_id, fileobj)  # the layer tar, with .wh. files
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from berth.drivers.graph.archive import WHITEOUT_OPAQUE, WHITEOUT_PREFIX
from berth.drivers.graph.driver import GraphDriver
from berth.drivers.graph.merged import is_opaque, is_whiteout, lookup, walk

MODIFIED, ADDED, DELETED = 0, 1, 2


@dataclass(frozen=True)
class Change:
    path: str
    kind: int
    source: Path | None = None  # the host path holding the new content (None for deletions)
    opaque: bool = False  # a directory whose lower contents are hidden


def changes(driver: GraphDriver, layer_id: str, parent_id: str | None) -> list[Change]:
    """The changes of ``layer_id`` against ``parent_id`` (both driver layer ids), by path."""
    lower = driver.layer_dirs(parent_id) if parent_id else []
    if driver.whiteouts == "overlay":
        found = _overlay_changes(driver.diff_dir(layer_id), lower)
    else:
        found = _copy_changes(driver.diff_dir(layer_id), lower)
    return sorted(found, key=lambda change: change.path)


def _overlay_changes(upper: Path, lower: list[Path]) -> list[Change]:
    out: list[Change] = []
    for dirpath, dirnames, filenames in os.walk(upper):
        for name in dirnames + filenames:
            host = Path(dirpath) / name
            rel = "/" + str(host.relative_to(upper))
            info = os.lstat(host)
            if is_whiteout(info):
                if lower and lookup(lower, rel, follow=False) is not None:
                    out.append(Change(rel, DELETED))
                continue
            existed = bool(lower) and lookup(lower, rel, follow=False) is not None
            opaque = stat.S_ISDIR(info.st_mode) and is_opaque(host)
            out.append(Change(rel, MODIFIED if existed else ADDED, host, opaque and existed))
    return out


def _signature(info: os.stat_result, host: Path) -> tuple[object, ...]:
    link = os.readlink(host) if stat.S_ISLNK(info.st_mode) else ""
    size = 0 if stat.S_ISDIR(info.st_mode) else info.st_size
    return (info.st_mode, info.st_uid, info.st_gid, size, info.st_mtime_ns, info.st_rdev, link)


def _copy_changes(layer: Path, lower: list[Path]) -> list[Change]:
    old: dict[str, Path] = dict(walk(lower)) if lower else {}
    new: dict[str, Path] = dict(walk([layer]))
    out: list[Change] = []
    for rel, host in new.items():
        before = old.get(rel)
        if before is None:
            out.append(Change(rel, ADDED, host))
            continue
        a, b = os.lstat(before), os.lstat(host)
        if stat.S_IFMT(a.st_mode) != stat.S_IFMT(b.st_mode) or _signature(a, before) != _signature(b, host):
            out.append(Change(rel, MODIFIED, host))
    deleted = sorted(rel for rel in old if rel not in new)
    for rel in deleted:
        parent = rel.rsplit("/", 1)[0] or "/"
        if parent != "/" and parent in old and parent not in new:
            continue  # inside a deleted directory: the directory's record covers it
        out.append(Change(rel, DELETED))
    return out


IdShift = Callable[[int, int], tuple[int, int]]


def write_diff_tar(
    driver: GraphDriver, layer_id: str, parent_id: str | None, out: BinaryIO, to_container: IdShift | None = None
) -> int:
    """Write the layer tar of ``layer_id``'s changes (Docker's format: ``.wh.`` whiteouts) to
    the seekable file ``out`` (at offset 0); return the number of changes. ``to_container``:
    the host (uid, gid) of a file -> the container's, for a layer written from a user
    namespace (its files hold host ids; the image must hold the container's, as dockerd's)."""
    found = changes(driver, layer_id, parent_id)
    tar = tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT)
    with tar:
        for change in found:
            name = change.path.lstrip("/")
            if change.kind == DELETED:
                head, _, base = name.rpartition("/")
                info = tarfile.TarInfo((head + "/" if head else "") + WHITEOUT_PREFIX + base)
                info.mtime = 0
                tar.addfile(info)
                continue
            assert change.source is not None
            info = tar.gettarinfo(str(change.source), arcname=name)
            if info is None:
                continue  # a socket: tar has no type for it (Docker skips them too)
            _add_xattrs(info, change.source)
            if to_container is not None:
                info.uid, info.gid = to_container(info.uid, info.gid)
                info.uname = info.gname = ""
            if info.isreg():
                with open(change.source, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
            if change.opaque:
                marker = tarfile.TarInfo(name + "/" + WHITEOUT_OPAQUE)
                marker.mtime = 0
                tar.addfile(marker)
    # Go's tar writer stops after the two zero blocks; tarfile pads to 10 KiB. Match Go, so an
    # empty change set is the well-known empty-layer tar (1024 zero bytes).
    out.truncate(tar.offset)
    return len(found)


def write_tree_tar(layers: list[Path], out: BinaryIO, to_container: IdShift | None = None) -> None:
    """Write the merged view of ``layers`` as one tar (``docker export``); ``to_container``
    as for :func:`write_diff_tar`, applied to the files of the top (the container's) layer."""
    top = str(layers[0]) + "/" if layers else ""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel, host in walk(layers):
            info = tar.gettarinfo(str(host), arcname=rel.lstrip("/"))
            if info is None:
                continue  # a socket: tar has no type for it (Docker skips them too)
            _add_xattrs(info, host)
            if to_container is not None and (str(host) + "/").startswith(top):
                info.uid, info.gid = to_container(info.uid, info.gid)
                info.uname = info.gname = ""
            if info.isreg():
                with open(host, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)


_SKIPPED_XATTRS = ("trusted.overlay.",)


def _add_xattrs(info: tarfile.TarInfo, host: Path) -> None:
    try:
        names = os.listxattr(host, follow_symlinks=False)
    except OSError:
        return  # a filesystem without xattrs: nothing to record
    for name in names:
        if name.startswith(_SKIPPED_XATTRS):
            continue
        try:
            value = os.getxattr(host, name, follow_symlinks=False)
        except OSError:
            continue  # vanished or unreadable: best effort, as Docker
        info.pax_headers = {
            **info.pax_headers,
            "SCHILY.xattr." + name: value.decode("utf-8", "surrogateescape"),
        }
