"""Volume routes: list, create, inspect, remove, prune; each runs the matching ``volume.*`` job.

Fixed paths (``/volumes/create``, ``/volumes/prune``) are registered before ``/volumes/{name}``.
"""

from __future__ import annotations

from aiohttp import web

from berth.api.routes.bodies import required_json
from berth.api.server import api_version, engine_of, route
from berth.api.streams import qbool, qfilters, reply


@route("GET", "/volumes")
async def list_(request: web.Request) -> web.Response:
    return reply(await engine_of(request).job("volume.list", filters=qfilters(request)))


@route("POST", "/volumes/create")
async def create(request: web.Request) -> web.Response:
    body = await required_json(request)
    return reply(await engine_of(request).job("volume.create", body=body), status=201)


@route("POST", "/volumes/prune")
async def prune(request: web.Request) -> web.Response:
    result = await engine_of(request).job("volume.prune", filters=qfilters(request), api_version=api_version(request))
    return reply(result)


@route("GET", "/volumes/{name}")
async def inspect(request: web.Request) -> web.Response:
    return reply(await engine_of(request).job("volume.inspect", name=request.match_info["name"]))


@route("DELETE", "/volumes/{name}")
async def remove(request: web.Request) -> web.Response:
    await engine_of(request).job("volume.remove", name=request.match_info["name"], force=qbool(request, "force"))
    return web.Response(status=204)
