"""The Engine: a handler table and the live job table (the seed's Engine).

Every operation of the daemon is a job: the API server turns a request into a typed job request
(a frozen dataclass, :mod:`berth.engine.request`) and runs ``await engine.job(request)``; the
engine finds the handler registered for the request's type, runs it, records its status and
timings, and returns the result::

    engine = Engine()
    engine.handle(ContainerCreate, create)            # create(request, job) -> its result
    result = await engine.job(ContainerCreate(name="web", config={...}))

The older style, a job name and keyword arguments, still works: ``engine.job("container.create",
name="web", config={...})`` builds the same request when the job has a request type, and a
handler registered by name (``engine.register(name, handler)``, ``handler(job)``) reads
``job.args``. A job nobody registered is a programming error (:class:`UnknownJob`), and
:meth:`Engine.check` lets a front end refuse to start when a job it runs has no handler.

Running jobs are in ``engine.running``; the last ``history`` finished ones are kept for
``GET /berth/v1/jobs`` and ``berth jobs``.

A daemon may serve before all its handlers are registered (``/_ping`` answers while the rest
starts): between ``hold()`` and ``release()`` a job without a handler waits for the release
instead of failing, and ``check()`` is done at the release::

    engine.hold()                   # the API server starts; ping's handler is registered
    ... register the others ...
    engine.release()                # UnknownJob here if a front end's job has no handler
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from berth.engine.events import EventBus
from berth.engine.job import ByteSink, ByteSource, Job
from berth.engine.request import Request, build, request_types

Handler = Callable[[Job], Awaitable[Any]]
Q = TypeVar("Q", bound=Request[Any])
R = TypeVar("R")


class UnknownJob(LookupError):
    """A job no handler is registered for: a programming error, found at start-up."""


@dataclass(frozen=True)
class _Entry:
    typed: bool
    fn: Callable[..., Awaitable[Any]]


class Engine:
    def __init__(self, history: int = 200) -> None:
        self.handlers: dict[str, _Entry] = {}
        self.running: dict[int, Job] = {}
        self.recent: collections.deque[Job] = collections.deque(maxlen=history)
        self.events = EventBus()
        self._held: asyncio.Event | None = None  # set when released: jobs may wait for handlers
        self._checks: list[set[str] | None] = []  # check() calls made while held

    def hold(self) -> None:
        """Until ``release()``, a job whose handler is not registered yet waits for it."""
        self._held = asyncio.Event()

    def release(self, check: bool = True) -> None:
        """Every handler is registered: run the checks asked for while held (not after a failed
        start-up: ``check=False``), then the jobs that waited (they fail with UnknownJob if
        their handler is still missing)."""
        held, self._held = self._held, None
        checks, self._checks = self._checks, []
        try:
            for names in checks if check else ():
                self.check(names)
        finally:
            if held is not None:
                held.set()

    def register(self, name: str, handler: Handler) -> None:
        """A handler of the older style: ``handler(job)`` reads ``job.args``."""
        self._add(name, _Entry(False, handler))

    def handle(self, kind: type[Q], handler: Callable[[Q, Job], Awaitable[Any]]) -> None:
        """The handler of the job whose request type is ``kind``: ``handler(request, job)``."""
        if not kind.JOB:
            raise ValueError(f"register {kind.__qualname__}: a request type without a JOB name")
        self._add(kind.JOB, _Entry(True, handler))

    def _add(self, name: str, entry: _Entry) -> None:
        if name in self.handlers:
            raise ValueError(f"register job {name!r}: a handler is already registered")
        self.handlers[name] = entry

    def check(self, names: Iterable[str] | None = None) -> None:
        """UnknownJob unless every job in ``names`` (default: every request type defined) has a
        handler: what a front end calls before it serves."""
        if self._held is not None:
            self._checks.append(None if names is None else set(names))  # done at release()
            return
        wanted = set(request_types() if names is None else names)
        missing = sorted(wanted - set(self.handlers))
        if missing:
            raise UnknownJob(f"no handler is registered for the jobs {', '.join(missing)}")

    @overload
    async def job(
        self,
        request: Request[R],
        /,
        *,
        stdin: ByteSource | None = None,
        stdout: ByteSink | None = None,
        stderr: ByteSink | None = None,
        env: dict[str, str] | None = None,
    ) -> R: ...

    @overload
    async def job(
        self,
        request: str,
        /,
        *,
        stdin: ByteSource | None = None,
        stdout: ByteSink | None = None,
        stderr: ByteSink | None = None,
        env: dict[str, str] | None = None,
        **args: Any,
    ) -> Any: ...

    async def job(
        self,
        request: Request[Any] | str,
        /,
        *,
        stdin: ByteSource | None = None,
        stdout: ByteSink | None = None,
        stderr: ByteSink | None = None,
        env: dict[str, str] | None = None,
        **args: Any,
    ) -> Any:
        if isinstance(request, str):
            name = request
            typed = build(name, args)
        else:
            if args:
                raise TypeError(f"job {request.JOB}: keyword arguments beside a request: {', '.join(args)}")
            name, typed = request.JOB, request
        entry = self.handlers.get(name)
        if entry is None and self._held is not None:
            await self._held.wait()  # the daemon is starting: its handlers come at the release
            entry = self.handlers.get(name)
        if entry is None:
            raise UnknownJob(f"no handler is registered for the job {name!r}")
        if typed is not None:
            args = typed.args()
        elif entry.typed:
            raise UnknownJob(f"job {name!r}: its handler takes a request, and no request type has that name")
        job = Job(name=name, args=args, env=env or {}, stdin=stdin, stdout=stdout, stderr=stderr, request=typed)
        self.running[job.id] = job
        try:
            result = await (entry.fn(typed, job) if entry.typed else entry.fn(job))
        except BaseException as exc:
            job.finish(exc)
            raise
        else:
            job.finish(None)
            return result
        finally:
            del self.running[job.id]
            self.recent.append(job)

    def jobs(self, all: bool = False, recent: int = 20) -> list[Job]:
        """Running jobs first (oldest first), then finished ones (newest first)."""
        done = list(self.recent)[::-1]
        if not all:
            done = done[:recent]
        return sorted(self.running.values(), key=lambda j: j.id) + done
