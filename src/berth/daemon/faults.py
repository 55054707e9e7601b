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


async def startup_pause() -> None:
    """``BERTH_TEST_STARTUP_PAUSE=<seconds>``: a start-up that takes that much longer (tests of
    what the daemon does while it starts: /_ping answers, other requests wait)."""
    seconds = float(os.environ.get("BERTH_TEST_STARTUP_PAUSE") or 0)
    if seconds > 0:
        import asyncio

        await asyncio.sleep(seconds)
