"""Waiting for runtime operations without blocking: each :class:`~berth.shim.runtime.Op` is
watched by the reactor, with a deadline after which its worker is killed.

    waiter = Waiter(reactor, "container helper process")
    waiter.wait(runtime.pause(), on_result, code=128, timeout=30)
    # on_result(Result) runs once the op answered, at once if it was done already, or with
    # "container helper process gave no answer in 30 s" at the deadline
    waiter.abandon_all("container X is not running", 126)   # the end: every op fails so
"""

from __future__ import annotations

import time
from collections.abc import Callable

from berth.shim.reactor import Reactor, Timer
from berth.shim.runtime import Op, Result


class Pending:
    """A runtime operation the reactor waits for, with its deadline."""

    __slots__ = ("op", "on_result", "timer", "code", "timeout")

    def __init__(self, op: Op, on_result: Callable[[Result], None], code: int, timeout: float) -> None:
        self.op, self.on_result, self.code, self.timeout = op, on_result, code, timeout
        self.timer: Timer | None = None


class Waiter:
    """The operations in flight and their deadlines."""

    __slots__ = ("reactor", "worker", "pending")

    def __init__(self, reactor: Reactor, worker: str) -> None:
        self.reactor = reactor
        self.worker = worker  # what a worker that does not answer is called in the error
        self.pending: list[Pending] = []

    def wait(self, op: Op, on_result: Callable[[Result], None], code: int, timeout: float) -> None:
        """Call ``on_result`` with the op's result once it has one (at once if it is done), or
        with an error at the deadline (the op is abandoned: its worker killed)."""
        if op.fd < 0:
            result = op.poll() or Result(error="operation gave no result", exit_code=code)
            op.close()
            on_result(result)
            return
        pending = Pending(op, on_result, code, timeout)
        pending.timer = self.reactor.call_at(time.monotonic() + timeout, lambda: self._timeout(pending))
        self.pending.append(pending)
        self.reactor.watch(op.fd, read=lambda: self._ready(pending))

    def _ready(self, pending: Pending) -> None:
        fd = pending.op.fd
        result = pending.op.poll()
        if result is not None:
            self._end(pending, fd)
            pending.op.close()
            pending.on_result(result)
        elif pending.op.fd != fd:  # the op waits on another fd now (berth.shim.native.CreateOp)
            self.reactor.forget(fd)
            self.reactor.watch(pending.op.fd, read=lambda: self._ready(pending))

    def _timeout(self, pending: Pending) -> None:
        self._end(pending, pending.op.fd)
        pending.op.abandon()
        pending.on_result(Result(error=f"{self.worker} gave no answer in {pending.timeout:g} s",
                                 exit_code=pending.code))

    def _end(self, pending: Pending, fd: int) -> None:
        self.pending.remove(pending)
        self.reactor.cancel(pending.timer)
        if fd >= 0:
            self.reactor.forget(fd)

    def abandon_all(self, message: str, code: int) -> None:
        """Every operation in flight fails with ``message`` (its worker killed)."""
        for pending in list(self.pending):
            self._end(pending, pending.op.fd)
            pending.op.abandon()
            pending.on_result(Result(error=message, exit_code=code))

    def kill_all(self) -> None:
        """A shim that crashed: no worker outlives it (nobody is told)."""
        for pending in self.pending:
            pending.op.abandon()
