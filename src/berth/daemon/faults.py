"""Crash points for tests: ``BERTH_CRASH_AT=<point>`` makes berthd SIGKILL itself there.

The foundation promises that a daemon killed at any moment restarts consistent; these points
let the integration tests kill it at the worst moments of create and start, deterministically.
Unset (always, outside those tests) a point costs one dict lookup.
"""

from __future__ import annotations

import os
import signal

POINTS = (
    "create.after-rw", "start.after-create", "start.after-save", "exit.after-save", "remove.after-files",
    "start.after-network", "connect.after-driver", "disconnect.after-driver",
)


def crash_point(name: str) -> None:
    if os.environ.get("BERTH_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
