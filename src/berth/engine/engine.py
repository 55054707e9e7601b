"""The Engine: a handler table and the live job table (the seed's Engine).

Every operation of the daemon is a named job: the API server turns a request into
``await engine.job("container.create", name=..., config=...)``; the engine finds the handler
registered under that name, runs it, records its status and timings, and returns the result.

    engine = Engine()
    engine.register("container.create", daemon.container_create)
    result = await engine.job("container.create", name="web", config={...})

Running jobs are in ``engine.running``; the last ``history`` finished ones are kept for
``GET /berth/v1/jobs`` and ``berth jobs``.
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable
from typing import Any

from berth.engine.events import EventBus
from berth.engine.job import ByteSink, ByteSource, Job
from berth.errors import NotFound

Handler = Callable[[Job], Awaitable[Any]]


class Engine:
    def __init__(self, history: int = 200) -> None:
        self.handlers: dict[str, Handler] = {}
        self.running: dict[int, Job] = {}
        self.recent: collections.deque[Job] = collections.deque(maxlen=history)
        self.events = EventBus()

    def register(self, name: str, handler: Handler) -> None:
        if name in self.handlers:
            raise ValueError(f"register job {name!r}: a handler is already registered")
        self.handlers[name] = handler

    async def job(
        self,
        name: str,
        /,
        *,
        stdin: ByteSource | None = None,
        stdout: ByteSink | None = None,
        stderr: ByteSink | None = None,
        env: dict[str, str] | None = None,
        **args: Any,
    ) -> Any:
        handler = self.handlers.get(name)
        if handler is None:
            raise NotFound(f"no handler for job {name!r}")
        job = Job(name=name, args=args, env=env or {}, stdin=stdin, stdout=stdout, stderr=stderr)
        self.running[job.id] = job
        try:
            result = await handler(job)
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
