"""Remove a directory that may hold mounts, never deleting through one.

A container's directories can have mounts below them: with an OCI runtime (runc) the rootfs and
the id-mapped volumes are mounted in the bundle (the exec dir), a chroot container's root is a
bind there, and a mount can propagate into the data root from elsewhere. ``shutil.rmtree`` would
descend into any of them that is still mounted (an unmount that failed or never ran: a killed
monitor, EBUSY) and delete the volume's or the image's files. As dockerd (mount-aware removal of
a container's directories) and containerd (``mount.UnmountAll`` before ``RemoveAll``),
:func:`remove_tree` first unmounts, then removes without ever crossing into another mount:

1. every mount point at or below the path in ``/proc/self/mountinfo`` (octal escapes such as
   ``\\040`` undone) is unmounted, deepest first, a plain ``umount`` and ``MNT_DETACH`` where that
   is busy, never following a symlink;
2. the tree is walked by directory fds (``openat`` with ``O_NOFOLLOW | O_DIRECTORY``: a symlink
   is unlinked, never followed), and before going into a directory its mount id (``statx``
   ``STATX_MNT_ID``, Linux 5.8; before that, the one ``name_to_handle_at`` reports) is compared
   with the tree's: ``st_dev`` cannot tell, a bind or
   id-mapped mount of the same file system keeps it. Whatever is still a mount is left alone,
   with the directories above it, and logged.

Mount namespaces: only the caller's own namespace's mounts can be walked into, and those are
the ones its mountinfo lists and its ``statx`` sees, so the check is made where it matters.
A mount made in another namespace that did not propagate here is not on this side's path: what
the walk finds there is the directory under it, and removing that directory detaches the other
namespace's mount (Linux 3.18 on) without touching its files. The daemon and the monitors it
starts share one namespace; the monitor's helpers mount the runc bundle's rootfs in it.

    kept = remove_tree("/run/berth/<id>")   # [] when everything went
"""

from __future__ import annotations

import errno
import os
import re
import stat

from berth.libcontainer import kernel

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_ESCAPE = re.compile(rb"\\([0-7]{3})")


def _warn(message: str) -> None:
    import logging  # only when something is kept: the monitor imports this module on its fast path

    logging.getLogger("berth.removetree").warning("%s", message)


def unescape(field: bytes) -> bytes:
    r"""A mountinfo path with its octal escapes (space, tab, newline, backslash) undone.

    >>> unescape(rb"/a\040b\134c")
    b'/a b\\c'
    """
    return _ESCAPE.sub(lambda m: bytes((int(m.group(1), 8),)), field)


def mount_points(lines: Iterable[bytes]) -> list[bytes]:
    """The mount points of mountinfo ``lines`` (field 5), in their order (a stacked mount after
    the one it covers)."""
    out = []
    for line in lines:
        fields = line.split(b" ", 5)
        if len(fields) > 4:
            out.append(unescape(fields[4]))
    return out


def mounts_under(path: str | bytes, mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Mount points at or below ``path`` (an absolute path without symlinks) in the caller's mount
    namespace, deepest first (of stacked ones, the top first)."""
    top = os.fsencode(path).rstrip(b"/") or b"/"
    with open(mountinfo, "rb") as f:
        points = mount_points(f)
    inside = [p for p in reversed(points) if p == top or p.startswith(top + b"/") or top == b"/"]
    inside.sort(key=lambda p: p.count(b"/"), reverse=True)  # stable: stacks keep top-first
    return [os.fsdecode(p) for p in inside]


def unmount_under(path: str, mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Unmount everything at or below ``path`` (deepest first; ``MNT_DETACH`` where busy). Returns
    the mount points that are still there (logged)."""
    left: list[str] = []
    for _ in range(64):  # stacked mounts and mounts that propagate back: until none or no progress
        left = mounts_under(path, mountinfo)
        progress = False
        for point in left:
            try:
                kernel.umount2(point, kernel.UMOUNT_NOFOLLOW)
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    continue  # gone meanwhile (EINVAL, ENOENT), or locked in this namespace (EINVAL, EPERM)
                try:
                    kernel.umount2(point, kernel.MNT_DETACH | kernel.UMOUNT_NOFOLLOW)
                except OSError:
                    continue
            progress = True
        if not progress:
            break
    if left:
        _warn(f"cannot unmount {', '.join(left)}: left in place")
    return left


def _mount_id(fd: int) -> tuple[int | None, bool]:
    """(mount id, is a mount's root) of the open file ``fd``: statx (Linux 5.8), else the id
    name_to_handle_at reports (older kernels; None on a file system without handles)."""
    mnt_id, root = kernel.statx_mount(fd)
    if mnt_id is None:
        try:
            mnt_id = kernel.handle_mount_id(fd)
        except OSError:
            pass
    return mnt_id, root


class _Mount:
    """The mount identity of an open directory, compared with the tree's top."""

    def __init__(self, fd: int) -> None:
        self.id, _ = _mount_id(fd)
        self.dev = os.fstat(fd).st_dev

    def same(self, fd: int) -> bool:
        mnt_id, root = _mount_id(fd)
        if mnt_id is not None and self.id is not None:
            return mnt_id == self.id and not root
        # no mount id at all (an old kernel, a file system without handles): a mount of another
        # file system at least
        return os.fstat(fd).st_dev == self.dev and not root


def remove_tree(path: str | os.PathLike[str], unmount: bool = True) -> list[str]:
    """Remove ``path`` (a directory, a file or a symlink; nothing when it does not exist) and
    everything below it that is on the same mount. First unmounts what is mounted there (unless
    ``unmount`` is false). Returns the paths left in place because they are (still) mounts, each
    logged; a removal error of anything else is logged too, and the walk goes on (as
    ``rmtree(ignore_errors=True)`` did)."""
    where = os.path.abspath(os.fspath(path))
    parent, name = os.path.split(where)
    if not name:
        raise ValueError(f"remove_tree: refusing to remove {where!r}")
    if unmount:
        try:
            unmount_under(os.path.join(os.path.realpath(parent), name))
        except OSError as exc:  # no /proc: the walk below still never goes through a mount
            _warn(f"unmount below {where}: {exc}")
    try:
        pfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    except OSError as exc:
        _warn(f"remove {where}: {exc}")
        return []
    kept: list[str] = []
    try:
        _remove(pfd, name, where, kept)
    finally:
        os.close(pfd)
    if kept:
        _warn(f"remove {where}: left in place, still mounted: {', '.join(kept)}")
    return kept


def _remove(pfd: int, name: str, where: str, kept: list[str]) -> None:
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP):
            _unlink(pfd, name, where)  # a file or a symlink (never followed)
        else:
            _warn(f"remove {where}: {exc}")
        return
    stack: list[tuple[int, str, str, list[str]]] = []  # (fd, path, name in the parent, entries left)
    try:
        top = _Mount(pfd)
        if not top.same(fd):
            kept.append(where)
            return
        stack.append((fd, where, name, _names(fd, where)))  # iterative: no recursion limit
        fd = -1  # the stack owns it now
        while stack:
            dfd, dpath, dname, names = stack[-1]
            if not names:
                stack.pop()
                os.close(dfd)
                _rmdir(stack[-1][0] if stack else pfd, dname, dpath)
                continue
            entry = names.pop()
            epath = os.path.join(dpath, entry)
            try:
                st = os.stat(entry, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            except OSError as exc:
                _warn(f"remove {epath}: {exc}")
                continue
            if not stat.S_ISDIR(st.st_mode):
                _unlink(dfd, entry, epath)  # a file bind mount refuses (EBUSY): never through it
                continue
            try:
                sub = os.open(entry, _DIR_FLAGS, dir_fd=dfd)
            except FileNotFoundError:
                continue
            except OSError as exc:
                if exc.errno in (errno.ENOTDIR, errno.ELOOP):  # swapped for a file or a symlink
                    _unlink(dfd, entry, epath)
                else:
                    _warn(f"remove {epath}: {exc}")
                continue
            if not top.same(sub):  # a mount, or the mount of another file system: left alone
                os.close(sub)
                kept.append(epath)
                continue
            stack.append((sub, epath, entry, _names(sub, epath)))
    finally:
        if fd >= 0:
            os.close(fd)
        for dfd, *_ in stack:
            os.close(dfd)


def _names(fd: int, where: str) -> list[str]:
    try:
        with os.scandir(fd) as it:
            return [e.name for e in it]
    except OSError as exc:
        _warn(f"remove {where}: list: {exc}")
        return []


def _unlink(dfd: int, name: str, where: str) -> None:
    try:
        os.unlink(name, dir_fd=dfd)
    except FileNotFoundError:
        pass
    except OSError as exc:
        _warn(f"remove {where}: {exc}")


def _rmdir(dfd: int, name: str, where: str) -> None:
    try:
        os.rmdir(name, dir_fd=dfd)
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EBUSY):  # those hold a kept mount: said already
            _warn(f"remove {where}: {exc}")
