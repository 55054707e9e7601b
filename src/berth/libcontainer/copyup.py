"""tmpcopyup: copying the directory a new tmpfs covers into it, before the container starts.

The source is the image's (or a volume's) content, so it is hostile: every step goes through
directory descriptors opened level by level with ``O_NOFOLLOW``, symbolic links are copied as
links (never followed), and nothing is written outside the tmpfs. What is kept: file content,
type (directories, regular files, symlinks, device nodes, FIFOs, sockets), owner, mode
(set-id bits included: chown comes first, since it clears them), extended attributes (after
chown, which clears ``security.capability``), hard links inside the tree, and times.

    below = os.open("/rootfs/tmp", os.O_RDONLY | os.O_DIRECTORY)   # before mounting over it
    mount("tmpfs", "/rootfs/tmp", "tmpfs", 0, "size=64m")
    copy_tree(below, "/rootfs/tmp", root_mode=True, root_owner=True)
"""

from __future__ import annotations

import errno
import os
import stat

MAX_DEPTH = 256  # two descriptors per level are held open while copying

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class CopyError(Exception):
    """A step of the copy failed: the message names the path (relative to the mount) and cause."""


def copy_tree(src_fd: int, dest: str, *, root_mode: bool = True, root_owner: bool = True) -> None:
    """Copy the directory open at ``src_fd`` into the (empty) directory ``dest``. The root's
    mode and owner are copied unless the mount set them (``mode=``, ``uid=``/``gid=``)."""
    try:
        dst_fd = os.open(dest, _DIR)
    except OSError as exc:
        raise CopyError(f"open '{dest}': {exc.strerror}") from exc
    try:
        links: dict[tuple[int, int], str] = {}
        _copy_dir(src_fd, dst_fd, dst_fd, "", links, 0)
        st = os.fstat(src_fd)
        if root_owner:
            _step(".", os.fchown, dst_fd, st.st_uid, st.st_gid)
        if root_mode:
            _step(".", os.fchmod, dst_fd, stat.S_IMODE(st.st_mode))
        _copy_xattrs(".", src_fd, dst_fd)
        _step(".", os.utime, dst_fd, ns=(st.st_atime_ns, st.st_mtime_ns))
    finally:
        os.close(dst_fd)


def _step(rel: str, fn, *args, **kw) -> None:  # type: ignore[no-untyped-def]
    try:
        fn(*args, **kw)
    except OSError as exc:
        raise CopyError(f"copy '{rel}': {exc.strerror or exc}") from exc


def _copy_dir(
    src_fd: int, dst_fd: int, root_fd: int, rel: str, links: dict[tuple[int, int], str], depth: int
) -> None:
    if depth >= MAX_DEPTH:
        raise CopyError(f"copy '{rel}': deeper than {MAX_DEPTH} levels")
    try:
        with os.scandir(src_fd) as it:
            names = sorted(entry.name for entry in it)
    except OSError as exc:
        raise CopyError(f"read directory '{rel or '.'}': {exc.strerror}") from exc
    for name in names:
        path = f"{rel}/{name}" if rel else name
        try:
            st = os.stat(name, dir_fd=src_fd, follow_symlinks=False)
        except OSError as exc:
            raise CopyError(f"stat '{path}': {exc.strerror}") from exc
        kind = stat.S_IFMT(st.st_mode)
        if kind != stat.S_IFDIR and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            if key in links:  # a hard link to a file already copied: link it, as the source is
                _step(
                    path,
                    os.link,
                    links[key],
                    name,
                    src_dir_fd=root_fd,
                    dst_dir_fd=dst_fd,
                    follow_symlinks=False,
                )
                continue
            links[key] = path
        if kind == stat.S_IFDIR:
            _step(path, os.mkdir, name, 0o700, dir_fd=dst_fd)
            sub_src = sub_dst = -1
            try:
                sub_src = os.open(name, _DIR, dir_fd=src_fd)
                sub_dst = os.open(name, _DIR, dir_fd=dst_fd)
            except OSError as exc:
                for fd in (sub_src, sub_dst):
                    if fd >= 0:
                        os.close(fd)
                raise CopyError(f"open directory '{path}': {exc.strerror}") from exc
            try:
                _copy_dir(sub_src, sub_dst, root_fd, path, links, depth + 1)
                _finish_fd(path, sub_src, sub_dst, st)
            finally:
                os.close(sub_src)
                os.close(sub_dst)
        elif kind == stat.S_IFREG:
            _copy_file(name, path, src_fd, dst_fd, st)
        elif kind == stat.S_IFLNK:
            try:
                target = os.readlink(name, dir_fd=src_fd)
            except OSError as exc:
                raise CopyError(f"read link '{path}': {exc.strerror}") from exc
            _step(path, os.symlink, target, name, dir_fd=dst_fd)
            _finish_node(name, path, src_fd, dst_fd, st)
        else:  # character and block devices, FIFOs, sockets: the node itself
            _step(path, os.mknod, name, stat.S_IMODE(st.st_mode) | kind, st.st_rdev, dir_fd=dst_fd)
            _finish_node(name, path, src_fd, dst_fd, st)


def _copy_file(name: str, path: str, src_fd: int, dst_fd: int, st: os.stat_result) -> None:
    try:
        fin = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_fd)
    except OSError as exc:
        raise CopyError(f"open '{path}': {exc.strerror}") from exc
    try:
        try:
            fout = os.open(
                name,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=dst_fd,
            )
        except OSError as exc:
            raise CopyError(f"create '{path}': {exc.strerror}") from exc
        try:
            try:
                while os.sendfile(fout, fin, None, 1 << 24) > 0:
                    pass
            except OSError as exc:
                raise CopyError(f"copy '{path}': {exc.strerror}") from exc
            _finish_fd(path, fin, fout, st)
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def _finish_fd(path: str, src_fd: int, dst_fd: int, st: os.stat_result) -> None:
    """Owner, then mode (chown clears set-id bits), then xattrs (chown clears file capabilities),
    then times (last: writing changes them) — of an open directory or file."""
    _step(path, os.fchown, dst_fd, st.st_uid, st.st_gid)
    _step(path, os.fchmod, dst_fd, stat.S_IMODE(st.st_mode))
    _copy_xattrs(path, src_fd, dst_fd)
    _step(path, os.utime, dst_fd, ns=(st.st_atime_ns, st.st_mtime_ns))


def _finish_node(name: str, path: str, src_dir: int, dst_dir: int, st: os.stat_result) -> None:
    """The same for a symlink or device node, by name in its directory (never followed)."""
    _step(path, os.chown, name, st.st_uid, st.st_gid, dir_fd=dst_dir, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):  # a link's own mode means nothing (and cannot be set)
        _step(path, os.chmod, name, stat.S_IMODE(st.st_mode), dir_fd=dst_dir)
    # xattr calls take no dir_fd: reach the entry through its directory's /proc/self/fd link
    _copy_xattrs(path, f"/proc/self/fd/{src_dir}/{name}", f"/proc/self/fd/{dst_dir}/{name}")
    _step(path, os.utime, name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst_dir, follow_symlinks=False)


def _copy_xattrs(path: str, src: int | str, dst: int | str) -> None:
    # a descriptor is the file itself; a path's last component must not be followed
    nofollow = {} if isinstance(src, int) else {"follow_symlinks": False}
    try:
        names = os.listxattr(src, **nofollow)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return  # the source file system keeps none
        raise CopyError(f"list extended attributes of '{path}': {exc.strerror}") from exc
    for attr in names:
        try:
            value = os.getxattr(src, attr, **nofollow)
            os.setxattr(dst, attr, value, **nofollow)
        except OSError as exc:
            if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                continue  # tmpfs cannot hold this namespace (e.g. no security module for it)
            if exc.errno == errno.ENODATA:
                continue  # removed meanwhile
            raise CopyError(f"copy extended attribute {attr} of '{path}': {exc.strerror}") from exc
