"""Step timestamps for profiling the container start path: off unless ``BERTH_STEP_TRACE`` is set.

``BERTH_STEP_TRACE=FILE`` in berthd's environment makes every process on the way -- the daemon,
the fork server, the shim, its helper and the container's init -- append one line per step::

    <CLOCK_MONOTONIC seconds> <pid> <label>

CLOCK_MONOTONIC is one clock for all of them, so ``bench/steps.py`` can sort the lines of one
start and give the median of each step over many. Off (the variable unset: always, outside a
profile), :func:`mark` is a function that does nothing.

    from berth.steptrace import mark
    mark("h:cgroup")        # "h:" helper, "i:" init, "m:" shim, "d:" daemon, "f:" fork server

The file is opened once per process tree (close-on-exec: an exec'd container process never
sees it); the container's init keeps it open across its fd clean-up (:func:`fds`).
"""

from __future__ import annotations

import os
import time

_PATH = os.environ.get("BERTH_STEP_TRACE") or ""
_fd = -1


def _mark(label: str) -> None:
    global _fd
    try:
        if _fd < 0:
            _fd = os.open(_PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.write(_fd, f"{time.monotonic():.6f} {os.getpid()} {label}\n".encode())
    except OSError:
        pass  # a profile that loses a line is still a profile; the start goes on regardless


def _off(label: str) -> None:
    """Tracing is off."""


def fds() -> tuple[int, ...]:
    """The trace file's descriptor, for a process that closes all others (the init); ()
    when tracing is off or nothing was traced yet in this process."""
    return (_fd,) if _fd >= 0 else ()


mark = _mark if _PATH else _off
