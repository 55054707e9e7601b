"""Build jobs: ``image.build`` (the classic builder), its steps, and ``build.prune``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from berth.builder.request import BuildRequest
from berth.engine.request import Request
from berth.jobs.results import JSONObject


@dataclass(frozen=True)
class ImageBuild(Request[None]):
    """The context tar on stdin, the build's JSON stream on stdout."""

    JOB: ClassVar[str] = "image.build"
    request: BuildRequest
    tags: str = ""        # the request's tags and Dockerfile again, as `berth jobs` shows them
    dockerfile: str = ""


@dataclass(frozen=True)
class BuildStep(Request[Any]):
    """One step of the build job ``build`` (its id), run as a job of its own so that ``berth
    jobs`` lists it with its timing; ``_work`` does it (not shown)."""

    JOB: ClassVar[str] = "build.step"
    build: int
    step: str
    instruction: str
    _work: Callable[[], Awaitable[Any]] = field(repr=False)


@dataclass(frozen=True)
class BuildPrune(Request[JSONObject]):
    JOB: ClassVar[str] = "build.prune"
    all: bool = False
