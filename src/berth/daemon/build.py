"""Build jobs: ``image.build`` (``POST /build``), ``build.step``, ``build.prune``.

``image.build`` spools the request body (the context tar) under ``<data_root>/tmp``, finds the
Dockerfile in it (``dockerfile=`` names it; a path that climbs out of the context is refused),
drops the Dockerfile and ``.dockerignore`` when ``.dockerignore`` excludes them (what dockerd
does; the client applies the other patterns), parses it, and runs :class:`berth.builder.build.Build`
with :class:`DaemonHost`, which turns every step into the jobs the engine already has:
``container.create``/``start``/``wait``, ``image.commit``, ``container.remove``,
``image.pull``, ``image.tag``. Each step is itself a ``build.step`` job, so ``berth jobs``
shows a build's steps while it runs.

Errors before the stream begins (a context that is not a tar, a Dockerfile syntax error, an
unknown target) are ordinary error responses (400); later ones are the stream's last message
(``errorDetail``, with the RUN's exit code), as dockerd does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from berth.builder.build import Build
from berth.builder.cache import BuildCache
from berth.builder.context import BuildContext, ChunkQueue, clean_source
from berth.builder.dispatch import StepError
from berth.builder.host import LayerWriter, OutputFn, RunSpec
from berth.builder.imagefs import ImageFS
from berth.builder.output import Output
from berth.builder.parser import parse as parse_dockerfile
from berth.builder.request import BuildRequest
from berth.dockerignore import Matcher, read_patterns
from berth.engine import Job
from berth.errors import BerthError, InvalidParameter, NotFound
from berth.graph import reference
from berth.registry.auth import Credentials

if TYPE_CHECKING:
    from berth.daemon.daemon import Daemon

log = logging.getLogger("berth.daemon")
T = TypeVar("T")
MAX_DOCKERIGNORE = 1 << 20
PIPE_BUFFER = 1 << 20


def build_cache(d: Daemon) -> BuildCache:
    cache: BuildCache | None = getattr(d, "build_cache", None)
    if cache is None:
        cache = BuildCache(d.cfg.data_root / "berth.db")
        d.build_cache = cache  # type: ignore[attr-defined]
    return cache


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
    """:class:`berth.builder.host.BuildHost` over the daemon's jobs and graph."""

    def __init__(self, d: Daemon, build_job: Job) -> None:
        self.d = d
        self.job = build_job
        self.cache = build_cache(d)
        self.tmp_dir = d.cfg.data_root / "tmp"

    async def find_image(self, ref: str) -> str | None:
        try:
            return str(await asyncio.to_thread(self.d.graph.resolve, ref))
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
        return str(await asyncio.to_thread(self.d.graph.resolve, parsed.string()))

    async def image_config(self, image_id: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.d.graph.image_config, image_id)  # type: ignore[no-any-return]

    async def image_fs(self, image_id: str) -> ImageFS:
        return ImageFS(await asyncio.to_thread(self.d.graph.image_layer_dirs, image_id))

    async def image_exists(self, image_id: str) -> bool:
        return await asyncio.to_thread(self.d.graph.db.image, image_id) is not None

    async def run(self, spec: RunSpec, on_created: Callable[[str], Awaitable[None]], output: OutputFn) -> int:
        engine = self.d.engine
        body = dict(spec.config)
        body["HostConfig"] = dict(spec.host_config)
        created = await engine.job("container.create", config=body, name="", api_version=(1, 45))
        cid = created["Id"]
        await on_created(cid)
        attached = _StepOutput(output)
        self.d.session(cid).attachers.add(attached)  # type: ignore[arg-type]
        try:
            await engine.job("container.start", id=cid)
            result = _Collect()
            await engine.job("container.wait", id=cid, condition="not-running", stdout=result)
        except asyncio.CancelledError:
            await self._kill_and_remove(cid)
            raise
        finally:
            session = self.d.sessions.get(cid)
            if session is not None:
                session.attachers.discard(attached)  # type: ignore[arg-type]
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
            "image.commit", container=container_id, pause=False, config=config, container_config=container_config,
            created_by=created_by, author=author,
        )
        return str(result["Id"])

    async def remove_container(self, container_id: str) -> None:
        await self.d.engine.job("container.remove", id=container_id, force=True, volumes=True)

    async def derive(self, parent: str, layer: LayerWriter | None, config: dict[str, Any],
                     container_config: dict[str, Any], created_by: str, author: str) -> str:
        graph = self.d.graph
        if layer is None:
            return str(await asyncio.to_thread(graph.derive, parent, None, config, container_config, created_by,
                                               author))
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
                return str(graph.derive(parent, _Checked(raw, failed), config, container_config, created_by,
                                        author))

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
            import base64

            return Credentials.from_header(base64.urlsafe_b64encode(encoded).decode())
    return Credentials()


async def _receive(d: Daemon, job: Job) -> BuildContext:
    """The context, indexed and hashed by a thread while the body is still arriving."""
    assert job.stdin is not None
    chunks = ChunkQueue()
    loader = asyncio.ensure_future(asyncio.to_thread(BuildContext.load, chunks, d.cfg.data_root / "tmp"))  # type: ignore[arg-type]
    try:
        while not loader.done() and (chunk := await job.stdin.read()):
            try:
                chunks.put(chunk, block=False)
            except queue.Full:
                await asyncio.to_thread(chunks.put, chunk)
        if loader.done():
            chunks.abandon()  # it failed (not a tar): the rest of the body is not needed
        else:
            await asyncio.to_thread(chunks.put, None)
        return await loader
    except BaseException:
        chunks.abandon()
        if not loader.done():
            try:
                ctx = await loader
            except (BerthError, OSError, ValueError):
                pass  # the loader's own failure; the one being raised says what went wrong
            else:
                await asyncio.to_thread(ctx.close)
        raise


def _prepare(ctx: BuildContext, request: BuildRequest) -> str:
    """Find and read the Dockerfile; apply what .dockerignore says of it and of itself."""
    name = clean_source(request.dockerfile or "Dockerfile") or "Dockerfile"
    entry = ctx.lookup(name)
    if entry is None and not request.dockerfile:
        entry = ctx.lookup("dockerfile")
    if entry is None or entry.kind != "file":
        raise InvalidParameter(f"Cannot locate specified Dockerfile: {request.dockerfile or 'Dockerfile'}")
    text = ctx.read(entry, 4 << 20).decode("utf-8", "replace")
    ignore = ctx.read_text(".dockerignore", MAX_DOCKERIGNORE)
    if ignore:
        try:
            matcher = Matcher(read_patterns(ignore))
        except ValueError as exc:
            raise InvalidParameter(f"invalid .dockerignore: {exc}") from None
        for path in (".dockerignore", entry.path):
            if matcher.excluded(path):
                ctx.remove(path)
    return text


async def build_job(d: Daemon, job: Job) -> None:
    request: BuildRequest = job.args["request"]
    assert job.stdout is not None
    out = Output(job.stdout, request.quiet)
    ctx = await _receive(d, job)
    build: Build | None = None
    try:
        text = await asyncio.to_thread(_prepare, ctx, request)
        dockerfile = parse_dockerfile(text)
        host = DaemonHost(d, job)
        build = Build(request, dockerfile, ctx, host, out)
        try:
            image_id = await build.run()
            for tag in request.tags:
                await host.tag(image_id, tag)
        except BaseException:
            await build.cleanup(failed=True)
            raise
        if request.quiet:
            await out.done_quiet(image_id)
        else:
            await out.stream(f"Successfully built {image_id.removeprefix('sha256:')[:12]}\n")
            for tag in request.tags:
                await out.stream(f"Successfully tagged {reference.parse(tag).with_default_tag().familiar()}\n")
    except (ConnectionError, asyncio.CancelledError):
        if build is not None:
            await _abandon(d, build)
        raise
    except BerthError as exc:
        if not (out.started or out.held):
            raise  # nothing sent yet: an ordinary error response
        code = exc.code if isinstance(exc, StepError) else None
        await out.error(exc.message, code)
    finally:
        await asyncio.to_thread(ctx.close)


async def _abandon(d: Daemon, build: Build) -> None:
    """The client went away: remove what the build left running."""
    for cid in list(build.containers):
        try:
            await d.engine.job("container.remove", id=cid, force=True, volumes=True)
        except NotFound:
            continue  # its RUN step removed it when it was cancelled
        except BerthError as exc:
            log.warning("remove container %s of an abandoned build: %s", cid[:12], exc)


async def step_job(d: Daemon, job: Job) -> Any:
    work: Callable[[], Awaitable[Any]] = job.args["_work"]
    return await work()


async def prune_job(d: Daemon, job: Job) -> dict[str, Any]:
    """``POST /build/prune``: forget cache entries (their images stay; ``image prune`` takes those)."""
    cache = build_cache(d)
    keys = await asyncio.to_thread(cache.keys)
    for key in keys:
        await asyncio.to_thread(cache.forget, key)
    return {"CachesDeleted": keys or None, "SpaceReclaimed": 0}


HANDLERS = {
    "image.build": build_job,
    "build.step": step_job,
    "build.prune": prune_job,
}
