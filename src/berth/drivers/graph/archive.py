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
kernel refuses for lack of privilege are skipped (best effort, as Docker does in user
namespaces). Sparse files (old GNU, PAX 0.0, 0.1, 1.0) keep their holes.

The tar is read as strictly as Go's archive/tar (:mod:`tarstream`): a bad header, a block of
zeros followed by data, or a stream cut inside a header or a file is an ``InvalidParameter``, and
so is a member Linux cannot hold as it is (a name component over 255 bytes, a malformed
``security.capability``, an id or time out of range); the caller owns ``dest`` and removes it on
failure. ::

    with open("rootfs.tar.gz", "rb") as f:
        applied = apply_tar(f, Path("/var/lib/berth/overlay2/<id>/diff"), "overlay")
    applied.diff_id, applied.size      # 'sha256:...', 1982354
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

from berth.drivers.graph.tarstream import (
    BLOCK,
    READ_AHEAD,
    ArchiveError,
    HashingReader,
    Writer,
    check_end,
    decompressed,
    members,
    open_stream,
    short,
    sparse_segments,
)
from berth.errors import InvalidParameter
from berth.libcontainer.securepath import mkdir_all_in_root

WhiteoutFormat = Literal["overlay", "delete"]

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
NAME_MAX = 255  # bytes in one path component (Linux)
# errnos that a member's own name or metadata causes: the archive's fault (400), not ours (500)
_MEMBER_ERRNOS = {
    errno.ENAMETOOLONG, errno.EINVAL, errno.E2BIG, errno.ERANGE, errno.EFBIG, errno.EMLINK, errno.ELOOP,
}

__all__ = [
    "BLOCK", "Applied", "ArchiveError", "Writer", "apply_tar", "clean_name", "copy_data", "decompressed", "tree_size",
]


@dataclass(frozen=True)
class Applied:
    """What applying a layer tar produced: its diff id and the bytes it added (apparent size)."""

    diff_id: str
    size: int


def apply_tar(stream: BinaryIO, dest: Path, whiteouts: WhiteoutFormat, tee: Writer | None = None,
              digest: str | None = None) -> Applied:
    """Extract the layer tar ``stream`` into ``dest``; return its diff id and size. ``tee``
    receives the uncompressed tar bytes as they are read (the graph keeps them as a blob).
    ``digest``: the caller's sha256 of exactly the bytes ``stream`` holds (a file it hashed and
    nothing writes any more), returned as the diff id instead of hashing them again."""
    raw = decompressed(stream)
    reader = HashingReader(raw, tee, hashing=digest is None)
    if digest is not None and tee is None and raw is stream and hasattr(stream, "fileno"):
        reader.file = stream  # a plain file nobody needs the bytes of: data moves in the kernel
    applier = _Applier(str(dest), whiteouts)
    archive = open_stream(reader)
    for member in members(archive):
        try:
            applier.apply(member, archive)
        except OSError as exc:
            if exc.errno in _MEMBER_ERRNOS:
                raise ArchiveError(f"apply layer: {short(member.name)!r}: {exc.strerror}") from exc
            raise
        except (OverflowError, ValueError) as exc:  # an id, time, device number or name Linux cannot take
            raise ArchiveError(f"apply layer: {short(member.name)!r}: {exc}") from exc
        except tarfile.TarError as exc:  # the member's data is cut short
            raise ArchiveError(f"apply layer: invalid tar archive: {exc}") from exc
    check_end(reader.bytes_from(archive.offset) + reader.drain())
    applier.finish()
    return Applied(digest or reader.digest(), applier.size)


def copy_data(archive: tarfile.TarFile, member: tarfile.TarInfo, out: BinaryIO) -> bool:
    """Write a regular member's data to ``out`` straight from the :class:`HashingReader` under
    tarfile's stream, a MiB at a time; False (nothing read) where that stream is not as expected.

    tarfile's stream reader hands data over 10 KiB at a time and copies it four times on the
    way (its join, its slices, the extracted file's buffer); for a layer of big files that is
    most of the unpacking. Its state is two fields, the bytes read ahead (``buf``) and the
    position (``pos``): the data is taken from ``buf`` first, then from the reader, and ``pos``
    moves past it, so tarfile goes on with the next header as if it had read the data itself."""
    stream = cast(Any, archive.fileobj)
    reader = getattr(stream, "fileobj", None)
    if not (isinstance(reader, HashingReader) and getattr(stream, "comptype", None) == "tar"
            and isinstance(getattr(stream, "buf", None), bytes) and getattr(stream, "pos", None) == member.offset_data):
        return False
    head = stream.buf[: member.size]
    stream.buf = stream.buf[len(head) :]
    out.write(head)
    left = member.size - len(head)
    if left and reader.copy_to(out, left):
        left = 0
    while left:
        chunk = reader.read(min(left, READ_AHEAD))
        if not chunk:
            raise ArchiveError(f"apply layer: invalid tar archive: unexpected end of data in {short(member.name)!r}")
        out.write(chunk)
        left -= len(chunk)
    stream.pos += member.size
    return True


def clean_name(name: str) -> list[str]:
    """Split a member name into components; refuse absolute paths and ``..``."""
    if name.startswith("/"):
        raise InvalidParameter(f"apply layer: refusing absolute path {name!r} in layer tar")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidParameter(f"apply layer: refusing path {name!r} outside of the layer")
    for part in parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise ArchiveError(
                f"apply layer: file name too long: {short(name)!r} (a path component may have at most "
                f"{NAME_MAX} bytes)"
            )
    return parts


class _Applier:
    """Writes members one at a time; remembers directories to fix their mtimes at the end."""

    def __init__(self, dest: str, whiteouts: WhiteoutFormat) -> None:
        self.dest = dest
        self.whiteouts = whiteouts
        self.dir_times: list[tuple[str, float]] = []
        self.unpacked: set[str] = set()
        self.size = 0  # regular file bytes + symlink target lengths, as Docker's directory.Size

    def apply(self, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
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
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as out:
                if member.sparse is not None:
                    # Data segments at their offsets, then the real size: holes stay holes (a
                    # few KB of archive may describe terabytes of hole), as Docker's archive does.
                    for offset, chunk in sparse_segments(archive, member):
                        out.seek(offset)
                        out.write(chunk)
                    out.truncate(member.size)
                elif not copy_data(archive, member, out):
                    source = archive.extractfile(member)
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
        """The parent directory inside ``dest``: symlinks followed inside it, missing ones made 0755
        (Docker's mode for implied parents, whatever our umask) -- the one walk, securepath's."""
        try:
            return mkdir_all_in_root(self.dest, "/".join(parts))
        except OSError as exc:
            where = "/".join(parts)
            if exc.errno == errno.ELOOP:
                raise InvalidParameter(f"apply layer: too many levels of symbolic links at {where}") from exc
            if exc.errno == errno.ENOTDIR:
                raise InvalidParameter(f"apply layer: parent {where} is not a directory") from exc
            raise

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
                _set_xattr(path, member.name, key[len("SCHILY.xattr.") :], value.encode("utf-8", "surrogateescape"))


def _set_xattr(path: str, member: str, name: str, value: bytes) -> None:
    try:
        os.setxattr(path, name, value, follow_symlinks=False)
    except OSError as exc:
        # Best effort: the backing filesystem or our privileges may refuse some namespaces.
        if exc.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EACCES):
            return
        if exc.errno in _MEMBER_ERRNOS:  # a malformed value (e.g. security.capability) or name
            raise ArchiveError(
                f"apply layer: {short(member)!r}: set extended attribute {short(name, 64)!r}: {exc.strerror}"
            ) from exc
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
