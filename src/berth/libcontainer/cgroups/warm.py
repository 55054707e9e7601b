"""The kernel's next cgroup migration made fast: a no-op migration of the caller, started early.

Moving a whole process into a cgroup (writing its pid to ``cgroup.procs``) takes the kernel's
global ``cgroup_threadgroup_rwsem`` for writing. After a quiet spell that costs one RCU grace
period (5-15 ms here, longer under load), and the writer holds ``cgroup_mutex`` meanwhile (every
mkdir, rmdir and migration on the host waits with it); writes that follow within about one more
grace period are fast. A no-op migration of the caller (into the cgroup it is in) waits that
grace period out ahead of time (:mod:`berth.shim.cgroupwarm` does it from a process of the fork
server's).

A single-threaded process moving itself through a v1 hierarchy's ``tasks`` file takes no global
lock (kernels since 2022: 6.0, and the stable series back to 5.4.213): that is how an init joins its
v1 hierarchies (:meth:`berth.libcontainer.cgroups.Cgroup.join`), so only a cgroup2 hierarchy's
``cgroup.procs`` (a hybrid host's ``unified``, or a v2 host's) has a grace period to wait for;
with no cgroup2 mounted nothing is warmed (a touch would only hold the cgroup lock against the
command's own mkdirs).

An OCI runtime command (``berth-runtime create``/``run``/``exec``) calls
:func:`warm_in_background` first thing (create and run from the launcher's preload, before their
modules load): the grace period passes on a thread of its own while Python imports and the
bundle is read, so the init's join, a few milliseconds later, finds the way clear. Since Linux
5.7 create and run need none of it: their init is forked straight into its cgroup2 directory
(clone3's CLONE_INTO_CGROUP), which takes no such lock; ``exec``'s process still joins.

    warmer = CgroupWarmer.of_self()     # None when no cgroup hierarchy is mounted
    warmer.touch()                      # blocks for the grace period, if there is one to wait
"""

from __future__ import annotations

import os


class CgroupWarmer:
    __slots__ = ("procs",)

    def __init__(self, procs: str) -> None:
        self.procs = procs  # the caller's own cgroup.procs in some hierarchy

    @classmethod
    def of_self(cls, proc: str = "/proc/self", v2_only: bool = False) -> CgroupWarmer | None:
        path = own_procs_file(proc, v2_only)
        return None if path is None else cls(path)

    def touch(self) -> None:
        try:
            fd = os.open(self.procs, os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            return  # the hierarchy went away: nothing to warm
        try:
            os.write(fd, b"0")  # 0: the writer itself
        except OSError:
            pass  # only a warm-up: the kernel took the lock (and waited) before refusing
        finally:
            os.close(fd)


def own_procs_file(proc: str = "/proc/self", v2_only: bool = False) -> str | None:
    """``cgroup.procs`` of the caller's own cgroup in the first hierarchy that is mounted (with
    ``v2_only``, the cgroup2 one: None without)."""
    mounts: list[tuple[str, str, set[str]]] = []  # (root, mount point, controllers or {"" for v2})
    with open(f"{proc}/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rest = left.split(), right.split()
            if len(fields) < 5 or len(rest) < 3 or rest[0] not in (("cgroup2",) if v2_only else ("cgroup", "cgroup2")):
                continue
            opts = {""} if rest[0] == "cgroup2" else set(rest[2].split(","))
            mounts.append((fields[3], fields[4].replace("\\040", " "), opts))
    with open(f"{proc}/cgroup") as f:
        entries = [line.rstrip("\n").split(":", 2) for line in f if line.count(":") >= 2]
    for _hier, controllers, path in entries:
        wanted = set(controllers.split(",")) if controllers else {""}
        for root, point, opts in mounts:
            if not wanted <= opts or not (path == root or path.startswith(root.rstrip("/") + "/")):
                continue
            rel = path[len(root):].lstrip("/") if root != "/" else path.lstrip("/")
            procs = os.path.join(point, rel, "cgroup.procs")
            if os.path.exists(procs):
                return procs
    return None


TICK = 0.004  # seconds: a migration path touched this often stays fast
SPAN = 0.5  # seconds: a command has made its container's init join its cgroup by then
_done = False  # set by stop_warming(): the joins it was for are made
_started = False  # warm_in_background() was called (by the launcher's preload, or the command)


def warm_in_background(init_forked_into_cgroup: bool = False) -> None:
    """:meth:`CgroupWarmer.touch` on a thread of its own (the write blocks in the kernel, without
    the GIL), then again every :data:`TICK` for :data:`SPAN`, so the fast path is still open when
    the init joins; for a short-lived command. Once per process; nothing when no cgroup2
    hierarchy is mounted (the v1 joins take no global lock), nor for a command that forks its
    container's init into the cgroup2 directory (``init_forked_into_cgroup``: create and run,
    :func:`berth.libcontainer.kernel.fork_into_cgroup`) on a kernel that can (5.7)."""
    global _started
    if _started:
        return
    _started = True
    if init_forked_into_cgroup and kernel_at_least(5, 7):
        return
    import _thread

    try:
        warmer = CgroupWarmer.of_self(v2_only=True)
    except OSError:
        return  # no /proc here: nothing to warm
    if warmer is not None:
        _thread.start_new_thread(_keep_warm, (warmer,))


def kernel_at_least(major: int, minor: int) -> bool:
    """Whether the running kernel's release is ``major.minor`` or later."""
    release = os.uname().release
    parts = release.split("-", 1)[0].split(".")
    try:
        return (int(parts[0]), int(parts[1]) if len(parts) > 1 else 0) >= (major, minor)
    except ValueError:
        return False


def stop_warming() -> None:
    """The container's processes have joined their cgroups: no more touches (each takes the
    kernel's cgroup lock and holds every fork on the host back for a moment)."""
    global _done
    _done = True


def _keep_warm(warmer: CgroupWarmer) -> None:
    import time

    until = time.monotonic() + SPAN
    while not _done:
        warmer.touch()
        if time.monotonic() > until:
            return
        time.sleep(TICK)
