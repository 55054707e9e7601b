"""A tar of a path in a view, as dockerd's ``GET /containers/{id}/archive`` makes it.

The entries are named after the asked path's last element (``/etc/`` gives ``etc/``,
``etc/hosts``...; ``/d/.`` gives ``./``...; ``/`` gives ``/``, ``/bin/``...), directories are
walked depth first in byte order of names, a second name of a hard-linked inode becomes a hard
link to the first, sockets are skipped, ``security.capability`` travels as a PAX xattr, times are
whole seconds, and owner names come from the host's user database (dockerd's Go tar does so).

The walk never follows a symlink: every directory is opened from its parent's fd with
``O_NOFOLLOW | O_DIRECTORY`` and every file with ``O_NOFOLLOW``; a file that changes size while
it is read is cut or padded with zeros to the size in its header, so the tar stays valid.

    for chunk in pack(root_fd, resource): out.write(chunk)
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
import tarfile
from collections.abc import Callable, Iterator
from functools import lru_cache

from berth.container.files.resolve import Resource, open_in

CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC | os.O_NONBLOCK
_CAPABILITY = "security.capability"


@lru_cache(maxsize=256)
def _uname(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return ""


@lru_cache(maxsize=256)
def _gname(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except (KeyError, OverflowError):
        return ""


def entry_prefix(resource: Resource) -> str:
    """The name the archive's top entry gets: the asked path's last element (``/`` for root)."""
    return resource.name


def with_type_bits(block: bytes, st_mode: int) -> bytes:
    """Go's tar headers carry the file type in the mode field too (``0100644``, ``040755``);
    Python's carry only the permission bits: set the whole mode in the last header block and
    recompute its checksum."""
    head = bytearray(block[-tarfile.BLOCKSIZE:])
    head[100:108] = b"%07o\0" % (st_mode & 0o7777777)
    head[148:156] = b" " * 8
    head[148:156] = b"%06o\0 " % sum(head)
    return block[: -tarfile.BLOCKSIZE] + bytes(head)


class _Packer:
    def __init__(self, ids: Callable[[int, int], tuple[int, int]] | None = None) -> None:
        self.buf = bytearray()
        self.links: dict[tuple[int, int], str] = {}
        self.ids = ids

    def header(self, name: str, st: os.stat_result, link: str = "", fd: int | None = None) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        if self.ids is not None:  # a container in a user namespace: its own ids, no host names
            info.uid, info.gid = self.ids(st.st_uid, st.st_gid)
        else:
            info.uname, info.gname = _uname(st.st_uid), _gname(st.st_gid)
        info.mtime = int(st.st_mtime)
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFDIR:
            info.type = tarfile.DIRTYPE
        elif kind == stat.S_IFLNK:
            info.type, info.linkname = tarfile.SYMTYPE, link
        elif kind == stat.S_IFIFO:
            info.type = tarfile.FIFOTYPE
        elif kind in (stat.S_IFCHR, stat.S_IFBLK):
            info.type = tarfile.CHRTYPE if kind == stat.S_IFCHR else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        else:
            info.type, info.size = tarfile.REGTYPE, st.st_size
        if fd is not None:
            try:
                info.pax_headers = {
                    "SCHILY.xattr." + _CAPABILITY: os.getxattr(fd, _CAPABILITY).decode("utf-8", "surrogateescape")
                }
            except OSError:
                pass  # no capability attribute (the usual case), or a file system without xattrs
        return info

    def add(self, info: tarfile.TarInfo, st_mode: int | None = None) -> None:
        block = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        if st_mode is not None:
            block = with_type_bits(block, st_mode)
        self.buf += block

    def file(self, dir_fd: int, name: str, entry: str, st: os.stat_result) -> Iterator[bytes]:
        """A non-directory ``name`` in ``dir_fd`` as entry ``entry``."""
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFSOCK:
            return  # dockerd skips sockets too
        if kind != stat.S_IFDIR and st.st_nlink > 1:
            first = self.links.get((st.st_dev, st.st_ino))
            if first is not None:
                info = self.header(entry, st)
                info.type, info.linkname, info.size = tarfile.LNKTYPE, first, 0
                self.add(info, st.st_mode)
                return
            self.links[(st.st_dev, st.st_ino)] = entry
        if kind == stat.S_IFLNK:
            self.add(self.header(entry, st, os.readlink(name, dir_fd=dir_fd)), st.st_mode)
            return
        if kind != stat.S_IFREG:
            self.add(self.header(entry, st), st.st_mode)
            return
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ELOOP):
                return  # removed or swapped for a symlink since the directory was read
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return
            info = self.header(entry, st, fd=fd)
            self.add(info, st.st_mode)
            left = info.size
            while left > 0:
                data = os.read(fd, min(left, CHUNK))
                if not data:
                    data = bytes(min(left, CHUNK))  # the file shrank: zeros keep the header's promise
                left -= len(data)
                if len(self.buf) + len(data) >= CHUNK:
                    if self.buf:
                        yield bytes(self.buf)
                        self.buf.clear()
                    yield data
                else:
                    self.buf += data
            self.buf += bytes(-info.size % tarfile.BLOCKSIZE)
        finally:
            os.close(fd)

    def tree(self, dir_fd: int, entry: str) -> Iterator[bytes]:
        """The directory ``dir_fd`` (its entry already written) and everything below it."""
        for name in sorted(os.listdir(dir_fd), key=os.fsencode):
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed while we walk
            child = f"{entry}/{name}" if entry != "/" else f"/{name}"
            if stat.S_ISDIR(st.st_mode):
                try:
                    fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
                except OSError as exc:
                    if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
                        continue  # removed or swapped for something else meanwhile
                    raise
                try:
                    dst = os.fstat(fd)
                    self.add(self.header(child, dst, fd=fd), dst.st_mode)
                    yield from self.tree(fd, child)
                finally:
                    os.close(fd)
            else:
                yield from self.file(dir_fd, name, child, st)
            if len(self.buf) >= CHUNK:
                yield bytes(self.buf)
                self.buf.clear()


def pack(root_fd: int, res: Resource, ids: Callable[[int, int], tuple[int, int]] | None = None) -> Iterator[bytes]:
    """The tar stream of ``res`` in chunks of about :data:`CHUNK` bytes; ``ids`` maps the
    owners read (host ids) to the container's, for a container in a user namespace."""
    p = _Packer(ids)
    top = entry_prefix(res)
    if res.is_dir:
        fd = open_in(root_fd, res.path, _DIR_FLAGS & ~os.O_NOFOLLOW if res.base in ("", ".") else _DIR_FLAGS)
        try:
            dst = os.fstat(fd)
            p.add(p.header(top, dst, fd=fd), dst.st_mode)
            yield from p.tree(fd, top.rstrip("/") or "/")
        finally:
            os.close(fd)
    else:
        parent = open_in(root_fd, res.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            st = os.stat(res.base, dir_fd=parent, follow_symlinks=False)
            yield from p.file(parent, res.base, top, st)
        finally:
            os.close(parent)
    p.buf += bytes(tarfile.BLOCKSIZE * 2)
    yield bytes(p.buf)
