"""Resolving a path inside a root directory without ever leaving it: the one walk berth uses.

A container's rootfs, an image layer being unpacked and a container's layers are hostile trees:
a symlink ``etc -> /etc`` or ``x -> ../../..`` must not lead a mount, a write or a read onto the
host (CVE-2015-3627, CVE-2018-15664, CVE-2019-19921, CVE-2021-30465 were this). Here a path is
resolved as if ``root`` were ``/`` -- the kernel's ``RESOLVE_IN_ROOT``: an absolute symlink
starts again at ``root``, ``..`` at ``root`` stays there, at most 40 symlinks are followed::

    fd = open_in_root("/r", "/etc/passwd", os.O_RDONLY)   # the file, wherever its links lead in /r
    resolve_in_root("/r", "/etc/hosts")                    # '/r/etc/hosts' (a host path; the
                                                           # missing tail taken literally)
    mkdir_all_in_root("/r", "a/b", 0o755)                  # made inside /r, whatever a/ points at

    >>> resolve_in_root("/no/such/root", "/../../etc//./hosts")
    '/no/such/root/etc/hosts'

``open_in_root`` asks the kernel (``openat2`` with ``RESOLVE_IN_ROOT``, Linux 5.6) and, where it
is missing (older kernels, a seccomp filter refusing it), walks component by component from a
descriptor of ``root``: each component opened with ``O_PATH|O_NOFOLLOW`` relative to its
parent's descriptor, a symlink read through its own descriptor and expanded in place, ``..`` taken from the descriptors
already walked (never from the file system, where a directory may have moved). Nothing is
looked up by a full path string, so a component swapped for a symlink during the walk cannot
take it outside. ``symlinks=False`` refuses any symlink on the way (``ELOOP``), the rule for a
container's layers read by the daemon.

``resolve_in_root`` and ``mkdir_all_in_root`` return a host path string (``root`` + the resolved
components) for callers that work with paths (mount targets, an unpacking layer): the walk is
the same, so the string names what the walk found; it is only as safe as the tree staying put
afterwards (true for a rootfs before the container runs and a layer while it is unpacked).
"""

from __future__ import annotations

import errno
import os
import stat

from berth.libcontainer import kernel

MAX_SYMLINKS = 40  # the kernel's limit for one resolution
_WALK = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
# openat2 is tried once; ENOSYS (before 5.6) or EPERM (a seccomp filter) switch to the walk
_openat2_usable = True


def open_in_root(root: str | int, path: str, flags: int = os.O_PATH, *, symlinks: bool = True) -> int:
    """A descriptor (close-on-exec) for ``path`` resolved inside ``root`` (a directory path or
    a descriptor of one). ``flags`` are open(2) flags without ``O_CREAT``; with ``O_NOFOLLOW`` a
    final symlink is not followed (an ``O_PATH`` descriptor of the link itself, as openat2
    gives). ``symlinks=False``: any symlink on the way is ``ELOOP``. Raises ``OSError``."""
    if flags & os.O_CREAT or flags & os.O_TMPFILE == os.O_TMPFILE:
        raise ValueError("open_in_root does not create files")
    root_fd = _open_root(root)
    try:
        if _openat2_usable:
            fd = _openat2(root_fd, path, flags, symlinks)
            if fd is not None:
                return fd
        return _open_walked(root_fd, path, flags, symlinks)
    finally:
        if not isinstance(root, int):
            os.close(root_fd)


def resolve_in_root(root: str, path: str) -> str:
    """``root`` + ``path`` with every existing symlink and ``..`` resolved inside ``root``; from the
    first component that does not exist on, the rest is taken literally (``..`` still pops),
    as filepath-securejoin does: a mount target may be made afterwards."""
    try:
        root_fd = _open_root(root)
    except OSError:
        return _join(root, _lexical(path))  # nothing exists: nothing to follow
    try:
        return _join(root, _scoped_names(root_fd, path, MAX_SYMLINKS))
    finally:
        os.close(root_fd)


def scoped_path(root: str | int, path: str, *, max_links: int = MAX_SYMLINKS) -> str:
    """What :func:`resolve_in_root` resolves, as a path inside the root (``"/etc/hosts"``);
    ``max_links`` lets a caller keep another limit (Docker's FollowSymlinkInScope allows 255)."""
    root_fd = _open_root(root)
    try:
        return "/" + "/".join(_scoped_names(root_fd, path, max_links))
    finally:
        if not isinstance(root, int):
            os.close(root_fd)


def _scoped_names(root_fd: int, path: str, max_links: int) -> list[str]:
    names = _names_by_kernel(root_fd, path, os.O_PATH)
    if names is None:
        walked = _walk(root_fd, path, follow_last=True, symlinks=True, lenient=True, max_links=max_links)
        walked.close()
        names = walked.names
    return names


def mkdir_all_in_root(root: str, path: str, mode: int = 0o755) -> str:
    """Make ``path`` and its missing parents inside ``root`` (each new one given ``mode`` exactly,
    whatever the umask), following symlinks inside ``root``; the host path of the directory.
    ``ENOTDIR`` when a component is not a directory, ``ELOOP`` past 40 symlinks."""
    root_fd = _open_root(root)
    try:
        found = _names_by_kernel(root_fd, path, os.O_PATH | os.O_DIRECTORY)
        if found is not None:
            return _join(root, found)  # there already, a directory
        walked = _walk(root_fd, path, follow_last=True, symlinks=True, create=mode)
        try:
            if not stat.S_ISDIR(os.fstat(walked.fds[-1]).st_mode):
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), walked.names[-1])
        finally:
            walked.close()
        return _join(root, walked.names)
    finally:
        os.close(root_fd)


# ---- the walk ---------------------------------------------------------------------------
class _Walked:
    """Where a walk ended: the resolved names from root, and the descriptors down to the
    last existing one (``fds[0]`` is root's, ``fds[-1]`` the final component's when it exists)."""

    def __init__(self, names: list[str], fds: list[int]) -> None:
        self.names, self.fds = names, fds

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def _walk(
    root_fd: int,
    path: str,
    *,
    follow_last: bool,
    symlinks: bool,
    lenient: bool = False,
    create: int | None = None,
    max_links: int = MAX_SYMLINKS,
) -> _Walked:
    """Resolve ``path`` from ``root_fd``. ``lenient``: a missing component (or a non-directory
    with more to come) makes the rest literal instead of failing; ``create``: missing
    components are made as directories with that mode."""
    names: list[str] = []
    fds = [os.dup(root_fd)]
    literal = 0  # how many of the last names are literal (past a missing component)
    pending = _split(path)
    links = 0
    try:
        while pending:
            name = pending.pop(0)
            if name == "..":
                if names:
                    names.pop()
                    if literal:
                        literal -= 1
                    else:
                        os.close(fds.pop())
                continue
            if literal:
                names.append(name)
                literal += 1
                continue
            last = not pending
            try:
                fd = os.open(name, _WALK, dir_fd=fds[-1])
            except FileNotFoundError:
                if create is not None:
                    fd = _mkdir_at(fds[-1], name, create)
                elif lenient:
                    names.append(name)
                    literal = 1
                    continue
                else:
                    raise
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode) and (follow_last or not last):
                try:
                    if not symlinks:
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), name)
                    links += 1
                    if links > max_links:
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                    target = os.readlink("", dir_fd=fd)  # the link opened, not whatever has its name now
                finally:
                    os.close(fd)
                if target.startswith("/"):  # absolute: again from root
                    names = []
                    literal = 0
                    for extra in fds[1:]:
                        os.close(extra)
                    del fds[1:]
                pending = _split(target) + pending
                continue
            if not last and not stat.S_ISDIR(mode):
                os.close(fd)
                if lenient:
                    names.append(name)
                    literal = 1
                    continue
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), name)
            names.append(name)
            fds.append(fd)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return _Walked(names, fds)


def _open_walked(root_fd: int, path: str, flags: int, symlinks: bool) -> int:
    walked = _walk(root_fd, path, follow_last=not flags & os.O_NOFOLLOW, symlinks=symlinks)
    try:
        final = walked.fds[-1]
        if flags & os.O_PATH or not walked.names:
            # O_PATH: the walk's own descriptor; root itself: reopen it as asked
            return os.dup(final) if flags & os.O_PATH else os.open(".", flags | os.O_CLOEXEC, dir_fd=final)
        # the real open, relative to the parent already walked and checked to be the same file
        fd = os.open(walked.names[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=walked.fds[-2])
        want, got = os.fstat(final), os.fstat(fd)
        if (want.st_dev, want.st_ino) != (got.st_dev, got.st_ino):
            os.close(fd)
            raise OSError(errno.EAGAIN, f"{path!r} changed while it was resolved")
        return fd
    finally:
        walked.close()


def _openat2(root_fd: int, path: str, flags: int, symlinks: bool) -> int | None:
    """The kernel's resolution; None where openat2 is not to be had."""
    global _openat2_usable
    resolve = kernel.RESOLVE_IN_ROOT | kernel.RESOLVE_NO_MAGICLINKS
    if not symlinks:
        resolve |= kernel.RESOLVE_NO_SYMLINKS
    for _ in range(16):
        try:
            return kernel.openat2(root_fd, path or ".", flags | os.O_CLOEXEC, resolve=resolve)
        except OSError as exc:
            if exc.errno in (errno.ENOSYS, errno.EPERM):
                _openat2_usable = False
                return None
            if exc.errno != errno.EAGAIN:  # EAGAIN: a rename raced a ".." lookup; the kernel asks again
                raise OSError(exc.errno, exc.strerror, path) from None
    return None  # renames kept racing: let the walk decide


def open_by_kernel(root_fd: int, path: str, flags: int = os.O_PATH) -> int | None:
    """``path`` resolved inside the directory ``root_fd`` by the kernel alone (openat2 with
    ``RESOLVE_IN_ROOT``, one call), None where the kernel cannot (no openat2, a seccomp filter
    refusing it: the walk of :func:`open_in_root` is then the way); ``OSError`` as the kernel
    answered (``ENOENT`` for a missing component)."""
    return _openat2(root_fd, path, flags, True) if _openat2_usable else None


def _names_by_kernel(root_fd: int, path: str, flags: int) -> list[str] | None:
    """The resolved names of ``path`` when openat2 resolves all of it (the common case, in
    three system calls); None when it cannot say (a missing component, no openat2, no /proc)."""
    if not _openat2_usable:
        return None
    try:
        fd = _openat2(root_fd, path, flags, True)
    except OSError:
        return None  # the walk decides, and says why
    if fd is None:
        return None
    try:
        real, real_root = os.readlink(f"/proc/self/fd/{fd}"), os.readlink(f"/proc/self/fd/{root_fd}")
    except OSError:
        return None
    finally:
        os.close(fd)
    if real == real_root:
        return []
    prefix = real_root.rstrip("/") + "/"
    if not real.startswith(prefix):
        return None  # unreachable from here (deleted, another mount namespace's path): walk
    return real[len(prefix):].split("/")


def _mkdir_at(dir_fd: int, name: str, mode: int) -> int:
    try:
        os.mkdir(name, mode, dir_fd=dir_fd)
    except FileExistsError:
        pass  # made meanwhile: opened and checked like any other component
    else:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            os.fchmod(fd, mode)  # exactly ``mode``, whatever the umask
        finally:
            os.close(fd)
    return os.open(name, _WALK, dir_fd=dir_fd)


def _open_root(root: str | int) -> int:
    if isinstance(root, int):
        return root
    return os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def _split(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def _lexical(path: str) -> list[str]:
    names: list[str] = []
    for name in _split(path):
        if name == "..":
            if names:
                names.pop()
        else:
            names.append(name)
    return names


def _join(root: str, names: list[str]) -> str:
    return os.path.join(root, *names)
