"""What holds the event loop, and where (``BERTH_SLOW_CALLBACK_MS``).

asyncio's debug mode reports every callback that ran longer than its threshold, as wall-clock
time. On a busy machine a callback also "runs long" while the kernel runs other processes: that
time is not the daemon's doing. The watch wraps each callback and measures, for the loop's
thread, the wall time, the time it spent waiting for a CPU (the kernel's run-queue delay,
``/proc/thread-self/schedstat``) and its CPU time; the difference between the wall time and
the run-queue delay is how long the callback *held* the loop. A callback that held it past the
threshold is logged with the stack a sampling thread saw while it ran, which names the blocking
call::

    loop held for 62 ms by <Task ...> (wall 70 ms, waiting for a cpu 8 ms, on cpu 12 ms) at:
      File ".../daemon/store.py", line 51, in put ...

Debug-only: it costs two system calls per callback.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import logging
import os
import sys
import threading
import time
import traceback
from typing import Any

log = logging.getLogger("berth.loopwatch")
SAMPLE = 0.005  # seconds between the sampling thread's looks
HELD = "loop held for"  # what the slow-callback test looks for


def _run_delay_ns(fd: int) -> int:
    """The thread's time waiting on a run queue so far (schedstat's second field)."""
    try:
        return int(os.pread(fd, 96, 0).split()[1])
    except (OSError, IndexError, ValueError):
        return 0


class LoopWatch:
    def __init__(self, loop: asyncio.AbstractEventLoop, threshold: float) -> None:
        self.loop = loop
        self.threshold = threshold
        self.loop_thread = threading.get_ident()
        self.schedstat = os.open("/proc/thread-self/schedstat", os.O_RDONLY | os.O_CLOEXEC)
        self.running_since = 0.0  # monotonic start of the callback the loop runs now (0: none)
        self.sample = ""  # the stack seen while the current callback ran long
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._sampler, name="loop-watch", daemon=True)

    def start(self) -> None:
        watch = self
        original = asyncio.events.Handle._run

        def _run(handle: asyncio.events.Handle) -> None:
            if threading.get_ident() != watch.loop_thread:
                original(handle)
                return
            q0 = _run_delay_ns(watch.schedstat)
            c0 = time.thread_time()
            watch.sample = ""
            watch.running_since = t0 = time.monotonic()
            try:
                original(handle)
            finally:
                watch.running_since = 0.0
                wall = time.monotonic() - t0
                if wall >= watch.threshold:
                    watch._report(handle, wall, (_run_delay_ns(watch.schedstat) - q0) / 1e9, time.thread_time() - c0)

        setattr(asyncio.events.Handle, "_run", _run)  # noqa: B010  (a method replaced on the class)
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()

    def _report(self, handle: Any, wall: float, waiting: float, cpu: float) -> None:
        held = wall - waiting
        if held < self.threshold:
            log.info(
                "slow callback not ours: wall %.0f ms, of which %.0f ms waiting for a cpu (a busy machine)",
                wall * 1000, waiting * 1000,
            )
            return
        log.warning(
            "%s %.0f ms by %s (wall %.0f ms, waiting for a cpu %.0f ms, on cpu %.0f ms) at:\n%s",
            HELD, held * 1000, _describe(handle), wall * 1000, waiting * 1000, cpu * 1000,
            self.sample or "  (no sample)\n",
        )

    def _sampler(self) -> None:
        while not self.stopped.wait(SAMPLE):
            since = self.running_since
            if not since or self.sample or time.monotonic() - since < self.threshold * 0.8:
                continue
            frame = sys._current_frames().get(self.loop_thread)
            if frame is not None and self.running_since == since:
                self.sample = "".join(traceback.format_stack(frame, limit=16))


def _describe(handle: Any) -> str:
    text = repr(handle)
    return text if len(text) <= 300 else text[:297] + "..."
