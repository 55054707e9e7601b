"""Image routes: import (``POST /images/create?fromSrc=-``), list, inspect, tag, remove.

Image names may contain ``/`` and ``:``, so the name routes take the whole remainder
(``/images/{name:.*}/json``), registered after the fixed paths.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable

from aiohttp import web

from berth.api.errors import json_body
from berth.api.server import api_version, engine_of, route
from berth.api.streams import LazyResponseSink, RequestSource, qbool, qfilters, reply
from berth.errors import BerthError, InvalidParameter
from berth.registry.auth import Credentials

log = logging.getLogger("berth.api")


@route("POST", "/images/create")
async def create(request: web.Request) -> web.StreamResponse:
    query = request.query
    if query.get("fromSrc"):
        if query["fromSrc"] != "-":
            raise InvalidParameter("importing from a URL is not supported by berth: send the tar as the body (fromSrc=-)")
        repo = query.get("repo", "")
        tag = query.get("tag", "")
        sink = LazyResponseSink(request)
        await engine_of(request).job(
            "image.import",
            stdin=RequestSource(request),
            stdout=sink,
            repo=f"{repo}:{tag}" if repo and tag else repo,
            changes=query.getall("changes", []),
            message=query.get("message", ""),
        )
        return await sink.finish()
    if query.get("fromImage"):
        sink = LazyResponseSink(request)
        await _streamed(sink, engine_of(request).job(
            "image.pull", stdout=sink, image=query["fromImage"], tag=query.get("tag", ""),
            platform=query.get("platform", ""), auth=registry_auth(request),
        ))
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


@route("GET", "/images/search")
async def search(request: web.Request) -> web.Response:
    term = request.query.get("term", "")
    if not term:
        raise InvalidParameter("search: the term parameter is required")
    try:
        limit = int(request.query.get("limit") or 25)
    except ValueError:
        raise InvalidParameter(f"invalid limit {request.query.get('limit')!r}") from None
    return reply(await engine_of(request).job(
        "image.search", term=term, limit=limit, filters=qfilters(request), auth=registry_auth(request)))


@route("POST", "/images/{name:.*}/push")
async def push(request: web.Request) -> web.StreamResponse:
    sink = LazyResponseSink(request)
    await _streamed(sink, engine_of(request).job(
        "image.push", stdout=sink, name=request.match_info["name"], tag=request.query.get("tag", ""),
        auth=registry_auth(request),
    ))
    return await sink.finish()


def _save_format(request: web.Request) -> str:
    """berth's extension: ``format=oci`` writes an OCI image layout that is also a docker-archive."""
    fmt = request.query.get("format", "docker")
    if fmt not in ("docker", "oci"):
        raise InvalidParameter(f"invalid save format {fmt[:40]!r}: docker or oci")
    return fmt


@route("GET", "/images/get")
async def save_many(request: web.Request) -> web.StreamResponse:
    sink = LazyResponseSink(request, "application/x-tar")
    await engine_of(request).job("image.save", names=request.query.getall("names", []), stdout=sink,
                                 format=_save_format(request))
    return await sink.finish()


@route("POST", "/images/load")
async def load(request: web.Request) -> web.StreamResponse:
    sink = LazyResponseSink(request)
    try:
        await engine_of(request).job(
            "image.load", stdin=RequestSource(request), stdout=sink, quiet=qbool(request, "quiet")
        )
    except BerthError as exc:
        # dockerd answers 200 and puts a failed load into the JSON stream; the CLI prints the
        # message and exits 1
        await sink.write(json_body({"errorDetail": {"message": exc.message}, "error": exc.message}) + b"\r\n")
    return await sink.finish()


@route("POST", "/images/prune")
async def prune(request: web.Request) -> web.Response:
    return reply(await engine_of(request).job("image.prune", filters=qfilters(request)))


@route("GET", "/images/json")
async def list_(request: web.Request) -> web.Response:
    result = await engine_of(request).job(
        "image.list", all=qbool(request, "all"), filters=qfilters(request), digests=qbool(request, "digests"),
        api_version=api_version(request),
    )
    return reply(result)


@route("GET", "/images/{name:.*}/json")
async def inspect(request: web.Request) -> web.Response:
    return reply(await engine_of(request).job("image.inspect", name=request.match_info["name"], api_version=api_version(request)))


@route("GET", "/images/{name:.*}/history")
async def history(request: web.Request) -> web.Response:
    return reply(await engine_of(request).job("image.history", name=request.match_info["name"]))


@route("GET", "/images/{name:.*}/get")
async def save_one(request: web.Request) -> web.StreamResponse:
    sink = LazyResponseSink(request, "application/x-tar")
    await engine_of(request).job("image.save", names=[request.match_info["name"]], stdout=sink,
                                 format=_save_format(request))
    return await sink.finish()


@route("POST", "/images/{name:.*}/tag")
async def tag(request: web.Request) -> web.Response:
    await engine_of(request).job(
        "image.tag", name=request.match_info["name"], repo=request.query.get("repo", ""), tag=request.query.get("tag", "")
    )
    return web.Response(status=201)


@route("DELETE", "/images/{name:.*}")
async def remove(request: web.Request) -> web.Response:
    result = await engine_of(request).job(
        "image.remove", name=request.match_info["name"], force=qbool(request, "force"), noprune=qbool(request, "noprune")
    )
    return reply(result)
