"""COPY and ADD: which files, their checksum for the cache, and the layer tar they become.

The model is the classic builder's copier, in two steps:

1. :func:`plan` finds the sources (a path, a directory -- its contents are copied --, a
   wildcard matched against every path like Go's ``filepath.Match``, a heredoc) and computes
   the checksum Docker puts in the step's history and cache key (``file:<sha>``, ``dir:<sha>``,
   ``multi:<sha>``), with each file's digest kept for the miss reasons;
2. :func:`write_layer` writes the tar of what the copy adds on top of the destination image:
   the destination is resolved *inside the image* (its symlinks followed in scope), missing
   parents are made (0755, owned by the ``--chown`` identity or root), existing parents keep
   their metadata, a destination that ends in ``/`` or is a directory receives the source under
   its own name, files keep their mode and mtime and belong to root (or ``--chown``),
   ``--chmod`` sets the mode, and ADD unpacks a local tar (plain, gzip, bzip2, xz) into the
   destination, keeping the archive's owners.

The tar is applied as a new layer by the graph; nothing here touches the host's files.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import re
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from berth.builder.imagefs import ImageFS
from berth.builder.sources import FileSource, Node, Source
from berth.drivers.graph.tarstream import ArchiveError, decompressed, members, open_stream, short
from berth.errors import InvalidParameter

MAX_DETAIL_FILES = 4000  # file digests kept per step for miss reasons
_WILDCARD = re.compile(r"(?<!\\)[*?\[]")


class CopyError(InvalidParameter):
    pass


@dataclass(frozen=True)
class Item:
    origin: str                 # the source as written (its base name names a copied file)
    node: Node | None           # None for a heredoc
    heredoc: bytes | None = None
    archive: bool = False       # ADD of a local tar: unpack it
    source: Source | None = None  # where the bytes are, when not the step's source (ADD <url>)


@dataclass
class Plan:
    items: list[Item]
    checksum: str                                    # file:<sha> | dir:<sha> | multi:<sha>
    files: dict[str, str] = field(default_factory=dict)  # source path -> content checksum
    complete: bool = True                            # False when files were too many to keep


def has_wildcards(path: str) -> bool:
    return _WILDCARD.search(path) is not None


def plan(src: Source, sources: list[str], heredocs: dict[str, bytes], is_add: bool, cmd: str,
         from_context: bool, remote: dict[str, FileSource] | None = None) -> Plan:
    """The items to copy and their checksum; Docker's errors for missing sources. ``remote``
    holds the downloaded files of ``ADD <url>`` sources, by URL."""
    items: list[Item] = []
    hashes: list[str] = []
    files: dict[str, str] = {}
    complete = True
    for origin in sources:
        if remote and origin in remote:
            fsrc = remote[origin]
            remote_node = fsrc.file_node()
            line = _describe(fsrc, remote_node)
            items.append(Item(fsrc.name, remote_node, source=fsrc))
            hashes.append("file:" + hashlib.sha256(line.encode()).hexdigest())
            files[origin] = line
            continue
        if origin in heredocs:
            data = heredocs[origin]
            items.append(Item(origin.removeprefix("<<"), None, data))
            digest = "file:" + hashlib.sha256(b"heredoc\0" + data).hexdigest()
            hashes.append(digest)
            files[origin] = digest
            continue
        cleaned = _clean(origin, from_context, cmd)
        found = _expand(src, cleaned) if has_wildcards(cleaned) else [cleaned]
        if not found:
            raise CopyError(f"{cmd} failed: no source files were specified")
        for path in found:
            resolved = src.resolve(path)
            node = src.node(resolved)
            if node is None:
                where = "file not found in build context or excluded by .dockerignore: " if from_context else ""
                raise CopyError(f"{cmd} failed: {where}stat {path}: file does not exist")
            archive = is_add and node.kind == "file" and _is_archive(src, node)
            items.append(Item(path, node, archive=archive))
            if node.kind == "dir":
                entries = []
                for rel, child in src.walk(resolved):
                    line = _describe(src, child)
                    entries.append(f"{rel}\0{line}")
                    if len(files) < MAX_DETAIL_FILES:
                        files[f"{path}/{rel}" if path else rel] = line
                    else:
                        complete = False
                hashes.append("dir:" + hashlib.sha256("\n".join(entries).encode()).hexdigest())
            else:
                line = _describe(src, node)
                files[path] = line
                hashes.append("file:" + hashlib.sha256(line.encode()).hexdigest())
    if len(hashes) == 1:
        checksum = hashes[0]
    else:
        checksum = "multi:" + hashlib.sha256(",".join(hashes).encode()).hexdigest()
    return Plan(items, checksum, files, complete)


def _describe(src: Source, node: Node) -> str:
    """What makes a copied entry the same: type, mode, link target, content."""
    content = src.digest(node) if node.kind == "file" else ""
    return f"{node.kind}:{node.mode:o}:{node.linkname}:{content}"


def _clean(origin: str, from_context: bool, cmd: str) -> str:
    stripped = origin.lstrip("/")
    cleaned = posixpath.normpath(stripped) if stripped else "."
    if cleaned == ".." or cleaned.startswith("../"):
        if from_context:
            raise CopyError(f"{cmd} failed: forbidden path outside the build context: {origin} ()")
        cleaned = posixpath.normpath("/" + stripped).lstrip("/") or "."
    return "" if cleaned == "." else cleaned


def _expand(src: Source, pattern: str) -> list[str]:
    regex = _glob_regex(pattern)
    return [p for p in src.paths() if regex.match(p)]


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out = "^"
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "\\" and i < len(pattern):
            out += re.escape(pattern[i])
            i += 1
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise CopyError(f"syntax error in pattern: {pattern}")
            body = pattern[i:end]
            out += "[" + ("^" + body[1:] if body.startswith(("^", "!")) else body) + "]"
            i = end + 1
        else:
            out += re.escape(ch)
    return re.compile(out + "$", re.DOTALL)


def _is_archive(src: Source, node: Node) -> bool:
    """A tar, possibly compressed: its first header must parse (Docker's ``isArchivePath``)."""
    if node.size < 512 and node.size != 0:
        head = b"".join(src.chunks(node))
    elif node.size == 0:
        return False
    else:
        with src.open(node) as f:
            head = f.read(64 * 1024)
    try:
        stream = decompressed(io.BytesIO(head))
        block = b""
        while len(block) < 512:
            chunk = stream.read(512 - len(block))
            if not chunk:
                break
            block += chunk
    except (ArchiveError, OSError, EOFError, ValueError):
        return False
    if len(block) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except (tarfile.HeaderError, ValueError):
        return False
    return True


# -- the layer --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    uid: int
    gid: int


class _Layer:
    """The tar being written, and what it already holds (so a later item sees it)."""

    def __init__(self, out: BinaryIO, dest_fs: ImageFS) -> None:
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)
        # file data in 1 MiB reads (tarfile's default is 16 KiB); typeshed does not know the attribute
        setattr(self.tar, "copybufsize", 1 << 20)  # noqa: B010
        self.fs = dest_fs
        self.kinds: dict[str, str] = {}  # /path -> kind written here
        self.now = int(time.time())

    def kind(self, path: str) -> str | None:
        if path in self.kinds:
            return self.kinds[path]
        info = self.fs.lstat(path)
        return None if info is None else info.kind

    def add(self, path: str, info: tarfile.TarInfo, data: BinaryIO | None = None) -> None:
        info.name = path.lstrip("/")
        self.tar.addfile(info, data)
        self.kinds[path] = {tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink"}.get(info.type, "file")

    def parents(self, path: str, owner: Identity) -> None:
        """Make the directories above ``path`` exist (``path`` is resolved: no symlinks)."""
        parts = [p for p in path.split("/") if p]
        for depth in range(1, len(parts)):
            sub = "/" + "/".join(parts[:depth])
            self.directory(sub, owner, None)

    def directory(self, path: str, owner: Identity, mode: int | None, mtime: float | None = None) -> None:
        """``path`` as a directory: an existing one keeps its metadata unless ``mode`` is given."""
        kind = self.kind(path)
        if kind == "dir" and path in self.kinds and mode is None:
            return
        info = tarfile.TarInfo()
        info.type = tarfile.DIRTYPE
        existing = self.fs.lstat(path) if path not in self.kinds else None
        if kind is not None and kind != "dir":
            raise CopyError(f"cannot copy to {path}: it is not a directory in the image")
        if existing is not None and existing.kind == "dir":
            info.mode, info.uid, info.gid, info.mtime = existing.mode, existing.uid, existing.gid, int(existing.mtime)
        else:
            info.mode, info.uid, info.gid, info.mtime = 0o755, owner.uid, owner.gid, self.now
        if mode is not None:
            info.mode = mode
        if mtime is not None:
            info.mtime = int(mtime)
        self.add(path, info)

    def close(self) -> None:
        self.tar.close()


def write_layer(plan_: Plan, src: Source, dest_fs: ImageFS, dest: str, workdir: str, owner: Identity,
                chmod: int | None, cmd: str, out: BinaryIO) -> None:
    """Write the copy's layer tar to ``out``."""
    dir_hint = dest.endswith("/") or dest.endswith("/.") or dest in (".", "")
    if not dest.startswith("/"):
        dest = posixpath.join("/", workdir or "/", dest)
    if len(plan_.items) > 1 and not dir_hint:
        raise CopyError(
            f"When using {cmd} with more than one source file, the destination must be a directory and end with a /"
        )
    layer = _Layer(out, dest_fs)
    try:
        target = dest_fs.resolve(dest)
        for item in plan_.items:
            _copy_item(layer, item, item.source or src, target, dir_hint, owner, chmod)
    finally:
        layer.close()


def _copy_item(layer: _Layer, item: Item, src: Source, target: str, dir_hint: bool, owner: Identity,
               chmod: int | None) -> None:
    node = item.node
    if node is not None and node.kind == "dir":
        layer.parents(target, owner)
        created = layer.kind(target) is None
        layer.directory(target, owner, node.mode if created else None, node.mtime if created else None)
        for rel, child in src.walk(node.path):
            _copy_node(layer, src, child, f"{target.rstrip('/')}/{rel}", owner, chmod)
        return
    if item.archive and node is not None:
        layer.parents(target, owner)
        layer.directory(target, owner, None)
        _unpack(layer, src, node, target)
        return
    if dir_hint or layer.kind(target) == "dir":
        path = f"{target.rstrip('/')}/{posixpath.basename(item.origin.rstrip('/')) or 'file'}"
    else:
        path = target
    if path == "/":
        raise CopyError("cannot copy a file to /")
    layer.parents(path, owner)
    if layer.kind(path) == "dir":
        raise CopyError(f"cannot overwrite directory {path} with a file")
    if node is None:
        data = item.heredoc or b""
        info = tarfile.TarInfo()
        info.size, info.mode, info.uid, info.gid, info.mtime = len(data), chmod or 0o644, owner.uid, owner.gid, layer.now
        layer.add(path, info, io.BytesIO(data))
        return
    _copy_node(layer, src, node, path, owner, chmod)


def _copy_node(layer: _Layer, src: Source, node: Node, path: str, owner: Identity, chmod: int | None) -> None:
    info = tarfile.TarInfo()
    info.uid, info.gid, info.mtime = owner.uid, owner.gid, int(node.mtime)
    info.mode = chmod if chmod is not None else node.mode
    if node.kind == "dir":
        info.type = tarfile.DIRTYPE
        if layer.kind(path) not in (None, "dir"):
            raise CopyError(f"cannot copy directory over {path}: it is not a directory in the image")
        layer.add(path, info)
    elif node.kind == "file":
        info.size = node.size
        with src.open(node) as data:
            layer.add(path, info, data)
    elif node.kind == "symlink":
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, node.linkname, 0o777
        layer.add(path, info)
    # devices, fifos and sockets in a context are left out (the docker CLI sends none)


def _unpack(layer: _Layer, src: Source, node: Node, target: str) -> None:
    with src.open(node) as raw:
        try:
            archive = open_stream(decompressed(raw))
            for member in members(archive):
                name = _archive_name(member.name)
                if not name:
                    continue
                path = f"{target.rstrip('/')}/{name}"
                info = tarfile.TarInfo()
                for attr in ("type", "mode", "uid", "gid", "uname", "gname", "mtime", "linkname", "devmajor",
                             "devminor", "size"):
                    setattr(info, attr, getattr(member, attr))
                info.pax_headers = {k: v for k, v in member.pax_headers.items() if k.startswith("SCHILY.xattr.")}
                if member.islnk():
                    link = _archive_name(member.linkname)
                    if not link:
                        raise CopyError(f"ADD failed: archive member {short(member.name)!r}: bad hard link")
                    info.linkname = f"{target.rstrip('/')}/{link}".lstrip("/")
                    info.size = 0
                if member.sparse is not None:
                    raise CopyError(f"ADD failed: archive member {short(member.name)!r}: sparse files are not supported")
                data = archive.extractfile(member) if member.isreg() else None
                layer.parents(path, Identity(0, 0))
                layer.add(path, info, data)  # type: ignore[arg-type]
        except ArchiveError as exc:
            raise CopyError(f"ADD failed: {node.path}: {exc.message}") from None
        except tarfile.TarError as exc:
            raise CopyError(f"ADD failed: {node.path}: invalid tar archive: {exc}") from None


def _archive_name(name: str) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    depth = 0
    for part in parts:
        depth += -1 if part == ".." else 1
        if depth < 0:
            raise CopyError(f"ADD failed: archive member {short(name)!r} points outside the destination (breakout)")
    return posixpath.normpath("/".join(parts)) if parts else ""


def iter_sources(items: list[Item]) -> Iterator[str]:
    for item in items:
        yield item.origin
