"""A Job: the unit of work in the engine, modelled on a Unix process (the seed's model).

A job has a request (whose type picks the handler and whose fields are its arguments), an
environment, standard streams and an exit status. ``stdin`` is an async byte source
(``read() -> bytes``, ``b""`` at EOF) and ``stdout`` an async byte sink (``start(content_type)``
sends the headers of the stream, ``write(bytes)`` its data); both are optional and are what
streaming operations (attach, exec, logs, import, events) use. A hijacked connection (attach,
exec) is both, and a :class:`Duplex`: it also says when the client went away. Handlers reach the
streams through :attr:`Job.sink`, :attr:`Job.source` and :attr:`Job.duplex`, typed, and a job run
without the stream its handler needs is a programming error that names the job. The handler's
return value is the job's result; an exception is its error.

    job = Job(name="container.create", request=ContainerCreate(name="web", config={...}))
    job.status  -> "running" | "ok" | "error"
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from berth.engine.request import Request, brief_args


class ByteSource(Protocol):
    async def read(self) -> bytes: ...


class ByteSink(Protocol):
    async def write(self, data: bytes) -> None: ...


class StreamSink(Protocol):
    """A sink whose stream has a start: the headers (content type, extra headers) go out at
    ``start``, or at the first ``write`` (an empty write sends them without data)."""

    async def start(self, content_type: str | None = None, headers: dict[str, str] | None = None) -> object: ...

    async def write(self, data: bytes) -> None: ...


class Duplex(Protocol):
    """A hijacked connection: the client's bytes in, the job's out, and its end."""

    async def start(self, content_type: str | None = None) -> object: ...

    async def write(self, data: bytes) -> None: ...

    async def read(self) -> bytes: ...

    @property
    def gone(self) -> asyncio.Event: ...

    @property
    def closed_by_server(self) -> bool: ...

    async def headers_read(self) -> None: ...


class MissingStream(TypeError):
    """A streaming job was run without the stream its handler needs (a programming error)."""


_ids = itertools.count(1)


@dataclass
class Job:
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    stdin: ByteSource | None = None
    stdout: ByteSink | None = None
    stderr: ByteSink | None = None
    request: Request[Any] | None = None
    id: int = field(default_factory=lambda: next(_ids))
    status: str = "running"
    error: str = ""
    started: float = field(default_factory=time.time)
    finished: float | None = None
    _t0: float = field(default_factory=time.monotonic, repr=False)
    _t1: float | None = field(default=None, repr=False)

    @property
    def sink(self) -> StreamSink:
        """The job's stdout as a stream with a start (HTTP responses, hijacked connections); a
        plain byte sink (one job collecting another's output) starts with its first write."""
        if _offers(self.stdout, "start", "write"):
            return cast(StreamSink, self.stdout)
        if self.stdout is None:
            raise MissingStream(f"job {self.name} needs a stdout stream")
        return _PlainSink(self.stdout)

    @property
    def source(self) -> ByteSource:
        if self.stdin is None:
            raise MissingStream(f"job {self.name} needs a stdin stream")
        return self.stdin

    @property
    def duplex(self) -> Duplex:
        """The hijacked connection that is the job's stdin and stdout."""
        if not _offers(self.stdout, "start", "write", "read", "gone", "closed_by_server"):
            raise MissingStream(f"job {self.name} needs a hijacked connection (got {type(self.stdout).__name__})")
        return cast(Duplex, self.stdout)

    def finish(self, error: BaseException | None) -> None:
        self._t1 = time.monotonic()
        self.finished = time.time()
        if error is None:
            self.status = "ok"
        else:
            self.status = "error"
            self.error = str(error) or type(error).__name__

    @property
    def duration_ms(self) -> float | None:
        return None if self._t1 is None else (self._t1 - self._t0) * 1000.0

    def summary(self) -> dict[str, Any]:
        """The job as the jobs API shows it: small, JSON-able, no stream objects, no secrets."""
        return {
            "ID": self.id,
            "Name": self.name,
            "Status": self.status,
            "Args": brief_args(self.args),
            "StartedAt": _rfc3339(self.started),
            "DurationMs": self.duration_ms,
            "Error": self.error,
        }


class _PlainSink:
    def __init__(self, inner: ByteSink) -> None:
        self.inner = inner

    async def start(self, content_type: str | None = None, headers: dict[str, str] | None = None) -> None:
        return None  # no headers to send: the first write is the start

    async def write(self, data: bytes) -> None:
        await self.inner.write(data)


def _offers(obj: object, *names: str) -> bool:
    # looked up on the class: a property of a connection not made yet must not run here
    return obj is not None and all(hasattr(type(obj), n) for n in names)


def _rfc3339(ts: float) -> str:
    secs = int(ts)
    nanos = int((ts - secs) * 1e9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{nanos:09d}Z"
