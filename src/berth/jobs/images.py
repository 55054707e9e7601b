"""Image jobs: ``image.*`` (commit, which takes a container, is in :mod:`berth.jobs.containers`).

Registry credentials travel as a :class:`~berth.registry.auth.Credentials` value: ``berth
jobs`` shows it by its type's name only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from berth.engine.request import Request
from berth.jobs.results import DEFAULT_API_VERSION, ApiVersion, Filters, JSONList, JSONObject
from berth.registry.auth import Credentials


@dataclass(frozen=True)
class ImageImport(Request[None]):
    """``docker import``: the tar on stdin, the JSON progress on stdout."""

    JOB: ClassVar[str] = "image.import"
    repo: str = ""
    changes: list[str] = field(default_factory=list)
    message: str = ""


@dataclass(frozen=True)
class ImagePull(Request[None]):
    JOB: ClassVar[str] = "image.pull"
    image: str
    tag: str = ""
    platform: str = ""
    auth: Credentials = field(default_factory=Credentials, repr=False)  # never in a log line


@dataclass(frozen=True)
class ImagePush(Request[None]):
    JOB: ClassVar[str] = "image.push"
    name: str
    tag: str = ""
    auth: Credentials = field(default_factory=Credentials, repr=False)  # never in a log line


@dataclass(frozen=True)
class ImageSearch(Request[JSONList]):
    JOB: ClassVar[str] = "image.search"
    term: str
    limit: int = 25
    filters: Filters = field(default_factory=dict)
    auth: Credentials = field(default_factory=Credentials, repr=False)  # never in a log line


@dataclass(frozen=True)
class DistributionInspect(Request[JSONObject]):
    """``GET /distribution/NAME/json``: the manifest's descriptor and platforms, from the registry."""

    JOB: ClassVar[str] = "image.distribution"
    name: str
    auth: Credentials = field(default_factory=Credentials, repr=False)  # never in a log line


@dataclass(frozen=True)
class ImageSave(Request[None]):
    """``docker save``: a tar of the named images on stdout (``format`` docker or oci)."""

    JOB: ClassVar[str] = "image.save"
    names: list[str]
    format: str = "docker"


@dataclass(frozen=True)
class ImageLoad(Request[None]):
    """``docker load``: the archive on stdin, the JSON messages on stdout."""

    JOB: ClassVar[str] = "image.load"
    quiet: bool = False


@dataclass(frozen=True)
class ImagePrune(Request[JSONObject]):
    JOB: ClassVar[str] = "image.prune"
    filters: Filters = field(default_factory=dict)


@dataclass(frozen=True)
class ImageList(Request[JSONList]):
    JOB: ClassVar[str] = "image.list"
    all: bool = False
    filters: Filters = field(default_factory=dict)
    digests: bool = False
    api_version: ApiVersion = DEFAULT_API_VERSION


@dataclass(frozen=True)
class ImageInspect(Request[JSONObject]):
    JOB: ClassVar[str] = "image.inspect"
    name: str
    api_version: ApiVersion = DEFAULT_API_VERSION


@dataclass(frozen=True)
class ImageHistory(Request[JSONList]):
    JOB: ClassVar[str] = "image.history"
    name: str


@dataclass(frozen=True)
class ImageTag(Request[None]):
    JOB: ClassVar[str] = "image.tag"
    name: str
    repo: str
    tag: str = ""


@dataclass(frozen=True)
class ImageRemove(Request[list[dict[str, str]]]):
    JOB: ClassVar[str] = "image.remove"
    name: str
    force: bool = False
    noprune: bool = False
