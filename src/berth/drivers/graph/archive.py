"""Apply a layer tar to a directory: safely, with Docker's whiteouts, and hash it on the way.

The model: a layer is a tar stream (plain, gzip, bzip2 or xz), its *diff id* is the sha256 of
the uncompressed bytes, and applying it writes its entries under ``dest``. Entries are
checked before any write:

- absolute names and ``..`` components are refused; a parent directory that is a symlink is
  followed *inside* ``dest`` (Docker gets the same by chrooting), so no entry lands outside;
- hard links must name an entry already inside ``dest``;
- an existing entry is replaced (a directory over a directory only updates its metadata).

Whiteouts (``.wh.name`` deletes ``name``, ``.wh..wh..opq`` hides the lower directory) are
written in one of two formats: ``"overlay"`` (a 0/0 character device and the
``trusted.overlay.opaque`` xattr, what overlayfs reads) or ``"delete"`` (remove the paths from
``dest``, for drivers such as vfs whose layer dir already holds a copy of the parent).

Ownership, modes, mtimes, devices, fifos and xattrs are restored; devices and xattrs that the
kernel refuses are skipped (best effort, as Docker does in user namespaces).

The tar is read as strictly as Go's archive/tar: a bad header, a block of zeros followed by
data, or a stream cut inside a header or a file is an ``InvalidParameter``; the caller owns
``dest`` and removes it on failure. ::

    with open("rootfs.tar.gz", "rb") as f:
        applied = apply_tar(f, Path("/var/lib/berth/overlay2/<id>/diff"), "overlay")
    applied.diff_id, applied.size      # 'sha256:...', 1982354
"""

from __future__ import annotations

import bz2
import errno
import gzip
import hashlib
import lzma
import os
import shutil
import stat
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, Protocol, cast

from berth.errors import InvalidParameter, SystemFailure

WhiteoutFormat = Literal["overlay", "delete"]

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
BLOCK = 512
_MAX_SYMLINK_HOPS = 40
_TAIL_KEEP = 1 << 16  # > tarfile's read-ahead (RECORDSIZE), so the unparsed tail is recoverable


class Writer(Protocol):
    def write(self, data: bytes, /) -> int: ...


class ArchiveError(InvalidParameter):
    """The stream is not a valid (possibly compressed) tar archive."""


class _HashingReader:
    """Read the uncompressed stream, hash every byte and keep the last few KiB for the tail check."""

    def __init__(self, raw: BinaryIO, tee: Writer | None = None) -> None:
        self._raw = raw
        self._tee = tee
        self.sha = hashlib.sha256()
        self.total = 0
        self._tail = bytearray()

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._raw.read(size)
        except (EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError) as exc:
            raise ArchiveError(f"apply layer: corrupt compressed stream: {exc}") from exc
        except OSError as exc:
            if exc.errno is None:  # bz2/gzip report bad data as an OSError without errno
                raise ArchiveError(f"apply layer: corrupt compressed stream: {exc}") from exc
            raise
        self.sha.update(data)
        if self._tee is not None:
            self._tee.write(data)
        self.total += len(data)
        self._tail += data
        if len(self._tail) > _TAIL_KEEP:
            del self._tail[: len(self._tail) - _TAIL_KEEP]
        return data

    def bytes_from(self, offset: int) -> bytes:
        """The bytes read so far from ``offset`` on (must still be in the kept tail)."""
        start = offset - (self.total - len(self._tail))
        if start < 0:
            raise SystemFailure("apply layer: tar tail no longer buffered")
        return bytes(self._tail[start:])

    def drain(self) -> bytes:
        """Read to EOF (the diff id covers the whole stream); return what was read."""
        rest = bytearray()
        while chunk := self.read(1 << 16):
            rest += chunk
            if len(rest) > 2 * BLOCK:  # only the first two blocks matter for the check
                del rest[2 * BLOCK :]
        return bytes(rest)

    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


def decompressed(stream: BinaryIO) -> BinaryIO:
    """Wrap ``stream`` in the decompressor its magic bytes name (or return a buffered copy)."""
    buffered = stream if hasattr(stream, "peek") else _Peekable(stream)
    head = buffered.peek(6)[:6]  # type: ignore[attr-defined]
    source = cast(BinaryIO, buffered)
    if head.startswith(b"\x1f\x8b"):
        return cast(BinaryIO, gzip.GzipFile(fileobj=source, mode="rb"))
    if head.startswith(b"BZh"):
        return cast(BinaryIO, bz2.BZ2File(source, mode="rb"))
    if head.startswith(b"\xfd7zXZ\x00"):
        return cast(BinaryIO, lzma.LZMAFile(source, mode="rb"))
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        raise ArchiveError("apply layer: zstd-compressed layers are not supported")
    return buffered  # type: ignore[return-value]


class _Peekable:
    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._buf = b""

    def peek(self, size: int) -> bytes:
        while len(self._buf) < size:
            chunk = self._raw.read(size - len(self._buf))
            if not chunk:
                break
            self._buf += chunk
        return self._buf

    def read(self, size: int = -1) -> bytes:
        if self._buf:
            if size < 0:
                out, self._buf = self._buf + self._raw.read(), b""
                return out
            out, self._buf = self._buf[:size], self._buf[size:]
            return out
        return self._raw.read(size)


@dataclass(frozen=True)
class Applied:
    """What applying a layer tar produced: its diff id and the bytes it added (apparent size)."""

    diff_id: str
    size: int


def apply_tar(stream: BinaryIO, dest: Path, whiteouts: WhiteoutFormat, tee: Writer | None = None) -> Applied:
    """Extract the layer tar ``stream`` into ``dest``; return its diff id and size. ``tee``
    receives the uncompressed tar bytes as they are read (the graph keeps them as a blob)."""
    reader = _HashingReader(decompressed(stream), tee)
    applier = _Applier(str(dest), whiteouts)
    try:
        archive = tarfile.open(fileobj=reader, mode="r|")  # type: ignore[call-overload]
        for member in archive:
            applier.apply(member, archive.extractfile)
        offset = archive.offset
    except tarfile.TarError as exc:
        raise ArchiveError(f"apply layer: invalid tar archive: {exc}") from exc
    _check_end(reader.bytes_from(offset) + reader.drain())
    applier.finish()
    return Applied(reader.digest(), applier.size)


def _check_end(tail: bytes) -> None:
    """Go's archive/tar end rules: clean EOF, or two zero blocks; anything else is an error."""
    if not tail:
        return
    if len(tail) < BLOCK:
        raise ArchiveError("apply layer: invalid tar archive: unexpected EOF")
    if tail[:BLOCK].strip(b"\0"):
        raise ArchiveError("apply layer: invalid tar archive: archive/tar: invalid tar header")
    second = tail[BLOCK : 2 * BLOCK]
    if second and len(second) < BLOCK:
        raise ArchiveError("apply layer: invalid tar archive: unexpected EOF")
    if second.strip(b"\0"):
        raise ArchiveError("apply layer: invalid tar archive: archive/tar: invalid tar header")


def clean_name(name: str) -> list[str]:
    """Split a member name into components; refuse absolute paths and ``..``."""
    if name.startswith("/"):
        raise InvalidParameter(f"apply layer: refusing absolute path {name!r} in layer tar")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidParameter(f"apply layer: refusing path {name!r} outside of the layer")
    return parts


class _Applier:
    """Writes members one at a time; remembers directories to fix their mtimes at the end."""

    def __init__(self, dest: str, whiteouts: WhiteoutFormat) -> None:
        self.dest = dest
        self.whiteouts = whiteouts
        self.dir_times: list[tuple[str, float]] = []
        self.unpacked: set[str] = set()
        self.size = 0  # regular file bytes + symlink target lengths, as Docker's directory.Size

    def apply(
        self, member: tarfile.TarInfo, open_member: Callable[[tarfile.TarInfo], BinaryIO | None]
    ) -> None:
        parts = clean_name(member.name)
        if not parts:  # the root itself ("./"): metadata only
            if member.isdir():
                self._metadata(self.dest, member)
                self.dir_times.append((self.dest, member.mtime))
            return
        parent = self._scoped_dir(parts[:-1])
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parent, base)
            return
        path = os.path.join(parent, base)
        self.unpacked.add(path)
        self._make_room(path, member.isdir())
        if member.isdir():
            if not os.path.isdir(path):
                os.mkdir(path, 0o700)
            self.dir_times.append((path, member.mtime))
        elif member.isreg():
            source = open_member(member)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as out:
                if source is not None:
                    shutil.copyfileobj(source, out, 1 << 20)
            self.size += member.size
        elif member.issym():
            os.symlink(member.linkname, path)
            self.size += len(os.fsencode(member.linkname))
        elif member.islnk():
            os.link(self._link_target(member), path, follow_symlinks=False)
            return  # a hard link shares the target's inode and metadata
        elif member.ischr() or member.isblk():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            try:
                os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))
            except PermissionError:
                return  # best effort: no CAP_MKNOD here (e.g. a user namespace); Docker skips too
        elif member.isfifo():
            os.mkfifo(path, 0o600)
        else:
            return  # other types (GNU sparse leftovers, contiguous files) carry nothing to write
        self._metadata(path, member)
        if not member.isdir():
            os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)

    def finish(self) -> None:
        # Children change a directory's mtime, so directories get theirs last, deepest first.
        for path, mtime in sorted(self.dir_times, key=lambda item: -item[0].count("/")):
            os.utime(path, (mtime, mtime), follow_symlinks=False)

    def _scoped_dir(self, parts: list[str]) -> str:
        """Resolve the parent directory inside ``dest``, following symlinks in scope, creating it."""
        resolved: list[str] = []
        pending = list(parts)
        hops = 0
        while pending:
            part = pending.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            current = os.path.join(self.dest, *resolved, part)
            try:
                info = os.lstat(current)
            except FileNotFoundError:
                os.mkdir(current, 0o755)
                resolved.append(part)
                continue
            if stat.S_ISLNK(info.st_mode):
                hops += 1
                if hops > _MAX_SYMLINK_HOPS:
                    raise InvalidParameter(f"apply layer: too many levels of symbolic links at {current}")
                target = os.readlink(current)
                if target.startswith("/"):
                    resolved = []
                pending = target.split("/") + pending
                continue
            if not stat.S_ISDIR(info.st_mode):
                raise InvalidParameter(f"apply layer: parent {current} is not a directory")
            resolved.append(part)
        return os.path.join(self.dest, *resolved)

    def _link_target(self, member: tarfile.TarInfo) -> str:
        parts = clean_name(member.linkname)
        if not parts:
            raise InvalidParameter(f"apply layer: hard link {member.name!r} has an empty target")
        target = os.path.join(self._scoped_dir(parts[:-1]), parts[-1])
        if not os.path.lexists(target):
            raise InvalidParameter(
                f"apply layer: hard link {member.name!r} to {member.linkname!r}: target not in the layer"
            )
        return target

    def _make_room(self, path: str, is_dir: bool) -> None:
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(info.st_mode):
            if not is_dir:
                shutil.rmtree(path)
        else:
            os.unlink(path)

    def _whiteout(self, parent: str, base: str) -> None:
        if base == WHITEOUT_OPAQUE:
            if self.whiteouts == "overlay":
                os.setxattr(parent, OVERLAY_OPAQUE_XATTR, b"y")
            else:
                for name in os.listdir(parent):
                    child = os.path.join(parent, name)
                    if child not in self.unpacked:
                        _remove(child)
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return  # aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): nothing to apply
        original = os.path.join(parent, base[len(WHITEOUT_PREFIX) :])
        if self.whiteouts == "overlay":
            self._make_room(original, False)
            os.mknod(original, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        else:
            _remove(original)

    def _metadata(self, path: str, member: tarfile.TarInfo) -> None:
        try:
            os.chown(path, member.uid, member.gid, follow_symlinks=False)
        except OSError as exc:
            # EPERM: not root; EINVAL: an id not mapped in our user namespace
            if os.geteuid() == 0 or exc.errno not in (errno.EPERM, errno.EINVAL):
                raise
            # not root (unit tests, rootless): entries keep our ids, as rootless Docker does
        if not member.issym():
            # chmod after chown: chown clears the setuid/setgid bits
            os.chmod(path, member.mode & 0o7777)
        for key, value in member.pax_headers.items():
            if key.startswith("SCHILY.xattr."):
                _set_xattr(path, key[len("SCHILY.xattr.") :], value.encode("utf-8", "surrogateescape"))


def _set_xattr(path: str, name: str, value: bytes) -> None:
    try:
        os.setxattr(path, name, value, follow_symlinks=False)
    except OSError as exc:
        # Best effort: the backing filesystem or our privileges may refuse some namespaces.
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EACCES):
            raise


def _remove(path: str) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def tree_size(root: Path) -> int:
    """Apparent size of a tree: sizes of all non-directories (symlinks count their target's
    length), each hard-linked inode once -- Docker's ``directory.Size``."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            info = os.lstat(os.path.join(dirpath, name))
            if info.st_nlink > 1:
                key = (info.st_dev, info.st_ino)
                if key in seen:
                    continue
                seen.add(key)
            total += info.st_size
    return total
