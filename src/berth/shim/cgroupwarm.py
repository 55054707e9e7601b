"""Making the kernel's next cgroup migration fast: a no-op migration of the caller, started early.

Moving a process into a cgroup (writing its pid to ``cgroup.procs``, which every container init
does for itself) takes the kernel's ``cgroup_threadgroup_rwsem`` for writing. After a quiet
spell that costs one RCU grace period (the rwsem's ``rcu_sync`` has to switch the readers, every
fork and exit, to their slow path): 5-15 ms here, longer under load; writes that follow within
about one more grace period are fast (0.05-0.2 ms). cgroup v1 and v2 share the one rwsem (only
v2's ``clone3(CLONE_INTO_CGROUP)`` avoids it, and a hybrid host still has the v1 hierarchies).

So as soon as the fork server has handed a new container to its shim, a small process of its
own (:class:`WarmerProcess`, forked once) moves itself into the cgroup it is already in, and
again every 4 ms for half a second: it waits out the grace period while the shim and its helper
set the container up, and the init's own move into its cgroup a few milliseconds later finds
the way clear. Nothing changes for it (a migration to its own cgroup moves nothing); if the
write fails (a cgroup that refuses it), the grace period was waited for all the same. It is a
process apart so that the fork server itself touches nothing between forks: every page the
fork server writes after forking a shim becomes that shim's own.

    warmer = WarmerProcess.start()      # None when no cgroup hierarchy is mounted
    warmer.kick()                       # after each container handed out; never blocks
    warmer.stop()                       # the fork server is going
"""

from __future__ import annotations

import os

from berth.libcontainer.cgroups.warm import CgroupWarmer, own_procs_file

__all__ = ["CgroupWarmer", "WarmerProcess", "own_procs_file"]

TICK_MS = 4  # a migration path touched this often stays fast
SPAN = 0.5  # seconds after a kick: the new container's init has joined its cgroup by then


class WarmerProcess:
    """A child that warms cgroup migrations on request (a byte on its pipe); EOF: it exits."""

    __slots__ = ("pid", "kick_w")

    def __init__(self, pid: int, kick_w: int) -> None:
        self.pid, self.kick_w = pid, kick_w

    @classmethod
    def start(cls) -> WarmerProcess | None:
        warmer = CgroupWarmer.of_self()
        if warmer is None:
            return None
        kick_r, kick_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(kick_w)
                _serve(warmer, kick_r)
                code = 0
            finally:
                os._exit(code)
        os.close(kick_r)
        os.set_blocking(kick_w, False)
        return cls(pid, kick_w)

    def kick(self) -> None:
        try:
            os.write(self.kick_w, b"k")
        except (BlockingIOError, BrokenPipeError):
            pass  # it has kicks pending (or is gone): nothing to add

    def stop(self) -> None:
        os.close(self.kick_w)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass  # reaped already


def _serve(warmer: CgroupWarmer, kick_r: int) -> None:
    import select
    import signal
    import time

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon's Ctrl-C is the daemon's
    poller = select.poll()
    poller.register(kick_r, select.POLLIN)
    until = 0.0
    while True:
        if poller.poll(TICK_MS if until else None):
            if not os.read(kick_r, 512):
                return  # the fork server is gone
            warmer.touch()
            until = time.monotonic() + SPAN
        elif until:
            warmer.touch()
            if time.monotonic() > until:
                until = 0.0
