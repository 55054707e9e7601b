"""Image routes: import (``POST /images/create?fromSrc=-``), list, inspect, tag, remove.

Image names may contain ``/`` and ``:``, so the name routes take the whole remainder
(``/images/{name:.*}/json``), registered after the fixed paths.
"""

from __future__ import annotations

from aiohttp import web

from berth.api.server import api_version, engine_of, route
from berth.api.streams import LazyResponseSink, RequestSource, qbool, qfilters, reply
from berth.errors import InvalidParameter


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
        await engine_of(request).job(
            "image.pull", stdout=sink, image=query["fromImage"], tag=query.get("tag", ""),
            platform=query.get("platform", ""),
        )
        return await sink.finish()
    raise InvalidParameter("POST /images/create needs fromSrc or fromImage")


@route("GET", "/images/get")
async def save_many(request: web.Request) -> web.StreamResponse:
    sink = LazyResponseSink(request, "application/x-tar")
    await engine_of(request).job("image.save", names=request.query.getall("names", []), stdout=sink)
    return await sink.finish()


@route("POST", "/images/load")
async def load(request: web.Request) -> web.StreamResponse:
    sink = LazyResponseSink(request)
    await engine_of(request).job("image.load", stdin=RequestSource(request), stdout=sink, quiet=qbool(request, "quiet"))
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
    await engine_of(request).job("image.save", names=[request.match_info["name"]], stdout=sink)
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
