"""The standard mounts every container gets: one table, for the daemon's spec, tests and tools.

moby's ``oci.DefaultLinuxSpec`` (the same as runc's ``spec`` template, plus /dev/shm's size and
the cgroup mount): /proc, a tmpfs /dev with devpts, sysfs and the cgroup hierarchies read-only
(writable when privileged), the mqueue filesystem and a /dev/shm tmpfs. Returned as OCI mount
objects, in the order they are mounted (a parent before what goes inside it)::

    >>> [m["destination"] for m in default_mounts()]
    ['/proc', '/dev', '/dev/pts', '/sys', '/sys/fs/cgroup', '/dev/mqueue', '/dev/shm']
    >>> default_mounts(shm_size=1 << 20, cgroup=False)[-1]["options"][-1]
    'size=1048576'

The graph's init layer makes the mount points an image may lack (:mod:`berth.graph.rwlayer`,
Docker's own list); init makes the rest (``make_mountpoint``).
"""

from __future__ import annotations

from typing import Any

DEFAULT_SHM_SIZE = 64 << 20
_NOSUID_NOEXEC_NODEV = ("nosuid", "noexec", "nodev")


def default_mounts(
    shm_size: int = DEFAULT_SHM_SIZE, privileged: bool = False, cgroup: bool = True
) -> list[dict[str, Any]]:
    """Fresh OCI mount objects (the caller may change them); ``cgroup`` adds /sys/fs/cgroup
    (type ``cgroup``: the container's own hierarchies, runc's special case)."""
    ro = [] if privileged else ["ro"]
    mounts: list[dict[str, Any]] = [
        _mount("/proc", "proc", "proc", _NOSUID_NOEXEC_NODEV),
        _mount("/dev", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
        _mount("/dev/pts", "devpts", "devpts",
               ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5")),
        _mount("/sys", "sysfs", "sysfs", (*_NOSUID_NOEXEC_NODEV, *ro)),
    ]
    if cgroup:
        # --privileged: writable, as Docker's writable-cgroups default for it
        mounts.append(_mount("/sys/fs/cgroup", "cgroup", "cgroup", (*ro, *_NOSUID_NOEXEC_NODEV)))
    mounts += [
        _mount("/dev/mqueue", "mqueue", "mqueue", _NOSUID_NOEXEC_NODEV),
        _mount("/dev/shm", "tmpfs", "shm", (*_NOSUID_NOEXEC_NODEV, "mode=1777", f"size={shm_size}")),
    ]
    return mounts


def _mount(destination: str, fstype: str, source: str, options: tuple[str, ...]) -> dict[str, Any]:
    return {"destination": destination, "type": fstype, "source": source, "options": list(options)}
