"""The OCI ``cgroup`` mount type: the container's own cgroups at /sys/fs/cgroup, as runc does it.

Runs in the init child before pivot_root, after init joined its cgroup (and unshared a cgroup
namespace if asked), so ``/proc/self/cgroup`` names the container's cgroups.

* v1 / hybrid: a tmpfs at the destination; in it, per host v1 hierarchy (``memory``,
  ``cpu,cpuacct``, ``systemd`` ...; hybrid's ``unified`` is left out, as runc does) a directory onto
  which the container's own cgroup directory of that hierarchy is bound, remounted with the
  mount's flags (``ro``, ``nosuid`` ...); ``cpu`` and ``cpuacct`` symlinks for a combined hierarchy;
  with ``ro`` the tmpfs too is made read-only at the end (runc leaves it writable).
  In a new cgroup namespace each hierarchy is mounted afresh instead (rooted at the namespace),
  except in a user namespace of the container's own, where the kernel refuses a v1 mount: the
  binds then too, of the directories read before the cgroup namespace was made.
* pure v2: a fresh ``cgroup2`` mount in a cgroup namespace (it is then rooted at the container's
  cgroup); without one, a bind of the container's cgroup directory.

    >>> parse_mountinfo_line("35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory")
    ('/', '/sys/fs/cgroup/memory', 'cgroup', frozenset({'memory'}))
"""

from __future__ import annotations

import os

from berth.libcontainer import kernel
from berth.libcontainer.cgroups import files
from berth.libcontainer.mountopts import parse_mount_options
from berth.libcontainer.mounts import kept_flags, mount, mount_one, remount_readonly
from berth.libcontainer.spec import Mount

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_NOT_CONTROLLERS = {
    "rw",
    "ro",
    "xattr",
    "nosuid",
    "nodev",
    "noexec",
    "relatime",
    "clone_children",
    "noprefix",
}


def parse_mountinfo_line(line: str) -> tuple[str, str, str, frozenset[str]]:
    """(root, mount point, fstype, controllers) of one ``/proc/self/mountinfo`` line."""
    fields = line.split()
    sep = fields.index("-")
    root, mountpoint = fields[3], fields[4]
    fstype, super_opts = fields[sep + 1], fields[sep + 3]
    controllers = frozenset(o for o in super_opts.split(",") if o not in _NOT_CONTROLLERS)
    return root, mountpoint, fstype, controllers


def own_cgroups(text: str) -> dict[frozenset[str], str]:
    """``/proc/self/cgroup`` as {controllers: path}; the v2 entry has the empty set."""
    out: dict[frozenset[str], str] = {}
    for line in text.splitlines():
        _, ctrls, path = line.split(":", 2)
        out[frozenset(c for c in ctrls.split(",") if c)] = path
    return out


Hierarchies = list[tuple[str, str, str, frozenset[str]]]
CgroupView = tuple[dict[frozenset[str], str], Hierarchies]


def view() -> CgroupView:
    """Our cgroups and the cgroup mounts, as seen now: read before a cgroup namespace is made,
    after which both are relative to it and the host's directories can no longer be named."""
    mine = own_cgroups(_read("/proc/self/cgroup"))
    found = []
    for line in _read("/proc/self/mountinfo").splitlines():
        if " - cgroup" in line:  # cgroup or cgroup2: the others need no parsing
            entry = parse_mountinfo_line(line)
            if entry[2] in ("cgroup", "cgroup2"):
                found.append(entry)
    return mine, found


def _read(path: str) -> str:
    return files.read(path, "surrogateescape")


def mount_cgroups(m: Mount, dest: str, new_cgroupns: bool, seen: CgroupView, in_userns: bool = False) -> None:
    if _attach_ahead(m, dest, new_cgroupns, seen, in_userns):
        return
    opts = parse_mount_options(m.options)
    readonly = bool(opts.flags & kernel.MS_RDONLY)
    flags = opts.flags & ~kernel.MS_RDONLY
    mine, hierarchies = seen
    v1 = [h for h in hierarchies if h[2] == "cgroup"]
    if not v1:  # pure v2
        if new_cgroupns:
            mount_one(Mount("cgroup2", "cgroup2", dest, m.options), dest)
        else:
            mp = next((h for h in hierarchies if h[1] == "/sys/fs/cgroup"), hierarchies[0])
            source = _inside((mp[0], mp[1]), mine.get(frozenset(), "/"))
            mount_one(Mount("bind", source, dest, ("rbind", *(("ro",) if readonly else ()))), dest)
        return
    os.makedirs(dest, exist_ok=True)
    mount("tmpfs", dest, "tmpfs", flags, "mode=755", "tmpfs on")
    for root, mountpoint, fstype, controllers in hierarchies:
        if os.path.dirname(mountpoint) != "/sys/fs/cgroup" or fstype == "cgroup2":
            continue  # the v1 hierarchies of the standard layout (runc leaves hybrid's unified out)
        path = mine.get(controllers)
        if path is None:
            continue
        name = os.path.basename(mountpoint)
        target = os.path.join(dest, name)
        if new_cgroupns and not in_userns:
            # /proc/self/cgroup now reads "/" for everything: mount the hierarchy afresh, and
            # the kernel roots it at this namespace's cgroup
            os.makedirs(target, exist_ok=True)
            ro = kernel.MS_RDONLY if readonly else 0
            mount("cgroup", target, "cgroup", flags | ro, ",".join(sorted(controllers)), "cgroup on")
        else:
            mount_one(Mount("bind", _inside((root, mountpoint), path), target, ("rbind",)), target)
            # the mount's own flags (nosuid, nodev, noexec, ro) on each bind, as runc does, and
            # those the host's mount has (a user namespace may not clear them)
            remount = kernel.MS_REMOUNT | kernel.MS_BIND | flags | (kernel.MS_RDONLY if readonly else 0)
            remount |= kept_flags(target)
            mount(None, target, None, remount, None, "(remount cgroup bind)")
        if "," in name:  # cpu,cpuacct -> cpu and cpuacct symlinks
            for part in name.split(","):
                link = os.path.join(dest, part)
                if not os.path.lexists(link):
                    os.symlink(name, link)
    # runc leaves the tmpfs itself writable; berth seals it too when the mount says ro (a
    # deliberate, stricter difference: nothing in a container needs to write there)
    if readonly:
        remount_readonly(dest)


def _binds(seen: CgroupView) -> list[tuple[str, str]] | None:
    """(name under the mount, host directory bound there) per v1 hierarchy, in the order
    :func:`mount_cgroups` binds them without a cgroup namespace; None on a pure v2 host."""
    mine, hierarchies = seen
    if not any(h[2] == "cgroup" for h in hierarchies):
        return None
    out = []
    for root, mountpoint, fstype, controllers in hierarchies:
        if os.path.dirname(mountpoint) != "/sys/fs/cgroup" or fstype == "cgroup2":
            continue
        path = mine.get(controllers)
        if path is not None:
            out.append((os.path.basename(mountpoint), _inside((root, mountpoint), path)))
    return out


# The mount made ahead (make_ahead), in the process that will become (or fork) the init.
_ATTRS = ((kernel.MS_RDONLY, 0x1), (kernel.MS_NOSUID, 0x2), (kernel.MS_NODEV, 0x4), (kernel.MS_NOEXEC, 0x8),
          (kernel.MS_NODIRATIME, 0x80))
_ATIME, _NOATIME = 0x70, 0x10


class _Ahead:
    tree = -1  # the detached tmpfs with the binds in it
    options: tuple[str, ...] = ()  # the cgroup mount's options it was made for
    binds: list[tuple[str, tuple[int, int]]] = []  # (name, the bound directory's st_dev and st_ino)
    seal = 0  # the tmpfs's attributes once attached (read-only), 0: left writable
    used = -1  # the tree once copied (or found unfit): ahead_handoff's


_ahead = _Ahead()


def ahead_fds() -> tuple[int, ...]:
    """The descriptor of a mount :func:`make_ahead` made (for an init that closes all others)."""
    return (_ahead.tree,) if _ahead.tree >= 0 else ()


def ahead_handoff() -> int:
    """The tree :func:`mount_cgroups` is done with (its copy is the container's), -1 for none: the
    caller's to close, or to hand to a process whose own close it may be -- a detached tree's
    last close unmounts it and waits out an RCU grace period (0.5 ms and more on a busy host)."""
    used, _ahead.used = _ahead.used, -1
    if used < 0 and _ahead.tree >= 0:  # never reached the cgroup mount
        used, _ahead.tree = _ahead.tree, -1
    return used


def make_ahead(options: tuple[str, ...], came: Callable[[], bool] | None = None) -> bool:
    """In a process that is to become a container's init, before its work comes (a standby's twin,
    in its cgroup placeholder): the cgroup mount :func:`mount_cgroups` would make for a mount
    with ``options`` and no cgroup namespace -- the tmpfs, each v1 hierarchy's directory of ours
    bound in it with the mount's flags, the symlinks of a combined hierarchy -- made now, detached
    (fsmount, open_tree clones moved onto it, mount_setattr), so that the init attaches it in one
    call. :func:`mount_cgroups` uses it only for a mount with these options whose directories are
    these (the placeholder's, renamed to the container's: the same inodes), else drops it.
    False where it cannot be made (v2, flags it does not know, an older kernel) or ``came()``
    says, between two binds, that the work has come (then it is not in the work's way)."""
    drop_ahead()
    opts = parse_mount_options(options)
    if opts.propagation or opts.rec_set or opts.rec_clear or opts.copyup or opts.data:
        return False
    readonly = bool(opts.flags & kernel.MS_RDONLY)
    flags = opts.flags & ~kernel.MS_RDONLY
    if flags & ~(kernel.MS_NOSUID | kernel.MS_NODEV | kernel.MS_NOEXEC):
        return False
    try:
        binds = _binds(view())
        if not binds:
            return False
        ctx = kernel.fsopen("tmpfs")
        try:
            kernel.fsconfig(ctx, kernel.FSCONFIG_SET_STRING, "source", "tmpfs")
            kernel.fsconfig(ctx, kernel.FSCONFIG_SET_STRING, "mode", "755")
            kernel.fsconfig(ctx, kernel.FSCONFIG_CMD_CREATE, None)
            tree = kernel.fsmount(ctx, _attrs(flags))
        finally:
            os.close(ctx)
    except OSError:
        return False
    made = []
    try:
        for name, source in binds:
            if came is not None and came():
                raise InterruptedError  # the work is there: the usual way, at once
            os.mkdir(name, dir_fd=tree)
            os.chmod(name, 0o755, dir_fd=tree)  # as made in the init, under its umask 022
            clone = kernel.open_tree(kernel.AT_FDCWD, source,
                                     kernel.OPEN_TREE_CLONE | kernel.OPEN_TREE_CLOEXEC | kernel.AT_RECURSIVE)
            try:
                # the bind's remount: the mount's flags, ro, and those the host's mount has
                # (its atime rule included: a bind remount without one makes it relatime)
                kept = kept_flags(source)
                want = flags | kept | (kernel.MS_RDONLY if readonly else 0)
                attrs = _attrs(want) | (_NOATIME if kept & kernel.MS_NOATIME else 0)
                kernel.mount_setattr_fd(clone, attrs, attr_clr=_ATIME)
                kernel.move_mount(clone, "", tree, name, kernel.MOVE_MOUNT_F_EMPTY_PATH)
            finally:
                os.close(clone)
            st = os.stat(source)
            made.append((name, (st.st_dev, st.st_ino)))
            if "," in name:
                for part in name.split(","):
                    try:
                        os.symlink(name, part, dir_fd=tree)
                    except FileExistsError:
                        pass
    except OSError:
        os.close(tree)
        return False
    # (the tmpfs itself is made read-only when attached, after its times are set)
    _ahead.tree, _ahead.options, _ahead.binds = tree, tuple(options), made
    _ahead.seal = _attrs(flags | kernel.MS_RDONLY) if readonly else 0
    return True


def drop_ahead() -> None:
    if _ahead.tree >= 0:
        os.close(_ahead.tree)
    _ahead.tree, _ahead.binds = -1, []


def _attrs(flags: int) -> int:
    return sum(attr for ms, attr in _ATTRS if flags & ms)


def _attach_ahead(m: Mount, dest: str, new_cgroupns: bool, seen: CgroupView, in_userns: bool) -> bool:
    """The mount made ahead attached at ``dest`` when it is what the usual way would make now:
    the same options, no cgroup namespace, the same hierarchies and the same directories."""
    tree, _ahead.tree = _ahead.tree, -1
    if tree < 0:
        return False
    try:
        if new_cgroupns or in_userns or tuple(m.options) != _ahead.options:
            return False
        binds = _binds(seen)
        if binds is None or [b[0] for b in binds] != [b[0] for b in _ahead.binds]:
            return False
        for (_, source), (_, made) in zip(binds, _ahead.binds, strict=True):
            st = os.stat(source)
            if (st.st_dev, st.st_ino) != made:
                return False
        os.makedirs(dest, exist_ok=True)
        # its times are the start's, as a tmpfs made now would have them (/sys/fs/cgroup's own:
        # the directories in it are under the binds)
        os.utime(f"/proc/self/fd/{tree}")
        # a copy of it, made now: its mounts get their ids now, after those made before them
        # in the init (mountinfo lists a namespace's mounts by id: the tree made ahead would
        # come first, before its own parent)
        copy = kernel.open_tree(tree, "", kernel.OPEN_TREE_CLONE | kernel.OPEN_TREE_CLOEXEC | kernel.AT_RECURSIVE
                                | kernel.AT_EMPTY_PATH)
        try:
            if _ahead.seal:
                kernel.mount_setattr_fd(copy, _ahead.seal, attr_clr=_ATIME)
            kernel.move_mount(copy, "", kernel.AT_FDCWD, dest, kernel.MOVE_MOUNT_F_EMPTY_PATH | kernel.MOVE_MOUNT_T_SYMLINKS)
        finally:
            os.close(copy)
        return True
    except OSError:
        return False  # the usual way then says what is wrong
    finally:
        _ahead.binds = []
        # closing it dissolves its mounts, with an RCU grace period: a process that will go on
        # without it (the standby at READY: ahead_handoff) closes it instead, off the path
        _ahead.used = tree


def _inside(hierarchy: tuple[str, str], path: str) -> str:
    """Host directory of cgroup ``path`` in a hierarchy mounted with root ``hierarchy[0]``."""
    root, mountpoint = hierarchy[0], hierarchy[1]
    rel = os.path.relpath(path, root) if root != "/" else path.lstrip("/")
    return mountpoint if rel in ("", ".") else os.path.join(mountpoint, rel)
