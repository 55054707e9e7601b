"""Volume routes: list, create, inspect, remove, prune; each runs the matching ``volume.*`` job.

Fixed paths (``/volumes/create``, ``/volumes/prune``) are registered before ``/volumes/{name}``.
"""

from __future__ import annotations

from aiohttp import web

from berth.api.context import api_version, engine_of
from berth.api.routes.bodies import required_json
from berth.api.streams import qbool, qfilters, reply
from berth.jobs import volumes as jobs

routes = web.RouteTableDef()


@routes.get("/volumes")
async def list_(request: web.Request) -> web.Response:
    return reply(await engine_of(request).job(jobs.VolumeList(filters=qfilters(request))))


@routes.post("/volumes/create")
async def create(request: web.Request) -> web.Response:
    body = await required_json(request)
    return reply(await engine_of(request).job(jobs.VolumeCreate(body=body)), status=201)


@routes.post("/volumes/prune")
async def prune(request: web.Request) -> web.Response:
    result = await engine_of(request).job(jobs.VolumePrune(filters=qfilters(request), api_version=api_version(request)))
    return reply(result)


@routes.get("/volumes/{name}")
async def inspect(request: web.Request) -> web.Response:
    return reply(await engine_of(request).job(jobs.VolumeInspect(name=request.match_info["name"])))


@routes.delete("/volumes/{name}")
async def remove(request: web.Request) -> web.Response:
    await engine_of(request).job(jobs.VolumeRemove(name=request.match_info["name"], force=qbool(request, "force")))
    return web.Response(status=204)
