"""Exec jobs: ``exec.*``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from berth.engine.request import Request
from berth.jobs.results import IdOnly, JSONObject


@dataclass(frozen=True)
class ExecCreate(Request[IdOnly]):
    """A new exec instance in the running container ``id`` (Docker's ExecConfig in ``config``)."""

    JOB: ClassVar[str] = "exec.create"
    id: str
    config: JSONObject


@dataclass(frozen=True)
class ExecStart(Request[None]):
    """Detached, or attached through a hijacked connection (the job's stdin and stdout); ``tty``
    is the start request's own, which says how the stream is framed."""

    JOB: ClassVar[str] = "exec.start"
    id: str
    detach: bool = False
    tty: bool = False


@dataclass(frozen=True)
class ExecInspect(Request[JSONObject]):
    JOB: ClassVar[str] = "exec.inspect"
    id: str


@dataclass(frozen=True)
class ExecResize(Request[None]):
    JOB: ClassVar[str] = "exec.resize"
    id: str
    h: int = 0
    w: int = 0
