"""Opening what init writes to or mounts over in /proc (and /sys, /dev/null), checked to be the
thing it should be: the runc CVE classes where a container redirected those writes and masks.

Init writes sysctls and its oom_score_adj through /proc and hides paths by mounting over them;
whatever the container's tree holds at those paths decides where the write or mount lands. A
symlink there (CVE-2019-16884, CVE-2019-19921), a /proc that is not the procfs init mounted
(CVE-2025-52881: a shared volume under the container's /proc) or a /dev/null that is a symlink to
``/proc/sys/kernel/core_pattern`` (CVE-2025-31133: the "mask" would then expose that host file
writable) must not redirect them. So every such path is opened here, once, with no symlink (nor
magic link) followed anywhere on the way, and the descriptor is checked: a /proc path must be on a
procfs, /dev/null must be the null device (character device 1:3). The caller writes through the
descriptor, or mounts onto (or from) ``/proc/self/fd/N``, so nothing is looked up by name again::

    fd = open_checked("/proc/sys/net/ipv4/ip_forward", os.O_WRONLY)   # on a procfs, or OSError
    fd = open_null()                                                  # the real null device

Errors are ``OSError`` with the reason in ``strerror`` (the callers name the path).
"""

from __future__ import annotations

import errno
import os
import stat

from berth.libcontainer import kernel

_NO_LINKS = kernel.RESOLVE_NO_SYMLINKS | kernel.RESOLVE_NO_MAGICLINKS
# where a path must be, by its first component: on these file systems only
_MUST_BE_ON = {"proc": (kernel.PROC_SUPER_MAGIC,), "sys": (kernel.SYSFS_MAGIC, kernel.TMPFS_MAGIC, kernel.PROC_SUPER_MAGIC)}


def _open_no_links(path: str, flags: int) -> int:
    """``path`` with no symlink followed on the way (openat2), or, on a kernel without openat2,
    with the last component not followed (the best plain open can do)."""
    try:
        return kernel.openat2(kernel.AT_FDCWD, path, flags | os.O_CLOEXEC, 0, _NO_LINKS)
    except OSError as exc:
        if exc.errno not in (errno.ENOSYS, errno.EPERM):
            raise
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)


def open_checked(path: str, flags: int = os.O_PATH) -> int:
    """``path`` (absolute) opened without following symlinks; under /proc (or /sys) it must be on
    a procfs (sysfs or the tmpfs a mask puts there): anything else is ``EXDEV``."""
    fd = _open_no_links(path, flags)
    try:
        allowed = _MUST_BE_ON.get(path.lstrip("/").split("/", 1)[0])
        if allowed is not None and kernel.fstatfs_type(fd) not in allowed:
            raise OSError(errno.EXDEV, f"{path} is not on the container's own {path.split('/')[1]} file system")
    except BaseException:
        os.close(fd)
        raise
    return fd


def write(path: str, value: str) -> None:
    """Write ``value`` to a /proc file through :func:`open_checked`."""
    fd = open_checked(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def open_null(path: str = "/dev/null") -> int:
    """The container's /dev/null as an O_PATH descriptor, checked to be the null device (1:3):
    masks are bind mounts of it, and a symlink or any other file there would expose that file."""
    try:
        fd = _open_no_links(path, os.O_PATH)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, f"{path} is a symbolic link, not the null device") from exc
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISCHR(st.st_mode) or (os.major(st.st_rdev), os.minor(st.st_rdev)) != (1, 3):
            raise OSError(errno.EINVAL, f"{path} is not the null device (1:3)")
    except BaseException:
        os.close(fd)
        raise
    return fd
