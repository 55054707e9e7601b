"""Performing one mount, the way the OCI spec describes it, with paths kept inside a root.

``mount_one`` handles bind mounts (a file source gets a file mount point; flags such as ``ro``
take effect through a second, remount call, keeping the flags the kernel already set) and
filesystem mounts (sysfs falls back to a read-only bind of the host's /sys when the kernel
refuses a new one, i.e. without a network namespace of our own). Destinations come resolved
inside the root by :func:`berth.libcontainer.securepath.resolve_in_root`, so a symlink in the
image cannot point a mount at the host (CVE-2015-3627 and friends).
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat

from berth.libcontainer import copyup, kernel, securepath
from berth.libcontainer.failure import ContainerInitError
from berth.libcontainer.mountopts import REC_ATTR_WORDS, MountOptions, parse_mount_options
from berth.libcontainer.spec import Mount

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

# statvfs flag -> mount flag: kept on a bind remount so it does not clear them
_KEEP_FLAGS = (
    (os.ST_NOSUID, kernel.MS_NOSUID),
    (os.ST_NODEV, kernel.MS_NODEV),
    (os.ST_NOEXEC, kernel.MS_NOEXEC),
    (os.ST_NOATIME, kernel.MS_NOATIME),
    (os.ST_NODIRATIME, kernel.MS_NODIRATIME),
    (os.ST_RELATIME, kernel.MS_RELATIME),
)


def fail(op: str, obj: str, exc: OSError) -> ContainerInitError:
    return ContainerInitError(f"{op} '{obj}': {exc.strerror or exc}", 128)


def mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None, what: str
) -> None:
    try:
        kernel.mount(source, target, fstype, flags, data)
    except OSError as exc:
        raise fail(f"mount {what}", target, exc) from exc


def kept_flags(path: str) -> int:
    try:
        f_flag = os.statvfs(path).f_flag
    except OSError:
        return 0
    return sum(ms for st, ms in _KEEP_FLAGS if f_flag & st)


def remount_readonly(path: str, recursive: bool = False) -> None:
    flags = kernel.MS_REMOUNT | kernel.MS_BIND | kernel.MS_RDONLY | kept_flags(path)
    mount(None, path, None, flags | (kernel.MS_REC if recursive else 0), None, "(remount read-only)")


def make_mountpoint(dest: str, source_is_file: bool) -> None:
    try:
        if source_is_file:
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            if not os.path.lexists(dest):
                os.close(os.open(dest, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
        else:
            os.makedirs(dest, exist_ok=True)
    except OSError as exc:
        raise fail("create mount point", dest, exc) from exc


def open_mountpoint(root: str, target: str, source_is_file: bool) -> int:
    """The mount point ``target`` inside ``root``, made if missing (a directory, or an empty file
    for a file source) and opened ``O_PATH``, every step through descriptors walked inside
    ``root``: a component of the path swapped for a symlink meanwhile (another container sharing
    a volume, CVE-2021-30465) cannot lead the mount, nor a directory made for it, out of the root."""
    inside = securepath.scoped_path(root, target)
    parent, name = posixpath.split(inside)
    if not name:  # the root itself
        return securepath.open_in_root(root, "/", os.O_PATH | os.O_DIRECTORY)
    securepath.mkdir_all_in_root(root, parent)
    parent_fd = securepath.open_in_root(root, parent, os.O_PATH | os.O_DIRECTORY)
    try:
        return make_mountpoint_at(parent_fd, name, source_is_file)
    finally:
        os.close(parent_fd)


def make_mountpoint_at(parent_fd: int, name: str, source_is_file: bool) -> int:
    """The mount point ``name`` in the directory ``parent_fd``, made if missing (a directory, or
    an empty file for a file source) and opened ``O_PATH`` without following a symlink."""
    try:
        if source_is_file:
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=parent_fd))
        else:
            os.mkdir(name, 0o755, dir_fd=parent_fd)
    except FileExistsError:
        pass
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
    if stat.S_ISLNK(os.fstat(fd).st_mode):  # it was a directory a moment ago: someone swapped it
        os.close(fd)
        raise OSError(errno.ELOOP, "the mount point became a symbolic link while it was set up")
    return fd


def mount_one(m: Mount, dest: str, root: str | None = None, place: Callable[[bool], int] | None = None,
              root_fd: int | None = None) -> None:
    """Perform one mount at ``dest`` (already resolved on the host side). With ``root`` (the
    container's mounts), the mount point is made and opened inside ``root`` by descriptors
    (:func:`open_mountpoint`) and everything is mounted onto ``/proc/self/fd/N``, so no path
    string is looked up again between the check and the mount; ``dest`` names it in messages.
    ``place(source_is_file)``: the caller's own way to that descriptor (one it found or made
    inside ``root`` already; it is ours to close); ``root_fd``: ``root`` opened, to find the new
    mount again from (not for a mount on the root itself)."""
    opts = parse_mount_options(m.options)
    is_bind = bool(opts.bind or m.type == "bind")
    tree: int | None = None
    if m.tree >= 0:  # made by a privileged ancestor (an id-mapped bind): ours to attach and close
        tree = m.tree
    elif m.idmapped:
        from berth.libcontainer.idmapped import mount_clone

        tree = mount_clone(m)
    elif is_bind:
        tree = _clone_from_process_root(m.source, bool(opts.flags & kernel.MS_REC))
    anchor: int | None = None
    try:
        source_is_file = False
        if is_bind:
            try:
                source_is_file = not stat.S_ISDIR((os.fstat(tree) if tree is not None else os.stat(m.source)).st_mode)
            except OSError as exc:
                raise fail("bind mount source", m.source, exc) from exc
        if root is None:
            make_mountpoint(dest, source_is_file)
            target = dest
        else:
            try:
                anchor = place(source_is_file) if place is not None else open_mountpoint(root, m.target, source_is_file)
            except OSError as exc:
                raise fail("create mount point", dest, exc) from exc
            target = f"/proc/self/fd/{anchor}"
        if is_bind:
            if tree is None:
                _mount(m.source, target, dest, None, kernel.MS_BIND | (opts.flags & kernel.MS_REC), None, f"bind '{m.source}' on")
            else:
                try:
                    follow = kernel.MOVE_MOUNT_T_SYMLINKS if anchor is not None else 0  # /proc/self/fd/N
                    kernel.move_mount(tree, "", kernel.AT_FDCWD, target, kernel.MOVE_MOUNT_F_EMPTY_PATH | follow)
                except OSError as exc:
                    raise fail(f"mount bind '{m.source}' on", dest, exc) from exc
        elif opts.copyup:
            _mount_copyup(m, opts, dest, target, root)
            return
        else:
            try:
                kernel.mount(m.source, target, m.type, opts.flags, opts.data or None)
            except OSError as exc:
                if m.type != "sysfs" or exc.errno != errno.EPERM:
                    raise _fs_mount_failure(m, opts, dest, exc) from exc
                # no network namespace of our own: the kernel refuses a new sysfs; bind the host's
                _mount("/sys", target, dest, None, kernel.MS_BIND | kernel.MS_REC, None, "bind '/sys' on")
                with _mounted(root, m.target, dest) as top:
                    remount_readonly(top, recursive=False)
    finally:
        if tree is not None:
            os.close(tree)
        if anchor is not None:
            os.close(anchor)
    extra = opts.flags & ~(kernel.MS_BIND | kernel.MS_REC | kernel.MS_REMOUNT) if is_bind else 0
    if extra or opts.rec_set or opts.rec_clear or opts.propagation:
        with _mounted(root if root_fd is None else root_fd, m.target, dest) as top:  # the mount just made, again
            if extra:  # a bind mount ignores flags; they take effect on a remount of it
                flags = kernel.MS_REMOUNT | kernel.MS_BIND | extra | kept_flags(top)
                _mount(None, top, dest, None, flags | (opts.flags & kernel.MS_REC), None, "(remount bind)")
            if opts.rec_set or opts.rec_clear:
                _set_recursive_attributes(m, opts, top, dest)
            if opts.propagation:
                _mount(None, top, dest, None, opts.propagation, None, "(set propagation)")


class _mounted:  # noqa: N801 -- used as a context manager, like contextlib's (whose import costs)
    """A path naming the mount now at ``target``: ``dest`` itself without a root, else
    ``/proc/self/fd/N`` of a descriptor opened inside the root (closed on exit)."""

    def __init__(self, root: str | int | None, target: str, dest: str) -> None:
        self.fd = -1
        if root is None:
            self.path = dest
            return
        try:
            self.fd = securepath.open_in_root(root, target, os.O_PATH)
        except OSError as exc:
            raise fail("open the new mount", dest, exc) from exc
        self.path = f"/proc/self/fd/{self.fd}"

    def __enter__(self) -> str:
        return self.path

    def __exit__(self, *_: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)


def _mount(source: str | None, target: str, dest: str, fstype: str | None, flags: int, data: str | None, what: str) -> None:
    """mount(2) onto ``target`` (a path or /proc/self/fd/N); ``dest`` names it in the message."""
    try:
        kernel.mount(source, target, fstype, flags, data)
    except OSError as exc:
        raise fail(f"mount {what}", dest, exc) from exc


def _process_root(source: str) -> tuple[str, str] | None:
    """(PID, path inside) of ``/proc/PID/root[/...]``, else None (no ``re``: its import is a cost
    every container start would pay)."""
    if not source.startswith("/proc/"):
        return None
    pid, _, rest = source[len("/proc/") :].partition("/")
    if not pid.isascii() or not pid.isdigit() or not (rest == "root" or rest.startswith("root/")):
        return None
    return pid, rest[len("root") :]


def _clone_from_process_root(source: str, recursive: bool) -> int | None:
    """A bind source inside another process's root (``/proc/PID/root/dev/shm``: another
    container's /dev/shm for ``--ipc container:X``): a detached copy of that mount, taken in that
    process's mount namespace (the kernel binds nothing across mount namespaces), with the path
    resolved inside its root as its own processes see it (followed from here, an absolute
    symlink in it would lead to *our* root, the host's: a container could point another one's
    bind at any host directory). None for any other source; the caller attaches the copy with
    move_mount and closes it."""
    match = _process_root(source)
    if match is None:
        return None
    pid, inside = match
    own = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            other = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise fail("bind mount source", source, exc) from exc
        try:
            kernel.setns(other, kernel.CLONE_NEWNS)  # our root and cwd are now that namespace's
        except OSError as exc:
            raise fail("enter the mount namespace of", source, exc) from exc
        finally:
            os.close(other)
        try:
            found = securepath.open_in_root("/", inside or "/", os.O_PATH)
            try:
                flags = kernel.OPEN_TREE_CLONE | kernel.OPEN_TREE_CLOEXEC | kernel.AT_EMPTY_PATH
                return kernel.open_tree(found, "", flags | (kernel.AT_RECURSIVE if recursive else 0))
            finally:
                os.close(found)
        except OSError as exc:
            raise fail("bind mount source", source, exc) from exc
        finally:
            kernel.setns(own, kernel.CLONE_NEWNS)  # back: our own root, then our cwd
            os.fchdir(cwd)
    finally:
        os.close(own)
        os.close(cwd)


def _mount_copyup(m: Mount, opts: MountOptions, dest: str, target: str, root: str | None) -> None:
    """tmpcopyup: the new tmpfs starts with a copy of the directory it covers (podman asks for it
    with --read-only, so /tmp, /run ... keep the image's content). The covered directory is
    opened before the mount and read through that descriptor afterwards, so no scratch mount is
    needed (runc mounts on a host temp dir and moves it); a read-only tmpfs is filled first,
    then remounted read-only. ``target`` is where to mount (``dest``, or /proc/self/fd/N)."""
    try:
        # "<dir>/." never follows a symlink at the end, and takes /proc/self/fd/N where it leads
        below = os.open(target + "/." if root is not None else dest, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise fail("tmpcopyup: open", dest, exc) from exc
    try:
        try:
            kernel.mount(m.source, target, m.type, opts.flags & ~kernel.MS_RDONLY, opts.data or None)
        except OSError as exc:
            raise _fs_mount_failure(m, opts, dest, exc) from exc
        given = {w.split("=", 1)[0] for w in opts.data_words}
        with _mounted(root, m.target, dest) as top:
            try:
                copyup.copy_tree(
                    below, top + "/." if root is not None else top, root_mode="mode" not in given,
                    root_owner=not given & {"uid", "gid"},
                )
            except copyup.CopyError as exc:
                raise ContainerInitError(f"tmpcopyup '{m.target}': {exc}", 128) from exc
            if opts.flags & kernel.MS_RDONLY:
                remount_readonly(top)
    finally:
        os.close(below)


def _fs_mount_failure(m: Mount, opts: MountOptions, dest: str, exc: OSError) -> ContainerInitError:
    """The kernel refused a filesystem mount: with EINVAL and data, name the option it refused."""
    cause = exc.strerror or str(exc)
    if exc.errno == errno.EINVAL and opts.data:
        refused = refused_option(m.type, opts.data_words)
        if refused is not None:
            word, why = refused
            cause = f"option '{word}' refused by the kernel ({why})"
        else:
            cause = f"{cause} (options given to {m.type}: {opts.data})"
    return ContainerInitError(f"mount {m.type} '{m.source}' on '{dest}': {cause}", 128)


def refused_option(fstype: str, words: tuple[str, ...]) -> tuple[str, str] | None:
    """Which of ``words`` the kernel refuses for ``fstype``, with its own message, found with
    fsopen/fsconfig (each option is checked on its own, and nothing is mounted); None when the
    kernel cannot say (no new mount API, or a filesystem that checks its options only at mount)."""
    try:
        fd = kernel.fsopen(fstype)
    except OSError:
        return None
    try:
        for word in words:
            key, sep, value = word.partition("=")
            try:
                if sep:
                    kernel.fsconfig(fd, kernel.FSCONFIG_SET_STRING, key, value)
                else:
                    kernel.fsconfig(fd, kernel.FSCONFIG_SET_FLAG, key)
            except OSError as exc:
                return word, _context_log(fd) or exc.strerror or str(exc)
        return None
    finally:
        os.close(fd)


def _context_log(fd: int) -> str:
    """The messages a filesystem context holds ("e tmpfs: Unknown parameter 'x'"), joined."""
    lines = []
    while True:
        try:
            msg = os.read(fd, 4096).decode(errors="replace").strip()
        except OSError:
            break  # ENODATA: no more messages
        if not msg:
            break
        lines.append(msg[2:] if msg[1:2] == " " else msg)
    return "; ".join(lines)


def _set_recursive_attributes(m: Mount, opts: MountOptions, path: str, dest: str) -> None:
    """rro, rnosuid ... : mount_setattr(AT_RECURSIVE) on the new mount and every mount below it
    (``path`` names it, ``dest`` is for the message)."""
    try:
        kernel.mount_setattr(path, opts.rec_set, opts.rec_clear, recursive=True)
    except OSError as exc:
        words = ", ".join(w for w in m.options if w in REC_ATTR_WORDS)
        if exc.errno == errno.ENOSYS:
            cause = "mount_setattr(2) is not available (Linux 5.12 or later is needed)"
        else:
            cause = exc.strerror or str(exc)
        raise ContainerInitError(f"set recursive mount options ({words}) on '{dest}': {cause}", 128) from exc
