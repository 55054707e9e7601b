"""The one module of raw system calls: those the standard library lacks (through :mod:`.cabi`).

Every function raises ``OSError(errno, strerror)`` on failure and says nothing about paths;
callers (init, rootfs) translate to ``operation 'object': cause`` messages at their boundary.
Only x86_64 and aarch64 syscall numbers are known (pivot_root has no libc wrapper).

    >>> CLONE_NEWPID
    536870912
"""

from __future__ import annotations

import errno
import os

from berth.libcontainer import cabi

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

NAMESPACE_FLAGS = {
    "mount": CLONE_NEWNS,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "network": CLONE_NEWNET,
    "pid": CLONE_NEWPID,
    "cgroup": CLONE_NEWCGROUP,
    "user": CLONE_NEWUSER,
}
# /proc/<pid>/ns/<file> for each OCI namespace type
NAMESPACE_FILES = {
    "mount": "mnt",
    "uts": "uts",
    "ipc": "ipc",
    "network": "net",
    "pid": "pid",
    "cgroup": "cgroup",
    "user": "user",
}

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_NOSYMFOLLOW = 256
MS_POSIXACL = 1 << 16
MS_I_VERSION = 1 << 23
MS_LAZYTIME = 1 << 25

AT_FDCWD = -100
AT_RECURSIVE = 0x8000
FSOPEN_CLOEXEC = 0x1
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
FSMOUNT_CLOEXEC = 0x1

MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8

# openat2(2) resolve flags (Linux 5.6)
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

TIOCSCTTY = 0x540E
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1

_MACHINE = os.uname().machine
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(_MACHINE, -1)
_SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(_MACHINE, -1)
_SYS_CAPGET = {"x86_64": 125, "aarch64": 90}.get(_MACHINE, -1)
_SYS_CAPSET = {"x86_64": 126, "aarch64": 91}.get(_MACHINE, -1)
# the new mount API shares one numbering on every architecture
_SYS_FSOPEN = 430
_SYS_FSCONFIG = 431
_SYS_FSMOUNT = 432
_SYS_MOUNT_SETATTR = 442
_SYS_OPENAT2 = 437
_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_CLONE3 = 435
CLONE_INTO_CGROUP = 0x200000000
_SIGCHLD = 17  # x86_64 and aarch64
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_SYMLINKS = 0x10  # follow a symlink (or /proc/self/fd/N) at the target

_libc = cabi.Library(None)
_mount = _libc.function("mount", (cabi.c_char_p, cabi.c_char_p, cabi.c_char_p, cabi.c_ulong, cabi.c_char_p))
_umount2 = _libc.function("umount2", (cabi.c_char_p, cabi.c_int))
_unshare = _libc.function("unshare", (cabi.c_int,))
_setns = _libc.function("setns", (cabi.c_int, cabi.c_int))
_sethostname = _libc.function("sethostname", (cabi.c_char_p, cabi.c_size_t))
_setdomainname = _libc.function("setdomainname", (cabi.c_char_p, cabi.c_size_t))
_prctl = _libc.function("prctl", (cabi.c_int, cabi.c_ulong, cabi.c_ulong, cabi.c_ulong, cabi.c_ulong))
_syscall = _libc.function("syscall", None, cabi.c_long)
_fstatfs = _libc.function("fstatfs", (cabi.c_int, cabi.c_void_p))
# os.fork's own steps around a clone the os module does not offer (the interpreter's API, with
# the GIL held, as the raw clone itself)
_clone3 = _libc.function("syscall", (cabi.c_long, cabi.c_void_p, cabi.c_size_t), cabi.c_long, hold_gil=True)


def _check(ret: int) -> int:
    if ret < 0:
        err = cabi.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def _b(s: str | bytes | None) -> bytes | None:
    return s.encode() if isinstance(s, str) else s


def unshare(flags: int) -> None:
    _check(_unshare(flags))


def setns(fd: int, nstype: int = 0) -> None:
    _check(_setns(fd, nstype))


def mount(
    source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None
) -> None:
    _check(_mount(_b(source), _b(target), _b(fstype), flags, _b(data) if data else None))


def umount2(target: str, flags: int = 0) -> None:
    _check(_umount2(_b(target), flags))


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_syscall(_SYS_PIVOT_ROOT, _b(new_root), _b(put_old)))


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_sethostname(raw, len(raw)))


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_setdomainname(raw, len(raw)))


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(_prctl(option, arg2, arg3, arg4, arg5))


class _CloneArgs(cabi.Structure):
    _fields_ = [
        (name, cabi.c_uint64)
        for name in ("flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size", "tls",
                     "set_tid", "set_tid_size", "cgroup")
    ]


def fork_into_cgroup(cgroup_fd: int) -> int:
    """``os.fork()``, the child born in the cgroup2 directory ``cgroup_fd`` (clone3 with
    CLONE_INTO_CGROUP, Linux 5.7). Moved in afterwards through ``cgroup.procs``, a process makes
    the kernel take its global threadgroup lock for writing, which after a quiet spell waits out
    an RCU grace period (5-15 ms: :mod:`berth.libcontainer.cgroups.warm`); born there, it costs
    what a fork costs. Around the system call, what ``os.fork`` does around fork(3):
    ``PyOS_BeforeFork``, then ``PyOS_AfterFork_Child`` or ``_Parent``, the GIL held throughout.
    fork(3)'s own handlers in the C library do not run: the caller must be single-threaded (as
    every caller of a container's fork is). OSError when the kernel refuses (ENOSYS, E2BIG or
    EINVAL before 5.7), and nothing was forked."""
    before, child, parent = _interpreter_fork_steps()
    args = _CloneArgs(flags=CLONE_INTO_CGROUP, exit_signal=_SIGCHLD, cgroup=cgroup_fd)
    before()
    pid: int = _clone3(_SYS_CLONE3, cabi.addressof(args), cabi.sizeof(args))
    if pid == 0:
        child()
        return 0
    err = cabi.get_errno()
    parent()
    if pid < 0:
        raise OSError(err, os.strerror(err))
    return pid


_fork_steps: tuple[Any, Any, Any] | None = None


def _interpreter_fork_steps() -> tuple[Any, Any, Any]:
    global _fork_steps
    if _fork_steps is None:
        before, child, parent = (
            _libc.function(f"PyOS_{name}", (), None, hold_gil=True)
            for name in ("BeforeFork", "AfterFork_Child", "AfterFork_Parent")
        )
        _fork_steps = (before, child, parent)
    return _fork_steps


class _CapHeader(cabi.Structure):
    _fields_ = [("version", cabi.c_uint32), ("pid", cabi.c_int)]


class _CapData(cabi.Structure):
    _fields_ = [
        ("effective", cabi.c_uint32),
        ("permitted", cabi.c_uint32),
        ("inheritable", cabi.c_uint32),
    ]


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capget() -> tuple[int, int, int]:
    """The calling thread's (effective, permitted, inheritable) masks."""
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_syscall(_SYS_CAPGET, cabi.byref(hdr), data))
    lo, hi = data[0], data[1]
    return (
        lo.effective | (hi.effective << 32),
        lo.permitted | (hi.permitted << 32),
        lo.inheritable | (hi.inheritable << 32),
    )


def capset(effective: int, permitted: int, inheritable: int) -> None:
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_syscall(_SYS_CAPSET, cabi.byref(hdr), data))


def bpf(cmd: int, attr: Any) -> int:
    """bpf(2) with ``attr`` a zero-filled buffer laid out as ``union bpf_attr`` for ``cmd``."""
    return _check(_syscall(_SYS_BPF, cmd, attr, len(attr)))


class _MountAttr(cabi.Structure):
    _fields_ = [
        ("attr_set", cabi.c_uint64),
        ("attr_clr", cabi.c_uint64),
        ("propagation", cabi.c_uint64),
        ("userns_fd", cabi.c_uint64),
    ]


def mount_setattr(path: str, attr_set: int, attr_clr: int, recursive: bool = True) -> None:
    """mount_setattr(2) (Linux 5.12) on the mount at ``path``, and with ``recursive`` every mount below."""
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    flags = AT_RECURSIVE if recursive else 0
    _check(
        _syscall(
            _SYS_MOUNT_SETATTR, AT_FDCWD, _b(path), flags, cabi.byref(attr), cabi.sizeof(attr)
        )
    )


def mount_setattr_fd(fd: int, attr_set: int, userns_fd: int = 0, recursive: bool = False, attr_clr: int = 0) -> None:
    """mount_setattr(2) on the (detached) mount ``fd`` refers to; ``userns_fd`` for
    ``MOUNT_ATTR_IDMAP`` (the maps of that user namespace become the mount's)."""
    attr = _MountAttr(attr_set, attr_clr, 0, userns_fd)
    flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    _check(_syscall(_SYS_MOUNT_SETATTR, fd, b"", flags, cabi.byref(attr), cabi.sizeof(attr)))


def fsopen(fstype: str) -> int:
    """A new filesystem context (Linux 5.2): options are checked one by one with fsconfig."""
    return _check(_syscall(_SYS_FSOPEN, _b(fstype), FSOPEN_CLOEXEC))


def fsconfig(fd: int, cmd: int, key: str | None, value: str | None = None) -> None:
    _check(_syscall(_SYS_FSCONFIG, fd, cmd, _b(key), _b(value), 0))


def fsmount(fd: int, attr_flags: int = 0) -> int:
    """fsmount(2) (Linux 5.2): a detached mount (close-on-exec) of the superblock that
    ``FSCONFIG_CMD_CREATE`` made in context ``fd``, attachable with :func:`move_mount` (and,
    since Linux 6.15, a place other detached mounts can be moved onto)."""
    return _check(_syscall(_SYS_FSMOUNT, fd, FSMOUNT_CLOEXEC, attr_flags))


class _OpenHow(cabi.Structure):
    _fields_ = [("flags", cabi.c_uint64), ("mode", cabi.c_uint64), ("resolve", cabi.c_uint64)]


def openat2(dirfd: int, path: str | bytes, flags: int, mode: int = 0, resolve: int = 0) -> int:
    """openat2(2) (Linux 5.6): ``path`` from ``dirfd`` under the ``resolve`` rules; with
    ``RESOLVE_IN_ROOT`` every lookup, ``..`` and absolute symlinks included, stays below ``dirfd``
    as if it were ``/``, atomically (a symlink swapped in meanwhile cannot lead out)."""
    how = _OpenHow(flags, mode, resolve)
    return _check(_syscall(_SYS_OPENAT2, dirfd, _b(path), cabi.byref(how), cabi.sizeof(how)))


def open_tree(dirfd: int, path: str, flags: int) -> int:
    """open_tree(2) (Linux 5.2): with ``OPEN_TREE_CLONE`` a detached copy of the mount at ``path``
    (``AT_RECURSIVE``: with its submounts), attachable anywhere with :func:`move_mount`."""
    return _check(_syscall(_SYS_OPEN_TREE, dirfd, _b(path), flags))


def move_mount(from_fd: int, from_path: str, to_fd: int, to_path: str, flags: int) -> None:
    """move_mount(2) (Linux 5.2): attach (or move) a mount; ``MOVE_MOUNT_F_EMPTY_PATH`` takes
    the mount ``from_fd`` refers to."""
    _check(_syscall(_SYS_MOVE_MOUNT, from_fd, _b(from_path), to_fd, _b(to_path), flags))


PROC_SUPER_MAGIC = 0x9FA0
SYSFS_MAGIC = 0x62656572
TMPFS_MAGIC = 0x01021994


class _Statfs(cabi.Structure):
    _fields_ = [("f_type", cabi.c_long), ("_rest", cabi.c_byte * 112)]


def fstatfs_type(fd: int) -> int:
    """The file system type (``f_type``, e.g. :data:`PROC_SUPER_MAGIC`) of the file ``fd`` is on."""
    buf = _Statfs()
    _check(_fstatfs(fd, cabi.byref(buf)))
    return int(buf.f_type) & 0xFFFFFFFF


# statx(2): the mount a file is on (STATX_MNT_ID, Linux 5.8), whether it is the root of one
STATX_MNT_ID = 0x1000
STATX_ATTR_MOUNT_ROOT = 0x2000
AT_SYMLINK_NOFOLLOW = 0x100
_SYS_STATX = {"x86_64": 332, "aarch64": 291}.get(_MACHINE, -1)


class _Statx(cabi.Structure):
    # struct statx up to stx_mnt_id (offset 144), padded to its 256 bytes
    _fields_ = [("stx_mask", cabi.c_uint32), ("stx_blksize", cabi.c_uint32),
                ("stx_attributes", cabi.c_uint64), ("_ids_mode_ino", cabi.c_byte * 128),
                ("stx_mnt_id", cabi.c_uint64), ("_rest", cabi.c_byte * 104)]


def statx_mount(fd: int, path: str | bytes = b"", flags: int = AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) -> tuple[int | None, bool]:
    """(mount id, is the root of its mount) of ``path`` at ``fd`` (the fd itself by default);
    the id is None where the kernel does not report it (before 5.8)."""
    buf = _Statx()
    _check(_syscall(_SYS_STATX, fd, _b(path) or b"", flags, STATX_MNT_ID, cabi.byref(buf)))
    mnt_id = int(buf.stx_mnt_id) if buf.stx_mask & STATX_MNT_ID else None
    return mnt_id, bool(buf.stx_attributes & STATX_ATTR_MOUNT_ROOT)


_name_to_handle_at = _libc.function(
    "name_to_handle_at", (cabi.c_int, cabi.c_char_p, cabi.c_void_p, cabi.c_void_p, cabi.c_int))


def handle_mount_id(fd: int) -> int:
    """The mount id of the file ``fd`` from name_to_handle_at(2) (any kernel since 2.6.39; the
    same id as statx's STATX_MNT_ID): asked with no room for the handle, the kernel answers
    EOVERFLOW and fills in the mount id. OSError where the file system has no handles."""
    handle = cabi.create_string_buffer(8)  # struct file_handle: handle_bytes = 0, handle_type
    mount_id = cabi.c_int(0)
    if _name_to_handle_at(fd, b"", handle, cabi.byref(mount_id), AT_EMPTY_PATH) < 0:
        err = cabi.get_errno()
        if err != errno.EOVERFLOW:
            raise OSError(err, os.strerror(err))
    return int(mount_id.value)


def wait_for_eof(sock: socket.socket) -> None:
    """Block until the peer closes ``sock`` (or it fails): how a helper waits to be dismissed."""
    while True:
        try:
            if not sock.recv(64):
                return
        except InterruptedError:
            continue
        except OSError:
            return
