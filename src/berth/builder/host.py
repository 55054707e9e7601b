"""What the builder needs from the daemon: the jobs a build is made of, behind one interface.

The builder never imports the daemon; the daemon hands it a :class:`BuildHost` whose methods
run the engine's existing jobs (``container.create``, ``container.start``, ``container.wait``,
``image.commit``, ``container.remove``, ``image.pull``, ``image.tag``) or read the graph, and
which runs each step as a ``build.step`` job so that ``berth jobs`` shows the build's steps.
Tests can hand it a fake.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar

from berth.builder.cache import BuildCache
from berth.builder.imagefs import ImageFS

T = TypeVar("T")
OutputFn = Callable[[int, bytes], Awaitable[None]]
LayerWriter = Callable[[BinaryIO], None]


@dataclass(frozen=True)
class RunSpec:
    """A RUN step's container: the create body (Docker's container config) and host config."""

    config: dict[str, Any] = field(hash=False)
    host_config: dict[str, Any] = field(hash=False)


class BuildHost(Protocol):
    cache: BuildCache
    tmp_dir: Path

    async def find_image(self, ref: str) -> str | None:
        """The local image id for ``ref``, or None."""

    async def pull(self, ref: str, platform: str, auth: dict[str, Any], progress: Callable[[bytes], Awaitable[None]]) -> str:
        """Pull ``ref`` (its JSON progress goes to ``progress``); the image id."""

    async def image_config(self, image_id: str) -> dict[str, Any]:
        """The image's whole config document."""

    async def image_fs(self, image_id: str) -> ImageFS:
        """The image's file tree (read-only, no mount)."""

    async def image_exists(self, image_id: str) -> bool: ...

    async def image_parent(self, image_id: str) -> str:
        """The image's parent image id ("" for none, or when the image is gone)."""

    async def run(self, spec: RunSpec, on_created: Callable[[str], Awaitable[None]], output: OutputFn) -> int:
        """Create, start and wait for a container; ``on_created(id)`` before it starts; its exit code.
        The container id is passed to ``on_created`` and stays the caller's to commit or remove."""

    async def commit(self, container_id: str, config: dict[str, Any], container_config: dict[str, Any],
                     created_by: str, author: str) -> str: ...

    async def remove_container(self, container_id: str) -> None: ...

    async def derive(self, parent: str, layer: LayerWriter | None, config: dict[str, Any],
                     container_config: dict[str, Any], created_by: str, author: str) -> str:
        """A new image on ``parent`` ("" for none) with ``config``: no layer, or the layer tar that
        ``layer(out)`` writes (run in a thread, while the graph applies it)."""

    async def tag(self, image_id: str, ref: str) -> str:
        """Tag the image; the familiar name (``app:1``)."""

    async def step(self, label: str, instruction: str, work: Callable[[], Awaitable[T]]) -> T:
        """Run one step as a job of the engine."""
