"""A Job: the unit of work in the engine, modelled on a Unix process (the seed's model).

A job has a name (which picks the handler), arguments, environment, standard streams and an
exit status. ``stdin`` is an async byte source (``read() -> bytes``, ``b""`` at EOF) and
``stdout`` an async byte sink (``write(bytes)``); both are optional and are what streaming
operations (attach, exec, logs, import, events) use. The handler's return value is the job's
result; an exception is its error.

    job = Job(name="container.create", args={"name": "web", "config": {...}})
    job.status  -> "running" | "ok" | "error"
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Protocol


class ByteSource(Protocol):
    async def read(self) -> bytes: ...


class ByteSink(Protocol):
    async def write(self, data: bytes) -> None: ...


_ids = itertools.count(1)


@dataclass
class Job:
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    stdin: ByteSource | None = None
    stdout: ByteSink | None = None
    stderr: ByteSink | None = None
    id: int = field(default_factory=lambda: next(_ids))
    status: str = "running"
    error: str = ""
    started: float = field(default_factory=time.time)
    finished: float | None = None
    _t0: float = field(default_factory=time.monotonic, repr=False)
    _t1: float | None = field(default=None, repr=False)

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
        """The job as the jobs API shows it: small, JSON-able, no stream objects."""
        return {
            "ID": self.id,
            "Name": self.name,
            "Status": self.status,
            "Args": {k: _brief(v) for k, v in self.args.items() if not k.startswith("_")},  # _x: private
            "StartedAt": _rfc3339(self.started),
            "DurationMs": self.duration_ms,
            "Error": self.error,
        }


def _brief(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value if not isinstance(value, str) or len(value) <= 80 else value[:77] + "..."
    return type(value).__name__


def _rfc3339(ts: float) -> str:
    secs = int(ts)
    nanos = int((ts - secs) * 1e9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{nanos:09d}Z"
