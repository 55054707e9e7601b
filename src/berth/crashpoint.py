"""Crash points for tests: ``BERTH_CRASH_AT=<point>`` makes the process SIGKILL itself there.

The foundation promises that a daemon killed at any moment restarts consistent; these points
let the integration tests kill it at the worst moments, deterministically. Any box may place
one (the graph's commit has one); the daemon lists them all in :mod:`berth.daemon.faults`.
Unset (always, outside those tests) a point costs one dict lookup.
"""

from __future__ import annotations

import os
import signal


def crash_point(name: str) -> None:
    if os.environ.get("BERTH_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
