"""The shim's event loop: one ``epoll``, a read and a write callback per fd, timers, signals.

Single-threaded and small on purpose (no ``selectors``, no ``asyncio``): every page a forked
shim touches becomes its own, so the loop is a dict of callbacks and a short list of timers.

    reactor = Reactor()
    reactor.watch(fd, read=on_readable)             # level-triggered; write=... adds EPOLLOUT
    reactor.watch(fd, read=None)                    # stop reading (the fd is forgotten when
                                                    # neither callback is left)
    timer = reactor.call_at(time.monotonic() + 2, on_deadline)
    reactor.cancel(timer)
    reactor.catch_signals(on_signals)               # on_signals(b"\\x11...") after SIGCHLD & co
    reactor.run(lambda: finished)                   # until finished() is true after a batch

Callbacks of one batch see the fd table as it is when they run: an fd that an earlier callback
of the batch closed (and maybe reused) never reaches its old owner's callbacks.
"""

from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import Callable

EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP = select.EPOLLIN, select.EPOLLOUT, select.EPOLLERR, select.EPOLLHUP
READABLE = EPOLLIN | EPOLLHUP | EPOLLERR
WRITABLE = EPOLLOUT | EPOLLHUP | EPOLLERR

Callback = Callable[[], None]
KEEP = False  # watch(): leave that callback as it is


class Timer:
    """A callback due at ``when`` (``time.monotonic()``); cancelled timers never fire."""

    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback: Callback) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False


class Reactor:
    """epoll, callbacks and timers; ``run()`` returns when its condition holds."""

    __slots__ = ("ep", "cbs", "timers")

    def __init__(self) -> None:
        self.ep = select.epoll()
        self.cbs: dict[int, list[Callback | None]] = {}  # fd -> [read, write]
        self.timers: list[Timer] = []

    def watch(self, fd: int, read: Callback | None | bool = KEEP, write: Callback | None | bool = KEEP) -> None:
        """Set (a callable), clear (None) or keep (``KEEP``) the read and write callbacks of fd."""
        cur = self.cbs.get(fd)
        entry: list[Callback | None] = [None, None] if cur is None else cur
        if read is not KEEP:
            entry[0] = read  # type: ignore[assignment]
        if write is not KEEP:
            entry[1] = write  # type: ignore[assignment]
        events = (EPOLLIN if entry[0] else 0) | (EPOLLOUT if entry[1] else 0)
        if cur is None:
            if events:
                self.cbs[fd] = entry
                self.ep.register(fd, events)
        elif events:
            self.ep.modify(fd, events)
        else:
            del self.cbs[fd]
            self.ep.unregister(fd)

    def forget(self, fd: int) -> None:
        """Stop watching fd (before closing it)."""
        if self.cbs.pop(fd, None) is not None:
            self.ep.unregister(fd)

    def call_at(self, when: float, callback: Callback) -> Timer:
        timer = Timer(when, callback)
        self.timers.append(timer)
        return timer

    def cancel(self, timer: Timer | None) -> None:
        if timer is not None and not timer.cancelled:
            timer.cancelled = True
            self.timers.remove(timer)

    def catch_signals(self, handler: Callable[[bytes], None]) -> None:
        """Route signals through the wakeup fd: ``handler(signal numbers as bytes)`` runs in the
        loop. The process must install Python-level handlers for the signals it wants."""
        rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wfd)

        def drain() -> None:
            got = b""
            try:
                while chunk := os.read(rfd, 512):
                    got += chunk
            except BlockingIOError:
                pass
            handler(got)

        self.watch(rfd, read=drain)

    def run_once(self) -> None:
        """Wait for fds or the next timer, run what is ready, then the timers that are due."""
        timers = self.timers
        timeout = max(0.0, min(t.when for t in timers) - time.monotonic()) if timers else -1
        events = self.ep.poll(timeout)
        cbs = self.cbs
        batch = [(fd, mask, cbs.get(fd)) for fd, mask in events]
        for fd, mask, entry in batch:
            if entry is None or cbs.get(fd) is not entry:
                continue
            if mask & READABLE and entry[0]:
                entry[0]()
            if mask & WRITABLE and entry[1] and cbs.get(fd) is entry:
                entry[1]()
        if timers:
            now = time.monotonic()
            for timer in [t for t in timers if t.when <= now]:
                if not timer.cancelled:
                    timer.cancelled = True
                    timers.remove(timer)
                    timer.callback()

    def run(self, done: Callable[[], bool]) -> None:
        while not done():
            self.run_once()

    def close(self) -> None:
        self.ep.close()
        self.cbs.clear()
        self.timers.clear()
