"""Image routes: import (``POST /images/create?fromSrc=-``), list, inspect, tag, remove.

Image names may contain ``/`` and ``:``, so the name routes take the whole remainder
(``/images/{name:.*}/json``), registered after the fixed paths.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable

from aiohttp import web

from berth.api.context import api_version, engine_of
from berth.api.errors import json_body
from berth.api.streams import LazyResponseSink, RequestSource, qbool, qfilters, reply
from berth.errors import BerthError, InvalidParameter
from berth.jobs import images as jobs
from berth.registry.auth import Credentials

log = logging.getLogger("berth.api")
routes = web.RouteTableDef()


@routes.post("/images/create")
async def create(request: web.Request) -> web.StreamResponse:
    query = request.query
    if query.get("fromSrc"):
        if query["fromSrc"] != "-":
            raise InvalidParameter("importing from a URL is not supported by berth: send the tar as the body (fromSrc=-)")
        repo = query.get("repo", "")
        tag = query.get("tag", "")
        sink = LazyResponseSink(request)
        await engine_of(request).job(
            jobs.ImageImport(
                repo=f"{repo}:{tag}" if repo and tag else repo,
                changes=query.getall("changes", []),
                message=query.get("message", ""),
            ),
            stdin=RequestSource(request),
            stdout=sink,
        )
        return await sink.finish()
    if query.get("fromImage"):
        sink = LazyResponseSink(request)
        await _streamed(sink, engine_of(request).job(jobs.ImagePull(
            image=query["fromImage"], tag=query.get("tag", ""), platform=query.get("platform", ""),
            auth=registry_auth(request),
        ), stdout=sink))
        return await sink.finish()
    raise InvalidParameter("POST /images/create needs fromSrc or fromImage")


async def _streamed(sink: LazyResponseSink, job: Awaitable[object]) -> None:
    """Run a job whose progress streams to ``sink``: an error before the first message is an
    ordinary error response; after it, the stream's last message (as dockerd)."""
    try:
        await job
    except Exception as exc:
        if sink.resp is None:
            raise
        # the response has begun: a second status line would corrupt the chunked stream
        if isinstance(exc, BerthError):
            text = exc.message
        else:
            log.exception("streamed job failed")
            text = f"internal error: {exc}" if str(exc) else f"internal error: {type(exc).__name__}"
        await sink.write(json.dumps({"errorDetail": {"message": text}, "error": text}).encode() + b"\r\n")


def registry_auth(request: web.Request) -> Credentials:
    return Credentials.from_header(request.headers.get("X-Registry-Auth", ""))


@routes.get("/images/search")
async def search(request: web.Request) -> web.Response:
    term = request.query.get("term", "")
    if not term:
        raise InvalidParameter("search: the term parameter is required")
    try:
        limit = int(request.query.get("limit") or 25)
    except ValueError:
        raise InvalidParameter(f"invalid limit {request.query.get('limit')!r}") from None
    return reply(await engine_of(request).job(
        jobs.ImageSearch(term=term, limit=limit, filters=qfilters(request), auth=registry_auth(request))))


@routes.get("/distribution/{name:.*}/json")
async def distribution(request: web.Request) -> web.Response:
    return reply(await engine_of(request).job(
        jobs.DistributionInspect(name=request.match_info["name"], auth=registry_auth(request))))


@routes.post("/images/{name:.*}/push")
async def push(request: web.Request) -> web.StreamResponse:
    sink = LazyResponseSink(request)
    await _streamed(sink, engine_of(request).job(jobs.ImagePush(
        name=request.match_info["name"], tag=request.query.get("tag", ""), auth=registry_auth(request),
    ), stdout=sink))
    return await sink.finish()


def _save_format(request: web.Request) -> str:
    """berth's extension: ``format=oci`` writes an OCI image layout that is also a docker-archive."""
    fmt = request.query.get("format", "docker")
    if fmt not in ("docker", "oci"):
        raise InvalidParameter(f"invalid save format {fmt[:40]!r}: docker or oci")
    return fmt


@routes.get("/images/get")
async def save_many(request: web.Request) -> web.StreamResponse:
    sink = LazyResponseSink(request, "application/x-tar")
    await engine_of(request).job(
        jobs.ImageSave(names=request.query.getall("names", []), format=_save_format(request)), stdout=sink
    )
    return await sink.finish()


@routes.post("/images/load")
async def load(request: web.Request) -> web.StreamResponse:
    sink = LazyResponseSink(request)
    try:
        await engine_of(request).job(
            jobs.ImageLoad(quiet=qbool(request, "quiet")), stdin=RequestSource(request), stdout=sink
        )
    except BerthError as exc:
        # dockerd answers 200 and puts a failed load into the JSON stream; the CLI prints the
        # message and exits 1
        await sink.write(json_body({"errorDetail": {"message": exc.message}, "error": exc.message}) + b"\r\n")
    return await sink.finish()


@routes.post("/images/prune")
async def prune(request: web.Request) -> web.Response:
    return reply(await engine_of(request).job(jobs.ImagePrune(filters=qfilters(request))))


@routes.get("/images/json")
async def list_(request: web.Request) -> web.Response:
    result = await engine_of(request).job(jobs.ImageList(
        all=qbool(request, "all"), filters=qfilters(request), digests=qbool(request, "digests"),
        api_version=api_version(request),
    ))
    return reply(result)


@routes.get("/images/{name:.*}/json")
async def inspect(request: web.Request) -> web.Response:
    return reply(await engine_of(request).job(
        jobs.ImageInspect(name=request.match_info["name"], api_version=api_version(request))))


@routes.get("/images/{name:.*}/history")
async def history(request: web.Request) -> web.Response:
    return reply(await engine_of(request).job(jobs.ImageHistory(name=request.match_info["name"])))


@routes.get("/images/{name:.*}/get")
async def save_one(request: web.Request) -> web.StreamResponse:
    sink = LazyResponseSink(request, "application/x-tar")
    await engine_of(request).job(
        jobs.ImageSave(names=[request.match_info["name"]], format=_save_format(request)), stdout=sink
    )
    return await sink.finish()


@routes.post("/images/{name:.*}/tag")
async def tag(request: web.Request) -> web.Response:
    await engine_of(request).job(jobs.ImageTag(
        name=request.match_info["name"], repo=request.query.get("repo", ""), tag=request.query.get("tag", "")
    ))
    return web.Response(status=201)


@routes.delete("/images/{name:.*}")
async def remove(request: web.Request) -> web.Response:
    result = await engine_of(request).job(jobs.ImageRemove(
        name=request.match_info["name"], force=qbool(request, "force"), noprune=qbool(request, "noprune")
    ))
    return reply(result)
