"""The build context: the client's tar, kept as one file and indexed, never unpacked.

The model: the body of ``POST /build`` is a tar (plain, gzip, bzip2 or xz) of the context
directory. It is spooled to one uncompressed file under the daemon's ``tmp``, then read once
with the strict tar reader (:mod:`berth.drivers.graph.tarstream`) into an index of entries
(path, type, mode, size, where its data starts). COPY and ADD read file data straight from
that file; nothing of the context ever touches the host's file tree, so a hostile context can
at worst name files that are not there:

- member names are cleaned; one that climbs out with ``..`` makes the context invalid;
- symlinks are resolved *inside* the context (Docker's ``FollowSymlinkInScope``): an absolute
  target or a ``..`` that climbs past the root stops at the context's root, so a link to
  ``/etc/passwd`` names the context's own ``etc/passwd`` (usually absent);
- a source path that climbs out lexically (``COPY ../x``) is refused with Docker's text.

::

    ctx = BuildContext.load(open("ctx.tar", "rb"), spool_dir)
    ctx.lookup("src/app.py")          # Entry(kind="file", size=..., ...) or None
    ctx.file_digest(entry)            # sha256 of the content (cached)
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from berth.drivers.graph.tarstream import ArchiveError, StrictTarInfo, decompressed, members, short
from berth.errors import InvalidParameter, NotFound

MAX_SYMLINK_HOPS = 255
_CHUNK = 1 << 20


class ContextError(InvalidParameter):
    pass


@dataclass
class Entry:
    path: str            # relative, "/"-separated, no leading slash; "" is the root
    kind: str            # file | dir | symlink | other
    mode: int            # permission bits (with setuid/setgid/sticky)
    uid: int = 0
    gid: int = 0
    mtime: float = 0.0
    size: int = 0
    offset: int = 0      # where the data starts in the spool (files)
    linkname: str = ""   # symlink target
    info: tarfile.TarInfo | None = field(default=None, repr=False)  # devices, fifos: the header
    digest: str = ""     # sha256 of the content, once computed


class BuildContext:
    def __init__(self, spool: Path) -> None:
        self.spool = spool
        self.entries: dict[str, Entry] = {"": Entry("", "dir", 0o755)}
        self.children: dict[str, set[str]] = {"": set()}
        self._lock = threading.Lock()
        self._fd: int | None = None

    # -- loading --------------------------------------------------------------------------
    @classmethod
    def load(cls, stream: BinaryIO, tmp_dir: Path) -> BuildContext:
        """Spool ``stream`` into ``tmp_dir`` and :meth:`open` it."""
        fd, name = tempfile.mkstemp(prefix="context-", suffix=".tar", dir=tmp_dir)
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(stream, out, _CHUNK)
        except BaseException:
            os.unlink(name)
            raise
        return cls.open(Path(name))

    @classmethod
    def open(cls, spool: Path) -> BuildContext:
        """Index the spooled body (it becomes the context's file, removed by :meth:`close`); a
        compressed one is decompressed beside it first. Files are hashed when a step needs them."""
        ctx = cls(spool)
        try:
            with open(spool, "rb") as f:
                head = f.read(6)
            if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")):
                ctx.spool = _decompress(spool)
                spool.unlink()
            with open(ctx.spool, "rb") as f:
                ctx._index(f)
            ctx._fd = os.open(ctx.spool, os.O_RDONLY | os.O_CLOEXEC)
        except BaseException:
            ctx.close()
            if ctx.spool != spool:
                spool.unlink(missing_ok=True)
            raise
        return ctx

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        try:
            os.unlink(self.spool)
        except FileNotFoundError:
            pass

    def _index(self, f: BinaryIO) -> None:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return  # an empty body: an empty context
        f.seek(0)
        end = 0  # where the last member's data ends
        try:
            # seekable: the reader skips file data instead of reading it
            archive = tarfile.open(fileobj=f, mode="r:", tarinfo=StrictTarInfo)
            for member in members(archive):
                self._add(member)
                end = max(end, member.offset_data + (member.size if member.isreg() else 0))
        except (ArchiveError, tarfile.TarError, ValueError, EOFError) as exc:
            # The docker CLI ends a context that carries a Dockerfile from stdin right after the
            # last file's bytes (no padding, no end blocks), which Go's reader takes; so do we.
            if not (end and end <= size and "unexpected end of data" in str(exc)):
                text = exc.message if isinstance(exc, ArchiveError) else str(exc)
                raise ContextError(f"the build context is not a tar archive: {text}") from None
        if end > size:  # a file cut short
            raise ContextError("the build context is not a tar archive: unexpected EOF in the last file")

    def _add(self, member: tarfile.TarInfo) -> Entry | None:
        path = clean_member(member.name)
        if path == "":
            if member.isdir():
                self.entries[""].mode = member.mode & 0o7777
            return None
        if member.sparse is not None:
            raise ContextError(f"build context member {short(path)!r}: sparse files are not supported")
        self._parents(path)
        mode = member.mode & 0o7777
        common = {"uid": member.uid, "gid": member.gid, "mtime": float(member.mtime)}
        if member.isdir():
            old = self.entries.get(path)
            if old is not None and old.kind == "dir":
                old.mode, old.uid, old.gid, old.mtime = mode, member.uid, member.gid, float(member.mtime)
                return old
            entry = Entry(path, "dir", mode, **common)  # type: ignore[arg-type]
        elif member.isreg():
            entry = Entry(path, "file", mode, size=member.size, offset=member.offset_data, **common)  # type: ignore[arg-type]
        elif member.issym():
            entry = Entry(path, "symlink", 0o777, linkname=member.linkname, **common)  # type: ignore[arg-type]
        elif member.islnk():
            target = self.entries.get(clean_member(member.linkname))
            if target is None or target.kind != "file":
                raise ContextError(
                    f"build context member {short(path)!r}: hard link to {short(member.linkname)!r}, "
                    "which is not a file earlier in the archive"
                )
            entry = Entry(path, "file", target.mode, target.uid, target.gid, target.mtime, target.size, target.offset,
                          digest=target.digest)
        else:
            entry = Entry(path, "other", mode, info=member, **common)  # type: ignore[arg-type]
        old = self.entries.get(path)
        if old is not None and old.kind == "dir" and entry.kind != "dir":
            self._drop_tree(path)
        self.entries[path] = entry
        parent, _, base = path.rpartition("/")
        self.children[parent].add(base)
        if entry.kind == "dir":
            self.children.setdefault(path, set())
        return entry

    def _parents(self, path: str) -> None:
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            sub = "/".join(parts[:depth])
            existing = self.entries.get(sub)
            if existing is not None and existing.kind == "dir":
                continue
            if existing is not None:
                self._drop_tree(sub)
            self.entries[sub] = Entry(sub, "dir", 0o755)
            self.children.setdefault(sub, set())
            parent, _, base = sub.rpartition("/")
            self.children[parent].add(base)

    def _drop_tree(self, path: str) -> None:
        for name in list(self.children.pop(path, ())):
            self._drop_tree(f"{path}/{name}")
        self.entries.pop(path, None)

    def remove(self, path: str) -> None:
        """Leave ``path`` out (a Dockerfile or .dockerignore that .dockerignore excludes)."""
        if path in self.entries and path:
            parent, _, base = path.rpartition("/")
            self.children.get(parent, set()).discard(base)
            self._drop_tree(path)

    # -- reading ------------------------------------------------------------------------
    def lookup(self, path: str) -> Entry | None:
        """The entry at ``path`` after resolving symlinks in scope (the last one too)."""
        return self.entries.get(self.resolve(path))

    def resolve(self, path: str, follow_last: bool = True) -> str:
        """Docker's ``FollowSymlinkInScope`` over the index: never leaves the context."""
        pending = [p for p in path.split("/") if p not in ("", ".")]
        resolved: list[str] = []
        hops = 0
        while pending:
            name = pending.pop(0)
            if name == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = "/".join([*resolved, name])
            entry = self.entries.get(candidate)
            if entry is not None and entry.kind == "symlink" and (pending or follow_last):
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise InvalidParameter(f"resolve {path} in the build context: too many links")
                target = entry.linkname
                if target.startswith("/"):
                    resolved = []
                pending = [p for p in target.split("/") if p not in ("", ".")] + pending
                continue
            resolved.append(name)
        return "/".join(resolved)

    def listdir(self, path: str) -> list[str]:
        return sorted(self.children.get(path, ()))

    def walk(self, path: str) -> Iterator[Entry]:
        """Every entry below the directory ``path`` (not itself), parents first, sorted; symlinks
        are not followed."""
        for name in self.listdir(path):
            child = f"{path}/{name}" if path else name
            entry = self.entries[child]
            yield entry
            if entry.kind == "dir":
                yield from self.walk(child)

    def all_paths(self) -> Iterator[str]:
        yield from (p for p in self.entries if p)

    def read(self, entry: Entry, limit: int | None = None) -> bytes:
        if entry.kind != "file":
            raise InvalidParameter(f"read {entry.path} from the build context: not a file")
        if limit is not None and entry.size > limit:
            raise InvalidParameter(f"{entry.path} in the build context is {entry.size} bytes, over {limit}")
        return self._pread(entry.offset, entry.size)

    def chunks(self, entry: Entry) -> Iterator[bytes]:
        done = 0
        while done < entry.size:
            chunk = self._pread(entry.offset + done, min(_CHUNK, entry.size - done))
            if not chunk:
                raise InvalidParameter(f"read {entry.path} from the build context: truncated")
            done += len(chunk)
            yield chunk

    def _pread(self, offset: int, size: int) -> bytes:
        if self._fd is None:
            raise NotFound("the build context is closed")
        return os.pread(self._fd, size, offset)

    def file_digest(self, entry: Entry) -> str:
        if not entry.digest:
            sha = hashlib.sha256()
            for chunk in self.chunks(entry):
                sha.update(chunk)
            entry.digest = sha.hexdigest()
        return entry.digest

    def read_text(self, path: str, limit: int) -> str | None:
        entry = self.lookup(path)
        if entry is None or entry.kind != "file":
            return None
        return self.read(entry, limit).decode("utf-8", "replace")


def _decompress(spool: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix="context-", suffix=".tar", dir=spool.parent)
    try:
        with open(spool, "rb") as raw, os.fdopen(fd, "wb") as out:
            try:
                shutil.copyfileobj(decompressed(raw), out, _CHUNK)
            except ArchiveError as exc:
                raise ContextError(f"the build context is not a tar archive: {exc.message}") from None
            except (OSError, EOFError, ValueError) as exc:
                if isinstance(exc, OSError) and exc.errno is not None:
                    raise
                raise ContextError(f"the build context is not a tar archive: corrupt compressed stream: {exc}") from None
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def clean_member(name: str) -> str:
    """A member name as a context-relative path; refuse names that climb out of the context."""
    cleaned = posixpath.normpath("/" + name).lstrip("/")
    if cleaned == ".":
        cleaned = ""
    raw_parts = [p for p in name.split("/") if p not in ("", ".")]
    depth = 0
    for part in raw_parts:
        depth += -1 if part == ".." else 1
        if depth < 0:
            raise ContextError(f"build context member {short(name)!r} points outside the context")
    return cleaned


def clean_source(path: str) -> str:
    """A COPY source as a context-relative path; Docker's error when it climbs out."""
    stripped = path.lstrip("/")
    cleaned = posixpath.normpath(stripped) if stripped else "."
    if cleaned == ".." or cleaned.startswith("../"):
        raise InvalidParameter(f"forbidden path outside the build context: {path} ()")
    return "" if cleaned == "." else cleaned
