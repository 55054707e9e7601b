"""What the shim leaves in ``<exec_root>/<id>/`` for the daemon, also across a daemon restart.

``state.json`` -- ``{"monitor_pid", "pid", "started_at"}`` once the init exists (``started_at``
empty until it runs); ``exit.json`` -- ``{"exit_code", "oom_killed", "finished_at", "error"}``
once it is gone. Both are replaced atomically (a reader sees the old file or the whole new one), and neither is
flushed to the disk: they describe processes, which a host crash ends anyway (the exec root is
a tmpfs, ``/run/berth``, by default), and a daemon killed or restarted finds them in the page
cache all the same. On an exec root on a disk, syncing them cost a ``docker run`` 3-8 ms each.
"""

from __future__ import annotations

import os
from typing import Any

from berth.shim import protocol as P

STATE_FILE = "state.json"
EXIT_FILE = "exit.json"


def atomic_write_json(path: str, obj: Any, sync: bool = False) -> None:
    """write (+ fsync) + rename, so a reader sees the old file or the whole new one."""
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, P.dumps(obj))
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def write_state(directory: str, monitor_pid: int, pid: int, started_at: str) -> None:
    atomic_write_json(os.path.join(directory, STATE_FILE),
                      {"monitor_pid": monitor_pid, "pid": pid, "started_at": started_at})


def write_exit(directory: str, result: dict[str, Any]) -> None:
    atomic_write_json(os.path.join(directory, EXIT_FILE), result)
