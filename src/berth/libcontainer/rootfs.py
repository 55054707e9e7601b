"""Building the container's file system view inside its new mount namespace.

Runs in the init child after ``unshare(CLONE_NEWNS)``. The order is the point:

1. make every mount ``rslave`` (or what ``rootfsPropagation`` says), then the mount holding
   ``root.path`` private (slave for a slave request), as runc does: pivot_root refuses a shared
   parent, and nothing mounted at or below the root may propagate back to the host;
2. the graph driver's plan (the overlay on ``root.path``), then bind the root onto itself so it is
   a mount point (pivot_root needs one) whose parent is not shared;
3. the spec's mounts, each destination resolved inside the root without following symlinks out
   of it (CVE-2015-3627-style escapes), then the device nodes and /dev symlinks;
4. pivot_root(".", ".") and a lazy unmount of the old root (runc's trick: no put_old directory);
5. sysctls, masked and read-only paths, and the read-only root, all from inside; last, a shared
   or unbindable ``rootfsPropagation`` on the new ``/`` (before pivot_root the kernel refuses a
   shared root, and on the old root it would reach the host).

Failures raise ContainerInitError with ``operation 'object': cause`` text and exit code 128.
"""

from __future__ import annotations

import errno
import os
import stat

from berth.libcontainer import kernel, procfs, securepath
from berth.libcontainer.cgroup_mount import CgroupView, mount_cgroups, view
from berth.libcontainer.failure import ContainerInitError
from berth.libcontainer.mountopts import PROPAGATION
from berth.libcontainer.mounts import (
    fail,
    make_mountpoint,
    make_mountpoint_at,
    mount,
    mount_one,
    remount_readonly,
)
from berth.libcontainer.securepath import mkdir_all_in_root, resolve_in_root
from berth.libcontainer.spec import DEFAULT_DEVICES, ContainerSpec, Device, Mount
from berth.libcontainer.sysctl import proc_path
from berth.steptrace import mark

_DEV_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
    ("/proc/kcore", "/dev/core"),  # runc makes it too (when the kernel has /proc/kcore)
)


_DEVICE_KINDS = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def _mknod(root: str, dev: Device) -> None:
    kind = _DEVICE_KINDS.get(dev.type)
    if kind is None:
        raise ContainerInitError(f"create device '{dev.path}': unknown type {dev.type!r}", 128)
    try:
        # the parent made inside the root (0755, as runc), the node at its resolved place
        parent = mkdir_all_in_root(root, os.path.dirname(dev.path))
        path = os.path.join(parent, os.path.basename(dev.path))
        if os.path.lexists(path):
            os.unlink(path)
        os.mknod(path, kind | (dev.file_mode & 0o7777), os.makedev(dev.major, dev.minor))
        os.chmod(path, dev.file_mode & 0o7777)  # mknod's mode is filtered by the umask
        os.chown(path, dev.uid, dev.gid)
    except OSError as exc:
        raise fail("create device", dev.path, exc) from exc


def _bind_device(root: str, dev: Device) -> None:
    """In a user namespace mknod is refused: bind the host's node of that path, as runc does."""
    path = resolve_in_root(root, dev.path)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.lexists(path):
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
    except OSError as exc:
        raise fail("create device mount point", dev.path, exc) from exc
    mount(dev.path, path, None, kernel.MS_BIND, None, f"bind device '{dev.path}' on")


def setup_dev(root: str, devices: tuple[Device, ...], in_userns: bool = False, root_fd: int | None = None) -> None:
    """Device nodes and /dev's symlinks in the container's new /dev. With ``root_fd`` (the root,
    opened), what goes straight into /dev and finds nothing there yet (the usual case: a fresh
    tmpfs) is made by descriptor, relative to /dev opened once inside the root; anything else the
    usual way, each path resolved inside the root again."""
    by_path = {d.path: d for d in DEFAULT_DEVICES}
    by_path.update({d.path: d for d in devices})
    dev_fd = _open_dev(root_fd)
    try:
        for dev in by_path.values():
            if in_userns:
                _bind_device(root, dev)
            elif not _mknod_fresh(dev_fd, dev):
                _mknod(root, dev)
        for target, link in _DEV_SYMLINKS:
            if target == "/proc/kcore" and not os.path.exists(target):
                continue
            if not _symlink_fresh(dev_fd, target, link):
                _symlink(root, target, link)
    finally:
        if dev_fd >= 0:
            os.close(dev_fd)


def _open_dev(root_fd: int | None) -> int:
    if root_fd is None:
        return -1
    try:
        fd = securepath.open_by_kernel(root_fd, "/dev", os.O_PATH | os.O_DIRECTORY)
    except OSError:
        return -1  # the usual way says why
    return -1 if fd is None else fd


def _fresh_name(dev_fd: int, path: str) -> str | None:
    """The name of ``path`` in /dev when it goes straight there and nothing has it yet."""
    parent, name = os.path.split(path)
    if dev_fd < 0 or parent != "/dev" or name in ("", ".", ".."):
        return None
    try:
        os.lstat(name, dir_fd=dev_fd)
    except FileNotFoundError:
        return name
    except OSError:
        return None
    return None


def _mknod_fresh(dev_fd: int, dev: Device) -> bool:
    """:func:`_mknod` by descriptor for a new node straight in /dev; False: not such a one."""
    kind = _DEVICE_KINDS.get(dev.type)
    name = _fresh_name(dev_fd, dev.path) if kind is not None else None
    if kind is None or name is None:
        return False
    try:
        os.mknod(name, kind | (dev.file_mode & 0o7777), os.makedev(dev.major, dev.minor), dir_fd=dev_fd)
        os.chmod(name, dev.file_mode & 0o7777, dir_fd=dev_fd)  # mknod's mode is filtered by the umask
        os.chown(name, dev.uid, dev.gid, dir_fd=dev_fd)
    except OSError as exc:
        raise fail("create device", dev.path, exc) from exc
    return True


def _symlink_fresh(dev_fd: int, target: str, link: str) -> bool:
    name = _fresh_name(dev_fd, link)
    if name is None:
        return False
    try:
        os.symlink(target, name, dir_fd=dev_fd)
    except OSError as exc:
        raise fail("create symlink", link, exc) from exc
    return True


def _symlink(root: str, target: str, link: str) -> None:
    try:
        path = resolve_in_root(root, link)
        if os.path.lexists(path):
            if link != "/dev/ptmx":
                return
            os.unlink(path)
        os.symlink(target, path)
    except OSError as exc:
        raise fail("create symlink", link, exc) from exc


def bind_console(root: str, tty_path: str) -> None:
    """Make the container's pty slave visible as /dev/console (what runc does with a terminal)."""
    dest = resolve_in_root(root, "/dev/console")
    make_mountpoint(dest, True)
    mount(tty_path, dest, None, kernel.MS_BIND, None, f"bind '{tty_path}' on")


def root_mount_unshared(path: str, propagation: int) -> None:
    """Make the mount holding ``path`` (``path`` itself when it is a mount point) private, or a
    slave when a slave root was asked for: runc's rootfsParentMountPropagation. mount(2) answers
    EINVAL for a path that is not a mount point, so walk up until one accepts."""
    flag = kernel.MS_SLAVE if propagation & kernel.MS_SLAVE else kernel.MS_PRIVATE
    while True:
        try:
            kernel.mount(None, path, None, flag, None)
            return
        except OSError as exc:
            if exc.errno != errno.EINVAL or path == "/":
                raise fail("set propagation of the mount holding", path, exc) from exc
        path = os.path.dirname(path)


def prepare(
    spec: ContainerSpec,
    rootfs_mounts: list[Mount],
    tty_path: str | None,
    in_userns: bool = False,
    cgroup_view: CgroupView | None = None,
) -> None:
    """Everything before pivot_root; runs in the new mount namespace, host paths still visible.
    ``cgroup_view`` is :func:`berth.libcontainer.cgroup_mount.view` from before a cgroup
    namespace was made (read now when not given)."""
    root = spec.root_path
    if spec.chroot:
        # No mount namespace of our own: this is the host's. Its propagation is left alone; the
        # root gets a self-bind made private, so nothing mounted under it reaches a peer, and
        # the runtime detaches that one bind when the container is deleted.
        mount(root, root, None, kernel.MS_BIND | kernel.MS_REC, None, f"bind '{root}' on")
        mount(None, root, None, kernel.MS_PRIVATE | kernel.MS_REC, None, "(make private)")
    else:
        # 1. The requested propagation (default rslave: the host's mounts still reach us, ours
        #    never reach the host), then the mount holding the root made private (or slave):
        #    pivot_root fails with EINVAL under a shared parent (shared/rshared requests), and
        #    the overlay and the self-bind below would otherwise propagate to the host's peers.
        propagation = PROPAGATION[spec.rootfs_propagation]
        mount(None, "/", None, propagation, None, "(set propagation of)")
        root_mount_unshared(root, propagation)
        # 2. The graph driver's plan, e.g. the overlay on root.path.
        for m in rootfs_mounts:
            mount_one(m, m.target)
        # pivot_root needs the new root to be a mount point whose parent mount is not shared:
        # a recursive self-bind gives it one (a copy of an unshared mount, under an unshared
        # parent).
        mount(root, root, None, kernel.MS_BIND | kernel.MS_REC, None, f"bind '{root}' on")
        mark("i:layers")  # berth.steptrace: the root mounted
    # 3. The spec's mounts, in order (a later mount may sit inside an earlier one: /dev/pts in /dev).
    dev_is_tmpfs = False
    cg = spec.namespace("cgroup")
    cgroupns = cg is not None and cg.path is None
    top = _Root(root)
    try:
        for m in spec.mounts:
            found = top.find(m.target)
            if found is None:  # the kernel cannot say at once: the walk (securepath) decides
                try:
                    dest = resolve_in_root(root, m.target)
                except OSError as exc:
                    raise fail("resolve mount destination", m.target, exc) from exc
                inside = dest[len(root.rstrip("/")):] or "/"
            else:
                inside = found.inside
                dest = os.path.join(root, *inside.split("/")[1:])
            try:
                check_proc_mount(m, inside)
                if m.type == "cgroup":
                    seen = cgroup_view if cgroup_view is not None else view()
                    mount_cgroups(m, dest, new_cgroupns=cgroupns, seen=seen, in_userns=in_userns)
                elif found is None:
                    mount_one(m, dest, root=root)
                else:
                    mount_one(m, dest, root=root, place=found.place, root_fd=top.fd)
            finally:
                if found is not None:
                    found.close()
            if found is None and inside == "/":  # a mount over the root: find from its top now
                top.close()
                top = _Root(root)
            if m.target.rstrip("/") == "/dev":  # the last mount at /dev decides (runc's needsSetupDev)
                dev_is_tmpfs = m.type != "bind" and "bind" not in m.options and "rbind" not in m.options
        # Device nodes only in a /dev we made; a bound host /dev already has them.
        if dev_is_tmpfs:
            setup_dev(root, spec.devices, in_userns, top.fd)
    finally:
        top.close()
    if tty_path is not None:
        bind_console(root, tty_path)


class _Found:
    """A mount point :meth:`_Root.find` found (``fd``), or will make as ``name`` in the directory
    ``parent`` (its last component, missing); ``inside``: its path inside the root."""

    __slots__ = ("inside", "fd", "parent", "name")

    def __init__(self, inside: str, fd: int = -1, parent: int = -1, name: str = "") -> None:
        self.inside, self.fd, self.parent, self.name = inside, fd, parent, name

    def place(self, source_is_file: bool) -> int:
        """The mount point's descriptor, made now if missing (as ``open_mountpoint`` makes it);
        the caller's to close."""
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            return fd
        return make_mountpoint_at(self.parent, self.name, source_is_file)

    def close(self) -> None:
        for fd in (self.fd, self.parent):
            if fd >= 0:
                os.close(fd)
        self.fd = self.parent = -1


class _Root:
    """The container's root opened once for the spec's mounts: each mount point is then found by
    the kernel inside it (openat2 ``RESOLVE_IN_ROOT``: one call, symlinks resolved inside the
    root), where walking from the root's path again for each step of each mount took some twenty
    system calls. Anything the kernel cannot settle at once (no openat2, a missing parent
    directory, a dangling symlink, ``..`` in the path, a mount on the root itself) goes the
    usual way: ``None`` from :meth:`find`."""

    def __init__(self, root: str) -> None:
        self.fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self.real = os.readlink(f"/proc/self/fd/{self.fd}")
        except OSError:
            self.real = ""  # no /proc: find() says None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _inside(self, fd: int) -> str | None:
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return None
        prefix = self.real.rstrip("/") + "/"
        if not self.real or not real.startswith(prefix) or real.endswith(" (deleted)"):
            return None  # the root itself (a mount over it), or somewhere the path cannot name
        return real[len(prefix) - 1 :]

    def find(self, target: str) -> _Found | None:
        names = [n for n in target.split("/") if n]
        if not names or any(n in (".", "..") for n in names):
            return None
        try:
            fd = securepath.open_by_kernel(self.fd, target)
        except FileNotFoundError:
            return self._missing(names)
        except OSError:
            return None
        if fd is None:
            return None
        inside = self._inside(fd)
        if inside is None:
            os.close(fd)
            return None
        return _Found(inside, fd=fd)

    def _missing(self, names: list[str]) -> _Found | None:
        """The last component missing in an existing directory: made later, as ``name`` in it."""
        try:
            parent = securepath.open_by_kernel(self.fd, "/".join(names[:-1]) or "/", os.O_PATH | os.O_DIRECTORY)
        except OSError:
            return None
        if parent is None:
            return None
        try:
            os.lstat(names[-1], dir_fd=parent)
        except FileNotFoundError:
            inside = self._inside(parent) if len(names) > 1 else "/"
            if inside is not None:
                return _Found(inside.rstrip("/") + "/" + names[-1], parent=parent, name=names[-1])
        except OSError:
            pass
        os.close(parent)  # something is there after all (a dangling symlink): the usual way
        return None


# mounts runc allows inside /proc (what lxcfs emulates)
LXCFS_PROC_FILES = (
    "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps", "/proc/uptime",
    "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev", "/proc/sys/kernel/ns_last_pid",
)  # fmt: skip


def check_proc_mount(m: Mount, inside: str) -> None:
    """runc's ``checkProcMount``: nothing but a procfs at /proc, and nothing inside /proc but the
    files lxcfs emulates. A volume or bind there would sit under (or over) what the masks and
    read-only paths protect, or stand in for the procfs init writes to. ``inside`` is the
    destination resolved inside the root (symlinks followed there)."""
    if inside == "/proc":
        if m.type != "proc":
            raise ContainerInitError(f'"{m.target}" cannot be mounted because it is not of type proc', 128)
    elif inside.startswith("/proc/") and inside not in LXCFS_PROC_FILES:
        raise ContainerInitError(f'"{m.target}" cannot be mounted because it is inside /proc', 128)


def pivot(root: str) -> None:
    """pivot_root into ``root`` and detach the old root, without a put_old directory."""
    try:
        old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        new = os.open(root, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise fail("open root", root, exc) from exc
    try:
        os.fchdir(new)
        try:
            kernel.pivot_root(".", ".")
        except OSError as exc:
            raise fail("pivot_root", root, exc) from exc
        # The old root is now stacked under "."; reach it through the old fd and detach it.
        # Make it a slave first so the unmount does not propagate to the host (runc does this).
        os.fchdir(old)
        mount(None, ".", None, kernel.MS_SLAVE | kernel.MS_REC, None, "(make old root slave)")
        try:
            kernel.umount2(".", kernel.MNT_DETACH)
        except OSError as exc:
            raise fail("unmount old root of", root, exc) from exc
        os.chdir("/")
    finally:
        os.close(old)
        os.close(new)


def chroot(root: str) -> None:
    """Enter ``root`` without a mount namespace of our own: pivot_root would move the host's."""
    try:
        os.chdir(root)
        os.chroot(".")
        os.chdir("/")
    except OSError as exc:
        raise fail("chroot", root, exc) from exc


def mounts_at(path: str) -> int:
    """How many mounts are stacked at ``path`` in our mount namespace (mountinfo's field 5)."""
    escaped = path.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011").replace("\n", "\\012")
    with open("/proc/self/mountinfo") as f:
        return sum(1 for line in f if line.split(" ", 5)[4] == escaped)


def detach_chroot_root(root: str, mounts_before: int) -> None:
    """Undo a chroot container's self-bind (and everything under it) once it is gone; only
    the mounts stacked at ``root`` since ``mounts_before`` were counted are ours."""
    while mounts_at(root) > mounts_before:
        try:
            kernel.umount2(root, kernel.MNT_DETACH)
        except OSError as exc:
            raise fail("detach the container's root bind", root, exc) from exc


def finish(spec: ContainerSpec) -> None:
    """Everything after pivot_root, with container paths. Every /proc write and every mask goes
    through a descriptor opened without following symlinks and checked to be on the container's
    own procfs (or to be the null device), so neither the image nor a volume shared with another
    container can redirect them (:mod:`berth.libcontainer.procfs`); in runc's order: sysctls,
    read-only paths, masked paths, then a read-only root."""
    for key, value in spec.sysctl:
        path = proc_path(key)  # checked by spec.parse: never outside /proc/sys
        try:
            procfs.write(path, value)
        except OSError as exc:
            raise fail(f"write sysctl {key}={value!r} to", path, exc) from exc
    for path in spec.readonly_paths:
        fd = _open_for_mask(path)
        if fd is None:
            continue
        try:
            _mount_at(f"/proc/self/fd/{fd}", fd, path, None, kernel.MS_BIND | kernel.MS_REC, f"bind '{path}' on")
        finally:
            os.close(fd)
        top = _open_for_mask(path)  # now the bind just made, checked again
        if top is None:
            raise fail("remount read-only", path, OSError(errno.ENOENT, "the path went away"))
        try:
            remount_readonly(f"/proc/self/fd/{top}", recursive=True)
        finally:
            os.close(top)
    null: int | None = None
    try:
        for path in spec.masked_paths:
            fd = _open_for_mask(path)
            if fd is None:
                continue  # nothing there to hide
            try:
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    _mount_at("tmpfs", fd, path, "tmpfs", kernel.MS_RDONLY, "tmpfs (mask) on")
                    continue
                if null is None:
                    try:
                        null = procfs.open_null()
                    except OSError as exc:
                        raise fail(f"mask '{path}' with", "/dev/null", exc) from exc
                _mount_at(f"/proc/self/fd/{null}", fd, path, None, kernel.MS_BIND, "/dev/null (mask) on")
            finally:
                os.close(fd)
    finally:
        if null is not None:
            os.close(null)
    if spec.root_readonly:
        remount_readonly("/")
    # private and slave took effect in prepare(). Shared could not (pivot_root refuses a shared
    # root), and unbindable would have stopped the self-bind there and the read-only paths'
    # self-binds above: both apply now, to the container's own mounts only. (runc 1.4 applies
    # them right after pivot_root, so its runbindable fails on the read-only paths.)
    flag = PROPAGATION[spec.rootfs_propagation]
    if not flag & (kernel.MS_PRIVATE | kernel.MS_SLAVE):
        mount(None, "/", None, flag, None, "(set rootfsPropagation of)")


def _open_for_mask(path: str) -> int | None:
    """An O_PATH descriptor of a read-only or masked path (None when there is none), opened by
    :func:`procfs.open_checked`: no symlink followed, on procfs under /proc."""
    try:
        return procfs.open_checked(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise fail("open the masked or read-only path", path, exc) from exc


def _mount_at(source: str | None, fd: int, path: str, fstype: str | None, flags: int, what: str) -> None:
    """mount(2) onto the file ``fd`` refers to (``path`` is for the message)."""
    try:
        kernel.mount(source, f"/proc/self/fd/{fd}", fstype, flags, None)
    except OSError as exc:
        raise fail(f"mount {what}", path, exc) from exc
