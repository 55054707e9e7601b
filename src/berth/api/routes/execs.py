"""Exec routes: start (hijacked unless detached), inspect and resize of an exec instance."""

from __future__ import annotations

from aiohttp import web

from berth.api.hijack import LazyHijack, hijacked_response
from berth.api.server import API_VERSION, SERVER, api_version, engine_of, route
from berth.api.streams import json_request, qint, reply


@route("POST", "/exec/{id}/start")
async def start(request: web.Request) -> web.StreamResponse:
    body = await json_request(request)
    engine = engine_of(request)
    if body.get("Detach"):
        await engine.job("exec.start", id=request.match_info["id"], detach=True, tty=bool(body.get("Tty")))
        return web.Response(status=200, headers={"Content-Type": "application/json"})
    multiplexed = api_version(request) >= (1, 42) and not body.get("Tty")
    conn = LazyHijack(
        request,
        "application/vnd.docker.multiplexed-stream" if multiplexed else "application/vnd.docker.raw-stream",
        {"Api-Version": API_VERSION, "Docker-Experimental": "false", "Ostype": "linux", "Server": SERVER},
    )
    try:
        await engine.job(
            "exec.start", id=request.match_info["id"], detach=False, tty=bool(body.get("Tty")), stdin=conn, stdout=conn
        )
    finally:
        conn.close()
    return hijacked_response()


@route("GET", "/exec/{id}/json")
async def inspect(request: web.Request) -> web.Response:
    return reply(await engine_of(request).job("exec.inspect", id=request.match_info["id"]))


@route("POST", "/exec/{id}/resize")
async def resize(request: web.Request) -> web.Response:
    await engine_of(request).job(
        "exec.resize", id=request.match_info["id"], h=qint(request, "h", 0), w=qint(request, "w", 0)
    )
    return web.Response(status=200)
