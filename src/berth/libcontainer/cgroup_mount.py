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


def _inside(hierarchy: tuple[str, str], path: str) -> str:
    """Host directory of cgroup ``path`` in a hierarchy mounted with root ``hierarchy[0]``."""
    root, mountpoint = hierarchy[0], hierarchy[1]
    rel = os.path.relpath(path, root) if root != "/" else path.lstrip("/")
    return mountpoint if rel in ("", ".") else os.path.join(mountpoint, rel)
