"""Exec routes: start (hijacked unless detached), inspect and resize of an exec instance."""

from __future__ import annotations

from aiohttp import web

from berth.api.context import API_VERSION, SERVER, api_version, engine_of
from berth.api.hijack import LazyHijack, hijacked_response
from berth.api.streams import json_request, qint, reply
from berth.jobs.execs import ExecInspect, ExecResize, ExecStart

routes = web.RouteTableDef()


@routes.post("/exec/{id}/start")
async def start(request: web.Request) -> web.StreamResponse:
    body = await json_request(request)
    engine = engine_of(request)
    if body.get("Detach"):
        await engine.job(ExecStart(id=request.match_info["id"], detach=True, tty=bool(body.get("Tty"))))
        return web.Response(status=200, headers={"Content-Type": "application/json"})
    multiplexed = api_version(request) >= (1, 42) and not body.get("Tty")
    conn = LazyHijack(
        request,
        "application/vnd.docker.multiplexed-stream" if multiplexed else "application/vnd.docker.raw-stream",
        {"Api-Version": API_VERSION, "Docker-Experimental": "false", "Ostype": "linux", "Server": SERVER},
    )
    try:
        await engine.job(
            ExecStart(id=request.match_info["id"], detach=False, tty=bool(body.get("Tty"))), stdin=conn, stdout=conn
        )
    finally:
        conn.close()
    return hijacked_response()


@routes.get("/exec/{id}/json")
async def inspect(request: web.Request) -> web.Response:
    return reply(await engine_of(request).job(ExecInspect(id=request.match_info["id"])))


@routes.post("/exec/{id}/resize")
async def resize(request: web.Request) -> web.Response:
    await engine_of(request).job(
        ExecResize(id=request.match_info["id"], h=qint(request, "h", 0) or 0, w=qint(request, "w", 0) or 0)
    )
    return web.Response(status=200)
