"""The builder's host in the daemon: every build step as the engine's own jobs.

:class:`DaemonHost` is :class:`berth.builder.host.BuildHost` for one ``image.build`` job: a RUN
is ``container.create`` + ``container.start`` + ``container.wait`` (its output reaches the
build's stream through an attached stream of the container's session) + ``image.commit`` +
``container.remove``; a base image is an ``image.pull`` with the registry credentials the client
sent (``X-Registry-Config``); a step is a ``build.step`` job. Layers the builder writes (COPY,
WORKDIR) go through a pipe: one thread writes the tar while another applies it to the graph.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar, cast

from berth.builder.cache import BuildCache
from berth.builder.host import LayerWriter, OutputFn, RunSpec
from berth.builder.imagefs import ImageFS
from berth.engine import Job
from berth.errors import BerthError, NotFound
from berth.graph import reference
from berth.graph.derive import derive_image
from berth.registry.auth import Credentials

if TYPE_CHECKING:
    from berth.daemon.daemon import Daemon

log = logging.getLogger("berth.daemon")
T = TypeVar("T")
PIPE_BUFFER = 1 << 20


def build_cache(d: Daemon) -> BuildCache:
    if d.build_cache is None:
        d.build_cache = BuildCache(d.cfg.data_root / "berth.db")
    return d.build_cache


class _Collect:
    """A job's stdout kept in memory (the wait job's one JSON line)."""

    def __init__(self) -> None:
        self.data = b""

    async def write(self, data: bytes) -> None:
        self.data += data


class _Forward:
    def __init__(self, fn: Callable[[bytes], Awaitable[None]]) -> None:
        self.fn = fn

    async def write(self, data: bytes) -> None:
        if data:
            await self.fn(data)


class _StepOutput:
    """An attached stream of a RUN container: its output goes into the build's stream."""

    def __init__(self, output: OutputFn) -> None:
        self.output = output
        self.dead = False

    async def send(self, stream: int, data: bytes) -> None:
        if self.dead:
            return
        try:
            await self.output(stream, data)
        except (ConnectionError, OSError, RuntimeError):
            self.dead = True  # the client went away; the build notices at its next write


class _Checked:
    """The read end of a layer pipe: its end is an error when the writer failed."""

    def __init__(self, raw: BinaryIO, failed: list[BaseException]) -> None:
        self.raw = raw
        self.failed = failed

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        if not data and self.failed:
            raise OSError("the layer's writer failed")
        return data


class DaemonHost:
    """:class:`berth.builder.host.BuildHost` over the daemon's jobs and the graph's stores: the
    image store (names, configs), the layer store (an image's layer dirs, a step's new layer)
    and the content store (a step's config)."""

    def __init__(self, d: Daemon, build_job: Job) -> None:
        self.d = d
        self.job = build_job
        self.cache = build_cache(d)
        self.tmp_dir = d.cfg.data_root / "tmp"
        self.images, self.layers, self.content = d.graph.images, d.graph.layers, d.graph.content

    async def find_image(self, ref: str) -> str | None:
        try:
            return await asyncio.to_thread(self.images.resolve, ref)
        except NotFound:
            return None

    async def pull(self, ref: str, platform: str, auth: dict[str, Any],
                   progress: Callable[[bytes], Awaitable[None]]) -> str:
        parsed = reference.parse(ref)
        if not parsed.tag and not parsed.digest:
            parsed = parsed.with_default_tag()
        creds = _credentials(auth, parsed.domain)
        await self.d.engine.job(
            "image.pull", stdout=_Forward(progress), image=parsed.name, tag=parsed.digest or parsed.tag,
            platform=platform, auth=creds,
        )
        return await asyncio.to_thread(self.images.resolve, parsed.string())

    async def image_config(self, image_id: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.images.config_doc, image_id)

    async def image_fs(self, image_id: str) -> ImageFS:
        def dirs() -> list[Path]:
            return self.layers.dirs(self.images.get(image_id).top_layer)

        return ImageFS(await asyncio.to_thread(dirs))

    async def image_exists(self, image_id: str) -> bool:
        return await asyncio.to_thread(self.images.find, image_id) is not None

    async def image_parent(self, image_id: str) -> str:
        row = await asyncio.to_thread(self.images.find, image_id)
        return row.parent if row is not None and row.parent else ""

    async def run(self, spec: RunSpec, on_created: Callable[[str], Awaitable[None]], output: OutputFn) -> int:
        engine = self.d.engine
        body = dict(spec.config)
        body["HostConfig"] = dict(spec.host_config)
        created = await engine.job("container.create", config=body, name="", api_version=(1, 45))
        cid = created["Id"]
        await on_created(cid)
        attached = _StepOutput(output)
        self.d.session(cid).attachers.add(attached)  # type: ignore[arg-type]
        # A start is not cut in the middle (its monitor and record must agree): when the client
        # goes away meanwhile, it finishes, and then the container is killed and removed.
        start = asyncio.ensure_future(engine.job("container.start", id=cid))
        try:
            await asyncio.shield(start)
            result = _Collect()
            await engine.job("container.wait", id=cid, condition="not-running", stdout=result)
        except asyncio.CancelledError:
            with contextlib.suppress(BerthError, OSError):
                await start  # a start failure is moot: the container goes anyway
            await self._kill_and_remove(cid)
            raise
        finally:
            session = self.d.session(cid)
            if session is not None:
                session.attachers.discard(attached)
        if attached.dead:
            raise ConnectionResetError("the client went away during the build")
        lines = [line for line in result.data.splitlines() if line.strip()]
        return int(json.loads(lines[-1])["StatusCode"])

    async def _kill_and_remove(self, cid: str) -> None:
        try:
            await self.d.engine.job("container.remove", id=cid, force=True, volumes=True)
        except BerthError as exc:
            log.warning("remove build container %s: %s", cid[:12], exc)

    async def commit(self, container_id: str, config: dict[str, Any], container_config: dict[str, Any],
                     created_by: str, author: str) -> str:
        result = await self.d.engine.job(
            "image.commit", container=container_id, pause=False, image_config=config, container_config=container_config,
            created_by=created_by, author=author,
        )
        return str(result["Id"])

    async def remove_container(self, container_id: str) -> None:
        await self.d.engine.job("container.remove", id=container_id, force=True, volumes=True)

    async def derive(self, parent: str, layer: LayerWriter | None, config: dict[str, Any],
                     container_config: dict[str, Any], created_by: str, author: str) -> str:
        def apply(layer_stream: BinaryIO | None) -> str:
            return derive_image(self.images, self.layers, self.content, parent, layer_stream, config,
                                container_config, created_by, author)

        if layer is None:
            return await asyncio.to_thread(apply, None)
        # The layer tar goes through a pipe: one thread writes it while another applies it.
        rfd, wfd = os.pipe()
        failed: list[BaseException] = []

        def produce() -> None:
            try:
                with os.fdopen(wfd, "wb", buffering=PIPE_BUFFER) as out:
                    layer(out)
            except BaseException as exc:
                failed.append(exc)  # before the pipe closes: the reader must not see a clean end
                raise

        def consume() -> str:
            with os.fdopen(rfd, "rb", buffering=PIPE_BUFFER) as raw:
                # a reader (all the layer's apply needs), not a whole BinaryIO
                layer_stream = cast(BinaryIO, _Checked(raw, failed))
                return apply(layer_stream)

        produced, consumed = await asyncio.gather(
            asyncio.to_thread(produce), asyncio.to_thread(consume), return_exceptions=True
        )
        if isinstance(produced, BaseException):
            raise produced
        if isinstance(consumed, BaseException):
            raise consumed
        return consumed

    async def tag(self, image_id: str, ref: str) -> str:
        parsed = reference.parse(ref).with_default_tag()
        await self.d.engine.job("image.tag", name=image_id, repo=parsed.name, tag=parsed.tag)
        return parsed.familiar()

    async def step(self, label: str, instruction: str, work: Callable[[], Awaitable[T]]) -> T:
        result: T = await self.d.engine.job(
            "build.step", build=self.job.id, step=label, instruction=instruction, _work=work
        )
        return result


def _credentials(auth: dict[str, Any], domain: str) -> Credentials:
    """The X-Registry-Config entry for ``domain`` (keys may carry a scheme or Docker Hub's v1 URL)."""
    for key, value in auth.items():
        host = key.removeprefix("https://").removeprefix("http://").split("/")[0]
        if host in (domain, "index.docker.io" if domain == "docker.io" else domain) and isinstance(value, dict):
            encoded = json.dumps(value).encode()
            return Credentials.from_header(base64.urlsafe_b64encode(encoded).decode())
    return Credentials()
