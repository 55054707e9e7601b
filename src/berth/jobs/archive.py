"""``docker cp`` jobs: ``container.archive.*`` (stat, get and put a path of a container)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from berth.engine.request import Request
from berth.jobs.results import JSONObject


@dataclass(frozen=True)
class ContainerArchiveStat(Request[JSONObject]):
    """The path's stat, Docker's ``X-Docker-Container-Path-Stat`` document."""

    JOB: ClassVar[str] = "container.archive.stat"
    id: str
    path: str = ""


@dataclass(frozen=True)
class ContainerArchiveGet(Request[None]):
    """The path's tar on stdout (its stat in the response's header)."""

    JOB: ClassVar[str] = "container.archive.get"
    id: str
    path: str = ""


@dataclass(frozen=True)
class ContainerArchivePut(Request[None]):
    """The tar on stdin extracted at the directory ``path``."""

    JOB: ClassVar[str] = "container.archive.put"
    id: str
    path: str = ""
    no_overwrite_dir_non_dir: bool = False
    copy_uid_gid: bool = False
