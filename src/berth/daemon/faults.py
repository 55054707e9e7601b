"""Crash points for tests: ``BERTH_CRASH_AT=<point>`` makes berthd SIGKILL itself there
(:func:`berth.crashpoint.crash_point`).

The foundation promises that a daemon killed at any moment restarts consistent; these points
let the integration tests kill it at the worst moments of create, start, exit settlement,
removal, a volume's copy-up and commit, deterministically (``tests/integration/test_crash_points.py``
and ``test_restart.py``). Unset (always, outside those tests) a point costs one dict lookup.
"""

from __future__ import annotations

import os

from berth.crashpoint import crash_point

POINTS = (
    "create.after-rw", "start.after-create", "start.after-save", "exit.after-record", "exit.after-save",
    "remove.after-record", "remove.after-layer", "remove.after-files", "volume.after-copy-up", "commit.after-layer",
    "start.after-network", "connect.after-driver", "disconnect.after-driver", "exit.network-later",
)

__all__ = ["POINTS", "crash_point", "record_delete_pause", "startup_pause"]


async def startup_pause() -> None:
    """``BERTH_TEST_STARTUP_PAUSE=<seconds>``: a start-up that takes that much longer (tests of
    what the daemon does while it starts: /_ping answers, other requests wait)."""
    seconds = float(os.environ.get("BERTH_TEST_STARTUP_PAUSE") or 0)
    if seconds > 0:
        import asyncio

        await asyncio.sleep(seconds)


async def record_delete_pause() -> None:
    """``BERTH_TEST_RECORD_DELETE_PAUSE=<seconds>``: the record of a ``--rm`` container removed at
    its exit is deleted that much later (tests of what holds before: the wait answered, the name
    free). Unset, one dict lookup."""
    seconds = os.environ.get("BERTH_TEST_RECORD_DELETE_PAUSE")
    if seconds:
        import asyncio

        await asyncio.sleep(float(seconds))
