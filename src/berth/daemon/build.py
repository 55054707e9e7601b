"""Build jobs: ``image.build`` (``POST /build``), ``build.step``, ``build.prune``.

``image.build`` spools the request body (the context tar) under ``<data_root>/tmp`` and indexes it
(headers only; files are hashed when a step copies them), finds the Dockerfile in it
(``dockerfile=`` names it; a path that climbs out of the context is refused), drops the Dockerfile
and ``.dockerignore`` when ``.dockerignore`` excludes them (what dockerd does; the client applies
the other patterns), parses it, and runs :class:`berth.builder.build.Build` with
:class:`berth.daemon.buildhost.DaemonHost`, which turns every step into the jobs the engine already
has: ``container.create``/``start``/``wait``, ``image.commit``, ``container.remove``,
``image.pull``, ``image.tag``. Each step is itself a ``build.step`` job, so ``berth jobs`` shows a
build's steps while it runs.

Errors before the stream begins (a context that is not a tar, a Dockerfile syntax error, an
unknown target) are ordinary error responses (400); later ones are the stream's last message
(``errorDetail``, with the RUN's exit code), as dockerd does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from berth.builder.build import Build
from berth.builder.context import BuildContext, clean_source
from berth.builder.output import Output
from berth.builder.parser import parse as parse_dockerfile
from berth.builder.request import BuildRequest
from berth.builder.stage import StepError
from berth.daemon.buildhost import DaemonHost, build_cache
from berth.daemon.handlers import HandlerTable
from berth.dockerignore import Matcher, read_patterns
from berth.engine import Job
from berth.errors import BerthError, InvalidParameter, NotFound
from berth.graph import reference
from berth.jobs import build as jobs
from berth.jobs.results import JSONObject

if TYPE_CHECKING:
    from berth.daemon.daemon import Daemon

log = logging.getLogger("berth.daemon")

handlers = HandlerTable()
T = TypeVar("T")
MAX_DOCKERIGNORE = 1 << 20
SPOOL_BATCH = 1 << 20
PIPE_BUFFER = 1 << 20


async def _receive(d: Daemon, job: Job) -> BuildContext:
    """The context: the body spooled as it arrives, then indexed (in a thread)."""
    source = job.source
    fd, name = tempfile.mkstemp(prefix="context-", suffix=".tar", dir=d.cfg.data_root / "tmp")
    spool = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            pending: list[bytes] = []
            size = 0
            while chunk := await source.read():
                pending.append(chunk)
                size += len(chunk)
                if size >= SPOOL_BATCH:  # file writes go to a thread, a MiB at a time
                    await asyncio.to_thread(f.write, b"".join(pending))
                    pending, size = [], 0
            if pending:
                await asyncio.to_thread(f.write, b"".join(pending))
    except BaseException:
        spool.unlink(missing_ok=True)
        raise
    return await asyncio.to_thread(BuildContext.open, spool)


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


@handlers.on(jobs.ImageBuild)
async def build_job(d: Daemon, req: jobs.ImageBuild, job: Job) -> None:
    request = req.request
    out = Output(job.sink, request.quiet)
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
        # the context goes before the last line: a client may exit (and look) as soon as it reads it
        await asyncio.to_thread(ctx.close)
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
        await asyncio.to_thread(ctx.close)
        await out.error(exc.message, code)
    finally:
        await asyncio.to_thread(ctx.close)  # closing twice is harmless


async def _abandon(d: Daemon, build: Build) -> None:
    """The client went away: remove what the build left running."""
    for cid in list(build.containers):
        try:
            await d.engine.job("container.remove", id=cid, force=True, volumes=True)
        except NotFound:
            continue  # its RUN step removed it when it was cancelled
        except BerthError as exc:
            log.warning("remove container %s of an abandoned build: %s", cid[:12], exc)


@handlers.on(jobs.BuildStep)
async def step_job(d: Daemon, req: jobs.BuildStep, job: Job) -> Any:
    return await req._work()


@handlers.on(jobs.BuildPrune)
async def prune_job(d: Daemon, req: jobs.BuildPrune, job: Job) -> JSONObject:
    """``POST /build/prune``: forget cache entries (their images stay; ``image prune`` takes those)."""
    cache = build_cache(d)
    keys = await asyncio.to_thread(cache.keys)
    for key in keys:
        await asyncio.to_thread(cache.forget, key)
    return {"CachesDeleted": keys or None, "SpaceReclaimed": 0}
