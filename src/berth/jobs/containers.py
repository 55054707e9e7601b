"""Container jobs: ``container.*`` (and ``image.commit``, which takes a container)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from berth.engine.request import Request
from berth.jobs.results import (
    DEFAULT_API_VERSION,
    ApiVersion,
    Created,
    Filters,
    IdOnly,
    JSONList,
    JSONObject,
    Warnings,
)


@dataclass(frozen=True)
class ContainerCreate(Request[Created]):
    JOB: ClassVar[str] = "container.create"
    config: JSONObject
    name: str = ""
    api_version: ApiVersion = DEFAULT_API_VERSION
    platform: str = ""


@dataclass(frozen=True)
class ContainerList(Request[JSONList]):
    JOB: ClassVar[str] = "container.list"
    all: bool = False
    limit: int | None = -1
    size: bool = False
    filters: Filters = field(default_factory=dict)


@dataclass(frozen=True)
class ContainerInspect(Request[JSONObject]):
    JOB: ClassVar[str] = "container.inspect"
    id: str
    size: bool = False


@dataclass(frozen=True)
class ContainerStart(Request[None]):
    JOB: ClassVar[str] = "container.start"
    id: str


@dataclass(frozen=True)
class ContainerStop(Request[None]):
    """``timeout`` None: the container's StopTimeout (10 s); ``signal`` "": its StopSignal."""

    JOB: ClassVar[str] = "container.stop"
    id: str
    timeout: int | None = None
    signal: str = ""


@dataclass(frozen=True)
class ContainerRestart(Request[None]):
    JOB: ClassVar[str] = "container.restart"
    id: str
    timeout: int | None = None
    signal: str = ""


@dataclass(frozen=True)
class ContainerKill(Request[None]):
    JOB: ClassVar[str] = "container.kill"
    id: str
    signal: str = ""


@dataclass(frozen=True)
class ContainerPause(Request[None]):
    JOB: ClassVar[str] = "container.pause"
    id: str


@dataclass(frozen=True)
class ContainerUnpause(Request[None]):
    JOB: ClassVar[str] = "container.unpause"
    id: str


@dataclass(frozen=True)
class ContainerRename(Request[None]):
    JOB: ClassVar[str] = "container.rename"
    id: str
    name: str = ""


@dataclass(frozen=True)
class ContainerUpdate(Request[Warnings]):
    JOB: ClassVar[str] = "container.update"
    id: str
    config: JSONObject = field(default_factory=dict)


@dataclass(frozen=True)
class ContainerResize(Request[None]):
    """The TTY's size: ``h`` rows, ``w`` columns."""

    JOB: ClassVar[str] = "container.resize"
    id: str
    h: int = 0
    w: int = 0


@dataclass(frozen=True)
class ContainerRemove(Request[None]):
    JOB: ClassVar[str] = "container.remove"
    id: str
    force: bool = False
    volumes: bool = False


@dataclass(frozen=True)
class ContainerWait(Request[None]):
    """Streams ``{"Error": null, "StatusCode": n}`` on stdout: the headers at once, the body
    when ``condition`` (not-running, next-exit, removed) is met."""

    JOB: ClassVar[str] = "container.wait"
    id: str
    condition: str = "not-running"


@dataclass(frozen=True)
class ContainerLogs(Request[None]):
    """Streams the log (multiplexed frames, raw for a TTY) on stdout."""

    JOB: ClassVar[str] = "container.logs"
    id: str
    follow: bool = False
    want_stdout: bool = True
    want_stderr: bool = True
    since: str = ""
    until: str = ""
    timestamps: bool = False
    tail: str = "all"


@dataclass(frozen=True)
class ContainerAttach(Request[None]):
    """Binds a hijacked connection (the job's stdin and stdout) to the container's stdio."""

    JOB: ClassVar[str] = "container.attach"
    id: str
    want_stdin: bool = False
    want_stdout: bool = True
    want_stderr: bool = True
    stream: bool = False
    logs: bool = False
    detach_keys: str = ""


@dataclass(frozen=True)
class ContainerTop(Request[JSONObject]):
    JOB: ClassVar[str] = "container.top"
    id: str
    ps_args: str = ""


@dataclass(frozen=True)
class ContainerChanges(Request[JSONList | None]):
    JOB: ClassVar[str] = "container.changes"
    id: str


@dataclass(frozen=True)
class ContainerExport(Request[None]):
    """Streams the container's file system as a tar on stdout."""

    JOB: ClassVar[str] = "container.export"
    id: str


@dataclass(frozen=True)
class ContainerPrune(Request[JSONObject]):
    JOB: ClassVar[str] = "container.prune"
    filters: Filters = field(default_factory=dict)


@dataclass(frozen=True)
class ContainerStats(Request[None]):
    """Streams Docker's stats documents on stdout (one, or one a second with ``stream``)."""

    JOB: ClassVar[str] = "container.stats"
    id: str
    stream: bool = True
    one_shot: bool = False


@dataclass(frozen=True)
class ImageCommit(Request[IdOnly]):
    """``docker commit``: a new image from ``container``'s changes."""

    JOB: ClassVar[str] = "image.commit"
    container: str
    repo: str = ""
    tag: str = ""
    comment: str = ""
    author: str = ""
    changes: list[str] = field(default_factory=list)
    pause: bool = True
    config: JSONObject | None = None  # the request body (Docker's commit config); not applied yet
    container_config: JSONObject | None = None  # a build step's: the container config to record
    image_config: JSONObject | None = None  # a build step's: the new image's config
    created_by: str | None = None  # a build step's history line
