"""System jobs: ping, version, info, login, events, the API server itself, swarm and plugins."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import ClassVar

from berth.engine.request import Request
from berth.jobs.results import AuthResult, Filters, JSONObject
from berth.registry.auth import Credentials


@dataclass(frozen=True)
class SystemPing(Request[str]):
    JOB: ClassVar[str] = "system.ping"


@dataclass(frozen=True)
class SystemVersion(Request[JSONObject]):
    JOB: ClassVar[str] = "system.version"


@dataclass(frozen=True)
class SystemInfo(Request[JSONObject]):
    JOB: ClassVar[str] = "system.info"


@dataclass(frozen=True)
class SystemAuth(Request[AuthResult]):
    """``docker login``: the credentials checked against ``server``'s registry."""

    JOB: ClassVar[str] = "system.auth"
    auth: Credentials = field(repr=False)  # never in a log line
    server: str = ""


@dataclass(frozen=True)
class SystemEvents(Request[None]):
    """Streams events on stdout: the kept ones since ``since``, then live ones until ``until``."""

    JOB: ClassVar[str] = "system.events"
    since: float | None = None
    until: float | None = None
    filters: Filters = field(default_factory=dict)


@dataclass(frozen=True)
class SystemDf(Request[JSONObject]):
    """``docker system df``: what images, containers, volumes and the build cache take; ``types``
    (API 1.42 ``type=``) limits it to some of them."""

    JOB: ClassVar[str] = "system.df"
    types: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServeAPI(Request[None]):
    """The API server as a job (the seed's ``serveapi``): serves until ``stop`` is set; sets
    ``ready`` once it listens."""

    JOB: ClassVar[str] = "serveapi"
    stop: asyncio.Event
    ready: asyncio.Event | None = None


@dataclass(frozen=True)
class SwarmUnavailable(Request[None]):
    """Every swarm operation: dockerd's answers for a node outside a swarm (always an error)."""

    JOB: ClassVar[str] = "swarm.unavailable"
    action: str = ""
    path: str = ""
    version: str = ""


@dataclass(frozen=True)
class PluginList(Request[list[JSONObject]]):
    JOB: ClassVar[str] = "plugin.list"
    filters: Filters = field(default_factory=dict)


@dataclass(frozen=True)
class PluginFind(Request[None]):
    """A named plugin: berth has none, so always a 404."""

    JOB: ClassVar[str] = "plugin.find"
    name: str
