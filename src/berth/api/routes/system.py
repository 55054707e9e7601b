"""System routes: ping, version, info, events, and berth's own job table."""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from berth.api.server import API_VERSION, MIN_API_VERSION, engine_of, route
from berth.api.streams import LazyResponseSink, qbool, qfilters, reply
from berth.engine.events import matches
from berth.errors import InvalidParameter

PING_HEADERS = {
    "Api-Version": API_VERSION,
    "Builder-Version": "1",
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
    "Swarm": "inactive",
    "Content-Type": "text/plain; charset=utf-8",
}


@route("GET", "/_ping")
@route("HEAD", "/_ping")
async def ping(request: web.Request) -> web.Response:
    await engine_of(request).job("system.ping")
    body = b"" if request.method == "HEAD" else b"OK"
    resp = web.Response(body=body, headers=PING_HEADERS)
    if request.method == "HEAD":
        resp.headers["Content-Length"] = "0"
    return resp


@route("GET", "/version")
async def version(request: web.Request) -> web.Response:
    info = await engine_of(request).job("system.version")
    info.update(ApiVersion=API_VERSION, MinAPIVersion=MIN_API_VERSION)
    return reply(info)


@route("GET", "/info")
async def info(request: web.Request) -> web.Response:
    return reply(await engine_of(request).job("system.info"))


@route("GET", "/berth/v1/jobs")
async def jobs(request: web.Request) -> web.Response:
    engine = engine_of(request)
    return reply([j.summary() for j in engine.jobs(all=qbool(request, "all"))])


def _parse_time(text: str, now: float) -> float | None:
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise InvalidParameter(f"invalid timestamp {text!r}") from None


@route("GET", "/events")
async def events(request: web.Request) -> web.StreamResponse:
    """Past events since ``since`` then live ones until ``until`` (or until the client goes)."""
    engine = engine_of(request)
    now = time.time()
    since = _parse_time(request.query.get("since", ""), now)
    until = _parse_time(request.query.get("until", ""), now)
    filters = qfilters(request)
    queue = engine.events.subscribe()
    sink = LazyResponseSink(request)
    try:
        await engine.job("system.events", stdout=sink)
        if since is not None:
            for event in list(engine.events.history):
                if event["timeNano"] / 1e9 >= since and (until is None or event["timeNano"] / 1e9 <= until):
                    if matches(event, filters):
                        await sink.write(json.dumps(event).encode() + b"\n")
        while until is None or time.time() < until:
            timeout = None if until is None else max(0.0, until - time.time())
            try:
                event = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                break
            if matches(event, filters):
                await sink.write(json.dumps(event).encode() + b"\n")
    finally:
        engine.events.unsubscribe(queue)
    return await sink.finish()
