"""Container routes: each parses the request into a ``container.*`` job request and runs it."""

from __future__ import annotations

from aiohttp import web

from berth.api.context import api_version, engine_of
from berth.api.hijack import LazyHijack, hijacked_response
from berth.api.streams import LazyResponseSink, json_request, qbool, qfilters, qint, reply
from berth.engine import Request
from berth.errors import InvalidParameter, NotModified
from berth.jobs import containers as jobs
from berth.steptrace import mark

routes = web.RouteTableDef()


def _stream_type(request: web.Request) -> str:
    # API ≥ 1.42 names the multiplexed stream; the handler switches to raw-stream for a TTY.
    if api_version(request) >= (1, 42):
        return "application/vnd.docker.multiplexed-stream"
    return "application/vnd.docker.raw-stream"


def _id(request: web.Request) -> str:
    return request.match_info["id"]


@routes.post("/containers/create")
async def create(request: web.Request) -> web.Response:
    body = await json_request(request)
    result = await engine_of(request).job(jobs.ContainerCreate(
        name=request.query.get("name", ""), config=body, api_version=api_version(request),
        platform=request.query.get("platform", ""),
    ))
    return reply(result, status=201)


@routes.get("/containers/json")
async def list_(request: web.Request) -> web.Response:
    result = await engine_of(request).job(jobs.ContainerList(
        all=qbool(request, "all"), limit=qint(request, "limit", -1), size=qbool(request, "size"),
        filters=qfilters(request),
    ))
    return reply(result)


@routes.get("/containers/{id}/json")
async def inspect(request: web.Request) -> web.Response:
    return reply(await engine_of(request).job(jobs.ContainerInspect(id=_id(request), size=qbool(request, "size"))))


async def _no_content(request: web.Request, job: Request[None]) -> web.Response:
    try:
        await engine_of(request).job(job)
    except NotModified:
        return web.Response(status=304)
    return web.Response(status=204)


@routes.post("/containers/{id}/start")
async def start(request: web.Request) -> web.Response:
    mark("d:start-req")
    return await _no_content(request, jobs.ContainerStart(id=_id(request)))


@routes.post("/containers/{id}/stop")
async def stop(request: web.Request) -> web.Response:
    return await _no_content(request, jobs.ContainerStop(
        id=_id(request), timeout=qint(request, "t"), signal=request.query.get("signal", "")))


@routes.post("/containers/{id}/restart")
async def restart(request: web.Request) -> web.Response:
    return await _no_content(request, jobs.ContainerRestart(
        id=_id(request), timeout=qint(request, "t"), signal=request.query.get("signal", "")))


@routes.post("/containers/{id}/kill")
async def kill(request: web.Request) -> web.Response:
    return await _no_content(request, jobs.ContainerKill(id=_id(request), signal=request.query.get("signal", "")))


@routes.post("/containers/{id}/pause")
async def pause(request: web.Request) -> web.Response:
    return await _no_content(request, jobs.ContainerPause(id=_id(request)))


@routes.post("/containers/{id}/unpause")
async def unpause(request: web.Request) -> web.Response:
    return await _no_content(request, jobs.ContainerUnpause(id=_id(request)))


@routes.post("/containers/{id}/rename")
async def rename(request: web.Request) -> web.Response:
    return await _no_content(request, jobs.ContainerRename(id=_id(request), name=request.query.get("name", "")))


@routes.post("/containers/{id}/update")
async def update(request: web.Request) -> web.Response:
    body = await json_request(request)
    return reply(await engine_of(request).job(jobs.ContainerUpdate(id=_id(request), config=body)))


@routes.post("/containers/{id}/resize")
async def resize(request: web.Request) -> web.Response:
    await engine_of(request).job(jobs.ContainerResize(
        id=_id(request), h=qint(request, "h", 0) or 0, w=qint(request, "w", 0) or 0))
    return web.Response(status=200)


@routes.delete("/containers/{id}")
async def remove(request: web.Request) -> web.Response:
    return await _no_content(request, jobs.ContainerRemove(
        id=_id(request), force=qbool(request, "force"), volumes=qbool(request, "v")))


@routes.post("/containers/{id}/wait")
async def wait(request: web.Request) -> web.StreamResponse:
    mark("d:wait")
    condition = request.query.get("condition", "") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise InvalidParameter(f"invalid condition: {condition!r}")
    sink = LazyResponseSink(request)
    await engine_of(request).job(jobs.ContainerWait(id=_id(request), condition=condition), stdout=sink)
    return await sink.finish()


@routes.get("/containers/{id}/logs")
async def logs(request: web.Request) -> web.StreamResponse:
    if not (qbool(request, "stdout") or qbool(request, "stderr")):
        raise InvalidParameter("Bad parameters: you must choose at least one stream")
    sink = LazyResponseSink(request, _stream_type(request))
    await engine_of(request).job(jobs.ContainerLogs(
        id=_id(request),
        follow=qbool(request, "follow"),
        want_stdout=qbool(request, "stdout"),
        want_stderr=qbool(request, "stderr"),
        since=request.query.get("since", ""),
        until=request.query.get("until", ""),
        timestamps=qbool(request, "timestamps"),
        tail=request.query.get("tail", "all"),
    ), stdout=sink)
    return await sink.finish()


@routes.post("/containers/{id}/attach")
async def attach(request: web.Request) -> web.StreamResponse:
    mark("d:attach")
    conn = LazyHijack(request, _stream_type(request))
    try:
        await engine_of(request).job(jobs.ContainerAttach(
            id=_id(request),
            want_stdin=qbool(request, "stdin"),
            want_stdout=qbool(request, "stdout"),
            want_stderr=qbool(request, "stderr"),
            stream=qbool(request, "stream"),
            logs=qbool(request, "logs"),
            detach_keys=request.query.get("detachKeys", ""),
        ), stdin=conn, stdout=conn)
    finally:
        conn.close()
    return hijacked_response()


@routes.get("/containers/{id}/top")
async def top(request: web.Request) -> web.Response:
    return reply(await engine_of(request).job(jobs.ContainerTop(id=_id(request), ps_args=request.query.get("ps_args", ""))))


@routes.post("/containers/{id}/exec")
async def exec_create(request: web.Request) -> web.Response:
    from berth.jobs.execs import ExecCreate

    body = await json_request(request)
    return reply(await engine_of(request).job(ExecCreate(id=_id(request), config=body)), status=201)


@routes.get("/containers/{id}/changes")
async def changes(request: web.Request) -> web.Response:
    return reply(await engine_of(request).job(jobs.ContainerChanges(id=_id(request))))


@routes.get("/containers/{id}/export")
async def export(request: web.Request) -> web.StreamResponse:
    sink = LazyResponseSink(request, "application/x-tar")
    await engine_of(request).job(jobs.ContainerExport(id=_id(request)), stdout=sink)
    return await sink.finish()


@routes.post("/containers/prune")
async def prune(request: web.Request) -> web.Response:
    return reply(await engine_of(request).job(jobs.ContainerPrune(filters=qfilters(request))))


@routes.post("/commit")
async def commit(request: web.Request) -> web.Response:
    body = await json_request(request)
    result = await engine_of(request).job(jobs.ImageCommit(
        container=request.query.get("container", ""),
        repo=request.query.get("repo", ""),
        tag=request.query.get("tag", ""),
        comment=request.query.get("comment", ""),
        author=request.query.get("author", ""),
        changes=request.query.getall("changes", []),
        pause=qbool(request, "pause", True),
        config=body,
    ))
    return reply(result, status=201)


@routes.get("/containers/{id}/stats")
async def stats(request: web.Request) -> web.StreamResponse:
    sink = LazyResponseSink(request)
    await engine_of(request).job(jobs.ContainerStats(
        id=_id(request), stream=qbool(request, "stream", True), one_shot=qbool(request, "one-shot"),
    ), stdout=sink)
    return await sink.finish()
