"""docker cp: ``HEAD``, ``GET`` and ``PUT /containers/{id}/archive`` (jobs ``container.archive.*``)."""

from __future__ import annotations

import base64
import json

from aiohttp import web

from berth.api.server import engine_of, route
from berth.api.streams import LazyResponseSink, RequestSource, qbool


def _path_stat_header(stat: dict[str, object]) -> str:
    return base64.b64encode(json.dumps(stat, separators=(",", ":")).encode()).decode()


@route("HEAD", "/containers/{id}/archive")
async def stat(request: web.Request) -> web.Response:
    result = await engine_of(request).job(
        "container.archive.stat", id=request.match_info["id"], path=request.query.get("path", "")
    )
    return web.Response(status=200, headers={"X-Docker-Container-Path-Stat": _path_stat_header(result)})


@route("GET", "/containers/{id}/archive")
async def get(request: web.Request) -> web.StreamResponse:
    sink = LazyResponseSink(request, "application/x-tar")
    await engine_of(request).job(
        "container.archive.get", id=request.match_info["id"], path=request.query.get("path", ""), stdout=sink
    )
    return await sink.finish()


@route("PUT", "/containers/{id}/archive")
async def put(request: web.Request) -> web.Response:
    await engine_of(request).job(
        "container.archive.put",
        id=request.match_info["id"],
        path=request.query.get("path", ""),
        stdin=RequestSource(request),
        no_overwrite_dir_non_dir=qbool(request, "noOverwriteDirNonDir"),
        copy_uid_gid=qbool(request, "copyUIDGID"),
    )
    return web.Response(status=200)
