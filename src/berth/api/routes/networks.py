"""Network routes: list, inspect, create, remove, prune, connect, disconnect (``network.*`` jobs).

Fixed paths (``/networks/create``, ``/networks/prune``) are POSTs and ``/networks/{id}`` is a
GET or DELETE, so the order of registration does not matter here.
"""

from __future__ import annotations

from aiohttp import web

from berth.api.context import engine_of
from berth.api.routes.bodies import required_json
from berth.api.streams import json_request, qfilters, reply
from berth.jobs import networks as jobs

routes = web.RouteTableDef()


@routes.get("/networks")
async def list_(request: web.Request) -> web.Response:
    return reply(await engine_of(request).job(jobs.NetworkList(filters=qfilters(request))))


@routes.post("/networks/create")
async def create(request: web.Request) -> web.Response:
    body = await required_json(request)
    return reply(await engine_of(request).job(jobs.NetworkCreate(body=body)), status=201)


@routes.post("/networks/prune")
async def prune(request: web.Request) -> web.Response:
    return reply(await engine_of(request).job(jobs.NetworkPrune(filters=qfilters(request))))


@routes.get("/networks/{id}")
async def inspect(request: web.Request) -> web.Response:
    result = await engine_of(request).job(
        jobs.NetworkInspect(id=request.match_info["id"], scope=request.query.get("scope", ""))
    )
    return reply(result)


@routes.delete("/networks/{id}")
async def remove(request: web.Request) -> web.Response:
    await engine_of(request).job(jobs.NetworkRemove(id=request.match_info["id"]))
    return web.Response(status=204)


@routes.post("/networks/{id}/connect")
async def connect(request: web.Request) -> web.Response:
    body = await json_request(request)
    await engine_of(request).job(jobs.NetworkConnect(id=request.match_info["id"], body=body, connect=True))
    return web.Response(status=200)


@routes.post("/networks/{id}/disconnect")
async def disconnect(request: web.Request) -> web.Response:
    body = await json_request(request)
    await engine_of(request).job(jobs.NetworkConnect(id=request.match_info["id"], body=body, connect=False))
    return web.Response(status=200)
