"""docker cp: ``HEAD``, ``GET`` and ``PUT /containers/{id}/archive`` (jobs ``container.archive.*``)."""

from __future__ import annotations

import base64
import json

from aiohttp import web

from berth.api.context import engine_of
from berth.api.streams import LazyResponseSink, RequestSource, qbool
from berth.jobs.archive import ContainerArchiveGet, ContainerArchivePut, ContainerArchiveStat

routes = web.RouteTableDef()


def _path_stat_header(stat: dict[str, object]) -> str:
    return base64.b64encode(json.dumps(stat, separators=(",", ":")).encode()).decode()


@routes.head("/containers/{id}/archive")
async def stat(request: web.Request) -> web.Response:
    result = await engine_of(request).job(
        ContainerArchiveStat(id=request.match_info["id"], path=request.query.get("path", ""))
    )
    return web.Response(status=200, headers={"X-Docker-Container-Path-Stat": _path_stat_header(result)})


@routes.get("/containers/{id}/archive")
async def get(request: web.Request) -> web.StreamResponse:
    sink = LazyResponseSink(request, "application/x-tar")
    await engine_of(request).job(
        ContainerArchiveGet(id=request.match_info["id"], path=request.query.get("path", "")), stdout=sink
    )
    return await sink.finish()


@routes.put("/containers/{id}/archive")
async def put(request: web.Request) -> web.Response:
    await engine_of(request).job(
        ContainerArchivePut(
            id=request.match_info["id"],
            path=request.query.get("path", ""),
            no_overwrite_dir_non_dir=qbool(request, "noOverwriteDirNonDir"),
            copy_uid_gid=qbool(request, "copyUIDGID"),
        ),
        stdin=RequestSource(request),
    )
    return web.Response(status=200)
