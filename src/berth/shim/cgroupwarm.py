"""Making the kernel's next cgroup migration fast: a no-op migration of the caller, started early.

Moving a process into a cgroup (writing its pid to ``cgroup.procs``, which every container init
does for itself) takes the kernel's ``cgroup_threadgroup_rwsem`` for writing. After a quiet
spell that costs one RCU grace period (the rwsem's ``rcu_sync`` has to switch the readers, every
fork and exit, to their slow path): 5-15 ms here, longer under load; writes that follow within
about one more grace period are fast (0.05-0.2 ms). cgroup v1 and v2 share the one rwsem (only
v2's ``clone3(CLONE_INTO_CGROUP)`` avoids it, and a hybrid host still has the v1 hierarchies).

So the fork server, as soon as it has handed a new container to its shim, moves itself into
the cgroup it is already in: it waits out the grace period while the shim and its helper set the
container up, and the init's own move into its cgroup a few milliseconds later finds the way
clear. Nothing changes for the fork server (a migration to its own cgroup moves nothing); if
the write fails (a cgroup that refuses it), the grace period was waited for all the same.

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
    def of_self(cls, proc: str = "/proc/self") -> CgroupWarmer | None:
        path = own_procs_file(proc)
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


def own_procs_file(proc: str = "/proc/self") -> str | None:
    """``cgroup.procs`` of the caller's own cgroup in the first hierarchy that is mounted."""
    mounts: list[tuple[str, str, set[str]]] = []  # (root, mount point, controllers or {"" for v2})
    with open(f"{proc}/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rest = left.split(), right.split()
            if len(fields) < 5 or len(rest) < 3 or rest[0] not in ("cgroup", "cgroup2"):
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
