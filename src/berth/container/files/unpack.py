"""Extracting a tar at a directory of a view, as dockerd's ``PUT /containers/{id}/archive``.

dockerd's rules (``pkg/archive.Unpack`` run chrooted in the container's root), kept here:

- names are cleaned like Go's ``filepath.Clean``; one that leaves the destination is refused
  (``"../x" is outside of "/dest"``); an absolute name is taken below the destination;
- missing parent directories are made (0755, root's); an existing entry is removed and
  replaced, except a directory met by a directory (merged), and with ``noOverwriteDirNonDir`` a
  directory may not replace a non-directory nor the other way round;
- a symlink whose target, joined to its directory, leaves the destination is refused, and so is
  a hard link whose target does; other symlinks are created as they are;
- owners are the archive's (``chown`` overrides them: ``copyUIDGID`` with a container user),
  then modes (after chown, which clears setuid), xattrs, times; directories get their times last.

Every parent directory is opened with ``openat2(root, path, RESOLVE_IN_ROOT)``, which follows
symlinks the container made (as dockerd's chroot does) but never out of the container; every
entry is then made relative to that fd with a single name and ``O_NOFOLLOW``/``O_EXCL``, so a
symlink swapped in at any moment cannot redirect a write to the host.

    unpack(root_fd, "/etc", reader, UnpackOptions(no_overwrite_dir_non_dir=True))
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from berth.container.files.forward import ForwardReader
from berth.container.files.resolve import open_in
from berth.drivers.graph.tarstream import ArchiveError, StrictTarInfo, members, sparse_segments
from berth.errors import BerthError, SystemFailure

CHUNK = 1 << 20
PREFIX = "Error processing tar file(exit status 1): "  # dockerd's text (its chrooted helper's exit)
_OPATH = os.O_PATH | os.O_NOFOLLOW


def q(text: str) -> str:
    """Go's ``%q`` for the texts dockerd puts in its messages."""
    return json.dumps(text, ensure_ascii=False)


class UnpackError(SystemFailure):
    """A member the rules refuse, or one that cannot be written (dockerd answers 500)."""

    def __init__(self, message: str) -> None:
        super().__init__(PREFIX + message)


@dataclass(frozen=True)
class UnpackOptions:
    no_overwrite_dir_non_dir: bool = False
    chown: tuple[int, int] | None = None  # every entry owned by this uid, gid
    # the container's (uid, gid) -> the host's, for a container in a user namespace
    ids: Callable[[int, int], tuple[int, int]] | None = None

    def owner(self, uid: int, gid: int) -> tuple[int, int]:
        """The host owner of an entry the archive gives to (uid, gid)."""
        uid, gid = self.chown or (uid, gid)
        return self.ids(uid, gid) if self.ids is not None else (uid, gid)


def go_clean(name: str) -> str:
    """Go's ``filepath.Clean`` (``..`` kept at the front of a relative path)."""
    rooted = name.startswith("/")
    out: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    text = "/".join(out)
    if rooted:
        return "/" + text
    return text or "."


def _join(*parts: str) -> str:
    return go_clean("/".join(p for p in parts if p))


@dataclass
class _Unpacker:
    root_fd: int
    dest: str  # resolved container path of the extraction directory
    options: UnpackOptions
    dirs: list[tuple[str, int]] = field(default_factory=list)  # (path, mtime) to set at the end

    def member(self, m: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        name = go_clean(m.name)
        path = _join(self.dest, name)
        inside = path == self.dest or path.startswith(self.dest.rstrip("/") + "/")
        if not inside:
            raise UnpackError(f"{q(m.name)} is outside of {q(self.dest)}")
        if path == self.dest:
            if m.isdir() and name != ".":
                self._metadata(self.dest, "", m)
                self.dirs.append((self.dest, int(m.mtime)))
            return  # "." (or a non-directory named like the destination): nothing to write
        parent_path, _, base = path.rpartition("/")
        parent_path = parent_path or "/"
        parent = self._parent(parent_path)
        try:
            self._replace(parent, parent_path, base, path, m)
            self._create(parent, base, path, m, archive)
            if not m.isreg():  # a regular file got its metadata through its own descriptor
                self._metadata(path, base, m, parent)
        finally:
            os.close(parent)
        if m.isdir():
            self.dirs.append((path, int(m.mtime)))

    def _parent(self, parent_path: str) -> int:
        """The parent directory's fd (resolved inside the root), made with its missing
        ancestors (0755) as dockerd's MkdirAll does."""
        try:
            return open_in(self.root_fd, parent_path, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            pass
        head, _, base = parent_path.rpartition("/")
        above = self._parent(head or "/")
        try:
            try:
                os.mkdir(base, 0o755, dir_fd=above)
            except FileExistsError:
                pass  # made meanwhile
            fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=above)
        except OSError as exc:
            raise self._failure("mkdir", parent_path, exc) from exc
        finally:
            os.close(above)
        os.fchmod(fd, 0o755)  # whatever the daemon's umask
        return fd

    def _replace(self, parent: int, parent_path: str, base: str, path: str, m: tarfile.TarInfo) -> None:
        try:
            st = os.stat(base, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return
        is_dir = stat.S_ISDIR(st.st_mode)
        if self.options.no_overwrite_dir_non_dir:
            # dockerd's texts, with its arguments in this order
            if is_dir and not m.isdir():
                raise UnpackError(f"cannot overwrite directory {q(path)} with non-directory {q(self.dest)}")
            if not is_dir and m.isdir():
                raise UnpackError(f"cannot overwrite non-directory {q(path)} with directory {q(self.dest)}")
        if is_dir and m.isdir():
            return  # merged
        try:
            remove_at(parent, base)
        except OSError as exc:
            raise self._failure("remove", path, exc) from exc

    def _create(self, parent: int, base: str, path: str, m: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        try:
            if m.isdir():
                try:
                    os.mkdir(base, 0o700, dir_fd=parent)
                except FileExistsError:
                    if not stat.S_ISDIR(os.stat(base, dir_fd=parent, follow_symlinks=False).st_mode):
                        raise
            elif m.isreg():
                self._write(parent, base, m, archive)
            elif m.issym():
                target = _join(path.rpartition("/")[0] or "/", m.linkname)
                if not target.startswith(self.dest):
                    raise UnpackError(f"invalid symlink {q(path)} -> {q(m.linkname)}")
                os.symlink(m.linkname, base, dir_fd=parent)
            elif m.islnk():
                self._hardlink(parent, base, path, m)
            elif m.ischr() or m.isblk():
                kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
                os.mknod(base, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=parent)
            elif m.isfifo():
                os.mkfifo(base, 0o600, dir_fd=parent)
            else:
                raise UnpackError(f"unhandled tar header type {_type_number(m)}")
        except OSError as exc:
            raise self._failure("create", path, exc) from exc

    def _write(self, parent: int, base: str, m: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(base, flags, 0o600, dir_fd=parent)
        try:
            self._data(fd, m, archive)
            # owner, then mode (chown clears setuid), xattrs, time: on the descriptor just written
            uid, gid = self.options.owner(m.uid, m.gid)
            os.fchown(fd, uid, gid)
            os.fchmod(fd, m.mode & 0o7777)
            for key, value in m.pax_headers.items():
                if key.startswith("SCHILY.xattr."):
                    _set_xattr(fd, key[len("SCHILY.xattr."):], value.encode("utf-8", "surrogateescape"))
            os.utime(fd, (m.mtime, m.mtime))
        finally:
            os.close(fd)  # an OSError is named with the member's path by _create

    @staticmethod
    def _data(fd: int, m: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        if m.sparse is not None:
            for offset, chunk in sparse_segments(archive, m):
                os.pwrite(fd, chunk, offset)
            os.ftruncate(fd, m.size)
            return
        stream = archive.fileobj
        if isinstance(stream, ForwardReader):
            stream.seek(m.offset_data)
            if stream.write_to(fd, m.size) != m.size:
                raise tarfile.ReadError("unexpected end of data")
            return
        source = archive.extractfile(m)
        if source is None:
            return
        while chunk := source.read(CHUNK):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]

    def _hardlink(self, parent: int, base: str, path: str, m: tarfile.TarInfo) -> None:
        target = _join(self.dest, m.linkname)
        if not target.startswith(self.dest):
            raise UnpackError(f"invalid hardlink {q(target)} -> {q(m.linkname)}")
        head, _, tbase = target.rpartition("/")
        try:
            tdir = open_in(self.root_fd, head or "/", os.O_PATH | os.O_DIRECTORY)
        except OSError as exc:
            raise UnpackError(f"link {target} {path}: {_reason(exc)}") from exc
        try:
            os.link(tbase, base, src_dir_fd=tdir, dst_dir_fd=parent, follow_symlinks=False)
        except OSError as exc:
            raise UnpackError(f"link {target} {path}: {_reason(exc)}") from exc
        finally:
            os.close(tdir)

    def _metadata(self, path: str, base: str, m: tarfile.TarInfo, parent: int | None = None) -> None:
        """Owner, then mode (chown clears setuid bits), xattrs and time of what was just made."""
        if m.islnk():
            return  # a hard link shares its target's inode, owner and mode
        uid, gid = self.options.owner(m.uid, m.gid)
        try:
            fd = os.open(base, _OPATH | os.O_CLOEXEC, dir_fd=parent) if parent is not None \
                else open_in(self.root_fd, path, _OPATH)
        except OSError as exc:
            raise self._failure("open", path, exc) from exc
        try:
            proc = f"/proc/self/fd/{fd}"
            if m.issym():
                os.chown(base, uid, gid, dir_fd=parent, follow_symlinks=False)
            else:
                os.chown(proc, uid, gid)
                os.chmod(proc, m.mode & 0o7777)
                for key, value in m.pax_headers.items():
                    if key.startswith("SCHILY.xattr."):
                        _set_xattr(proc, key[len("SCHILY.xattr."):], value.encode("utf-8", "surrogateescape"))
            if not m.isdir():
                if m.issym():
                    os.utime(base, (m.mtime, m.mtime), dir_fd=parent, follow_symlinks=False)
                else:
                    os.utime(proc, (m.mtime, m.mtime))
        except OSError as exc:
            raise self._failure("set metadata of", path, exc) from exc
        finally:
            os.close(fd)

    def finish(self) -> None:
        # children change a directory's mtime: directories get theirs last
        for path, mtime in self.dirs:
            try:
                fd = open_in(self.root_fd, path, _OPATH)
            except OSError:
                continue  # removed by a later member
            try:
                os.utime(f"/proc/self/fd/{fd}", (mtime, mtime))
            finally:
                os.close(fd)

    @staticmethod
    def _failure(op: str, path: str, exc: OSError) -> UnpackError:
        return UnpackError(f"{op} {path}: {_reason(exc)}")


def _go_tar_error(exc: Exception) -> str:
    """Go's archive/tar texts for what Python's tarfile reports."""
    text = str(exc)
    if "invalid header" in text or "bad checksum" in text or "empty header" in text:
        return "archive/tar: invalid tar header"
    if "unexpected end" in text or "truncated header" in text:
        return "unexpected EOF"
    return f"archive/tar: {text}"


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def _type_number(m: tarfile.TarInfo) -> int:
    return m.type[0] if m.type else 0


def _set_xattr(path: str | int, name: str, value: bytes) -> None:
    try:
        os.setxattr(path, name, value)
    except OSError as exc:
        # dockerd ignores ENOTSUP and EPERM (file systems without xattrs, namespaces refused)
        if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
            raise


def remove_at(dir_fd: int, name: str) -> None:
    """``rm -rf`` of ``name`` in ``dir_fd`` without following any symlink."""
    try:
        os.unlink(name, dir_fd=dir_fd)
        return
    except IsADirectoryError:
        pass
    except OSError as exc:
        if exc.errno != errno.EISDIR and exc.errno != errno.EPERM:
            raise
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        for child in os.listdir(fd):
            remove_at(fd, child)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)


def unpack(root_fd: int, dest: str, reader: BinaryIO | Any, options: UnpackOptions) -> None:
    """Extract the tar read from ``reader`` into ``dest`` (a resolved directory in the root)."""
    try:
        archive = tarfile.open(fileobj=ForwardReader(reader), mode="r:", tarinfo=StrictTarInfo)
    except tarfile.TarError as exc:
        if "empty file" in str(exc):
            return  # no body: nothing to extract (dockerd answers 200 too)
        raise UnpackError(_go_tar_error(exc)) from exc
    u = _Unpacker(root_fd, dest, options)
    try:
        for m in members(archive):
            u.member(m, archive)
    except ArchiveError as exc:
        raise UnpackError(exc.message.removeprefix("invalid tar archive: ")) from exc
    except (OverflowError, ValueError) as exc:  # an id, time or device number Linux cannot take
        raise UnpackError(str(exc)) from exc
    except tarfile.TarError as exc:
        raise UnpackError(_go_tar_error(exc)) from exc
    except BerthError:
        raise
    u.finish()
