"""Network jobs: ``network.*``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from berth.engine.request import Request
from berth.jobs.results import Filters, JSONList, JSONObject


@dataclass(frozen=True)
class NetworkList(Request[JSONList]):
    JOB: ClassVar[str] = "network.list"
    filters: Filters = field(default_factory=dict)


@dataclass(frozen=True)
class NetworkInspect(Request[JSONObject]):
    JOB: ClassVar[str] = "network.inspect"
    id: str
    scope: str = ""


@dataclass(frozen=True)
class NetworkCreate(Request[JSONObject]):
    JOB: ClassVar[str] = "network.create"
    body: JSONObject


@dataclass(frozen=True)
class NetworkRemove(Request[None]):
    JOB: ClassVar[str] = "network.remove"
    id: str


@dataclass(frozen=True)
class NetworkPrune(Request[JSONObject]):
    JOB: ClassVar[str] = "network.prune"
    filters: Filters = field(default_factory=dict)


@dataclass(frozen=True)
class NetworkConnect(Request[None]):
    """Connect (``connect``) or disconnect the container the body names."""

    JOB: ClassVar[str] = "network.connect"
    id: str
    body: JSONObject
    connect: bool = True
