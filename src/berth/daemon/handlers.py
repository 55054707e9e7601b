"""Each daemon module's table of job handlers, keyed by request type.

A handler is ``async def handler(d: Daemon, request: TheRequest, job: Job) -> TheResult``; the
module collects its handlers with :meth:`HandlerTable.on`, which checks (statically) that the
handler takes the request type it is registered for, and the daemon registers every table with
the engine at start-up::

    handlers = HandlerTable()

    @handlers.on(ContainerStart)
    async def start(d: Daemon, req: ContainerStart, job: Job) -> None: ...
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from berth.engine import Job, Request

if TYPE_CHECKING:
    from berth.daemon.daemon import Daemon

Q = TypeVar("Q", bound=Request[Any])
HandlerFn = Callable[["Daemon", Q, Job], Awaitable[Any]]


class HandlerTable:
    def __init__(self) -> None:
        self._handlers: dict[type[Request[Any]], Callable[[Daemon, Any, Job], Awaitable[Any]]] = {}

    def on(self, kind: type[Q]) -> Callable[[HandlerFn[Q]], HandlerFn[Q]]:
        def register(fn: HandlerFn[Q]) -> HandlerFn[Q]:
            if kind in self._handlers:
                raise ValueError(f"job {kind.JOB}: two handlers in one table")
            self._handlers[kind] = fn
            return fn

        return register

    def items(self) -> Iterator[tuple[type[Request[Any]], Callable[[Daemon, Any, Job], Awaitable[Any]]]]:
        return iter(self._handlers.items())
