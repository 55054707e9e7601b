"""Container routes: each parses the request and runs the matching ``container.*`` job."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from berth.api.hijack import LazyHijack, hijacked_response
from berth.api.server import api_version, engine_of, route
from berth.api.streams import LazyResponseSink, json_request, qbool, qfilters, qint, reply
from berth.errors import InvalidParameter, NotModified


def _stream_type(request: web.Request) -> str:
    # API ≥ 1.42 names the multiplexed stream; the handler switches to raw-stream for a TTY.
    if api_version(request) >= (1, 42):
        return "application/vnd.docker.multiplexed-stream"
    return "application/vnd.docker.raw-stream"


@route("POST", "/containers/create")
async def create(request: web.Request) -> web.Response:
    body = await json_request(request)
    result = await engine_of(request).job(
        "container.create", name=request.query.get("name", ""), config=body, api_version=api_version(request),
        platform=request.query.get("platform", ""),
    )
    return reply(result, status=201)


@route("GET", "/containers/json")
async def list_(request: web.Request) -> web.Response:
    result = await engine_of(request).job(
        "container.list",
        all=qbool(request, "all"),
        limit=qint(request, "limit", -1),
        size=qbool(request, "size"),
        filters=qfilters(request),
    )
    return reply(result)


@route("GET", "/containers/{id}/json")
async def inspect(request: web.Request) -> web.Response:
    result = await engine_of(request).job(
        "container.inspect", id=request.match_info["id"], size=qbool(request, "size")
    )
    return reply(result)


async def _no_content(request: web.Request, job: str, **args: Any) -> web.Response:
    try:
        await engine_of(request).job(job, id=request.match_info["id"], **args)
    except NotModified:
        return web.Response(status=304)
    return web.Response(status=204)


@route("POST", "/containers/{id}/start")
async def start(request: web.Request) -> web.Response:
    return await _no_content(request, "container.start")


@route("POST", "/containers/{id}/stop")
async def stop(request: web.Request) -> web.Response:
    return await _no_content(request, "container.stop", timeout=qint(request, "t"), signal=request.query.get("signal", ""))


@route("POST", "/containers/{id}/restart")
async def restart(request: web.Request) -> web.Response:
    return await _no_content(request, "container.restart", timeout=qint(request, "t"), signal=request.query.get("signal", ""))


@route("POST", "/containers/{id}/kill")
async def kill(request: web.Request) -> web.Response:
    return await _no_content(request, "container.kill", signal=request.query.get("signal", ""))


@route("POST", "/containers/{id}/pause")
async def pause(request: web.Request) -> web.Response:
    return await _no_content(request, "container.pause")


@route("POST", "/containers/{id}/unpause")
async def unpause(request: web.Request) -> web.Response:
    return await _no_content(request, "container.unpause")


@route("POST", "/containers/{id}/rename")
async def rename(request: web.Request) -> web.Response:
    return await _no_content(request, "container.rename", name=request.query.get("name", ""))


@route("POST", "/containers/{id}/update")
async def update(request: web.Request) -> web.Response:
    body = await json_request(request)
    result = await engine_of(request).job("container.update", id=request.match_info["id"], config=body)
    return reply(result)


@route("POST", "/containers/{id}/resize")
async def resize(request: web.Request) -> web.Response:
    await engine_of(request).job(
        "container.resize", id=request.match_info["id"], h=qint(request, "h", 0), w=qint(request, "w", 0)
    )
    return web.Response(status=200)


@route("DELETE", "/containers/{id}")
async def remove(request: web.Request) -> web.Response:
    return await _no_content(
        request, "container.remove", force=qbool(request, "force"), volumes=qbool(request, "v")
    )


@route("POST", "/containers/{id}/wait")
async def wait(request: web.Request) -> web.StreamResponse:
    condition = request.query.get("condition", "") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise InvalidParameter(f"invalid condition: {condition!r}")
    sink = LazyResponseSink(request)
    await engine_of(request).job("container.wait", id=request.match_info["id"], condition=condition, stdout=sink)
    return await sink.finish()


@route("GET", "/containers/{id}/logs")
async def logs(request: web.Request) -> web.StreamResponse:
    if not (qbool(request, "stdout") or qbool(request, "stderr")):
        raise InvalidParameter("Bad parameters: you must choose at least one stream")
    sink = LazyResponseSink(request, _stream_type(request))
    await engine_of(request).job(
        "container.logs",
        id=request.match_info["id"],
        stdout=sink,
        follow=qbool(request, "follow"),
        want_stdout=qbool(request, "stdout"),
        want_stderr=qbool(request, "stderr"),
        since=request.query.get("since", ""),
        until=request.query.get("until", ""),
        timestamps=qbool(request, "timestamps"),
        tail=request.query.get("tail", "all"),
    )
    return await sink.finish()


@route("POST", "/containers/{id}/attach")
async def attach(request: web.Request) -> web.StreamResponse:
    conn = LazyHijack(request, _stream_type(request))
    try:
        await engine_of(request).job(
            "container.attach",
            id=request.match_info["id"],
            stdin=conn,
            stdout=conn,
            want_stdin=qbool(request, "stdin"),
            want_stdout=qbool(request, "stdout"),
            want_stderr=qbool(request, "stderr"),
            stream=qbool(request, "stream"),
            logs=qbool(request, "logs"),
            detach_keys=request.query.get("detachKeys", ""),
        )
    finally:
        conn.close()
    return hijacked_response()


@route("GET", "/containers/{id}/top")
async def top(request: web.Request) -> web.Response:
    result = await engine_of(request).job("container.top", id=request.match_info["id"], ps_args=request.query.get("ps_args", ""))
    return reply(result)


@route("POST", "/containers/{id}/exec")
async def exec_create(request: web.Request) -> web.Response:
    body = await json_request(request)
    result = await engine_of(request).job("exec.create", id=request.match_info["id"], config=body)
    return reply(result, status=201)


@route("GET", "/containers/{id}/changes")
async def changes(request: web.Request) -> web.Response:
    return reply(await engine_of(request).job("container.changes", id=request.match_info["id"]))


@route("GET", "/containers/{id}/export")
async def export(request: web.Request) -> web.StreamResponse:
    sink = LazyResponseSink(request, "application/x-tar")
    await engine_of(request).job("container.export", id=request.match_info["id"], stdout=sink)
    return await sink.finish()


@route("POST", "/containers/prune")
async def prune(request: web.Request) -> web.Response:
    return reply(await engine_of(request).job("container.prune", filters=qfilters(request)))


@route("POST", "/commit")
async def commit(request: web.Request) -> web.Response:
    body = await json_request(request)
    result = await engine_of(request).job(
        "image.commit",
        container=request.query.get("container", ""),
        repo=request.query.get("repo", ""),
        tag=request.query.get("tag", ""),
        comment=request.query.get("comment", ""),
        author=request.query.get("author", ""),
        changes=request.query.getall("changes", []),
        pause=qbool(request, "pause", True),
        config=body,
    )
    return reply(result, status=201)


@route("GET", "/containers/{id}/stats")
async def stats(request: web.Request) -> web.StreamResponse:
    sink = LazyResponseSink(request)
    await engine_of(request).job(
        "container.stats",
        id=request.match_info["id"],
        stdout=sink,
        stream=qbool(request, "stream", True),
        one_shot=qbool(request, "one-shot"),
    )
    return await sink.finish()
