"""Volume jobs: ``volume.*``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from berth.engine.request import Request
from berth.jobs.results import DEFAULT_API_VERSION, ApiVersion, Filters, JSONObject


@dataclass(frozen=True)
class VolumeList(Request[JSONObject]):
    JOB: ClassVar[str] = "volume.list"
    filters: Filters = field(default_factory=dict)


@dataclass(frozen=True)
class VolumeCreate(Request[JSONObject]):
    JOB: ClassVar[str] = "volume.create"
    body: JSONObject


@dataclass(frozen=True)
class VolumePrune(Request[JSONObject]):
    JOB: ClassVar[str] = "volume.prune"
    filters: Filters = field(default_factory=dict)
    api_version: ApiVersion = DEFAULT_API_VERSION


@dataclass(frozen=True)
class VolumeInspect(Request[JSONObject]):
    JOB: ClassVar[str] = "volume.inspect"
    name: str


@dataclass(frozen=True)
class VolumeRemove(Request[None]):
    JOB: ClassVar[str] = "volume.remove"
    name: str
    force: bool = False
