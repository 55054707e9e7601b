"""Crash points for tests: ``BERTH_SHIM_CRASH_AT=<point>`` makes a shim SIGKILL itself there.

The daemon has its own (``berth.daemon.faults``); these are the shim's transitions where a shim
that dies must still leave the daemon a consistent story. Read once, when the fork server
imports the shim (never set outside tests): a point costs one string comparison.

- ``created``: the init waits at its barrier, the daemon has been told; start never comes
- ``started``: the init has exec'd its process; neither state.json nor the daemon knows yet
- ``exit-recorded``: exit.json is written; no exit event sent, the cgroup still there
"""

from __future__ import annotations

import os

POINTS = ("created", "started", "exit-recorded")
CRASH_AT = os.environ.get("BERTH_SHIM_CRASH_AT", "")
armed = False  # set by a shim's main(): the fork server's rehearsals pass the points unharmed


def crash_point(name: str) -> None:
    if armed and CRASH_AT == name:
        os.kill(os.getpid(), 9)
