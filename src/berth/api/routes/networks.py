"""Network routes: list, inspect, create, remove, prune, connect, disconnect (``network.*`` jobs).

Fixed paths (``/networks/create``, ``/networks/prune``) are POSTs and ``/networks/{id}`` is a
GET or DELETE, so the order of registration does not matter here.
"""

from __future__ import annotations

from aiohttp import web

from berth.api.routes.bodies import required_json
from berth.api.server import engine_of, route
from berth.api.streams import json_request, qfilters, reply


@route("GET", "/networks")
async def list_(request: web.Request) -> web.Response:
    return reply(await engine_of(request).job("network.list", filters=qfilters(request)))


@route("POST", "/networks/create")
async def create(request: web.Request) -> web.Response:
    body = await required_json(request)
    return reply(await engine_of(request).job("network.create", body=body), status=201)


@route("POST", "/networks/prune")
async def prune(request: web.Request) -> web.Response:
    return reply(await engine_of(request).job("network.prune", filters=qfilters(request)))


@route("GET", "/networks/{id}")
async def inspect(request: web.Request) -> web.Response:
    result = await engine_of(request).job(
        "network.inspect", id=request.match_info["id"], scope=request.query.get("scope", "")
    )
    return reply(result)


@route("DELETE", "/networks/{id}")
async def remove(request: web.Request) -> web.Response:
    await engine_of(request).job("network.remove", id=request.match_info["id"])
    return web.Response(status=204)


@route("POST", "/networks/{id}/connect")
async def connect(request: web.Request) -> web.Response:
    body = await json_request(request)
    await engine_of(request).job("network.connect", id=request.match_info["id"], body=body, connect=True)
    return web.Response(status=200)


@route("POST", "/networks/{id}/disconnect")
async def disconnect(request: web.Request) -> web.Response:
    body = await json_request(request)
    await engine_of(request).job("network.connect", id=request.match_info["id"], body=body, connect=False)
    return web.Response(status=200)
