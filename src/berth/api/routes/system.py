"""System routes: ping, version, info, events, and berth's own job table."""

from __future__ import annotations

from aiohttp import web

from berth import jsondoc
from berth.api.server import API_VERSION, MIN_API_VERSION, engine_of, route
from berth.api.streams import LazyResponseSink, bounded_body, qbool, qfilters, reply
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


@route("POST", "/auth")
async def auth(request: web.Request) -> web.Response:
    """docker login: {"username", "password", "serveraddress"} checked against the registry."""
    from berth.registry.auth import Credentials

    doc = jsondoc.loads(await bounded_body(request) or b"{}", "login")
    if not isinstance(doc, dict):
        raise InvalidParameter("login: the body is not a JSON object")
    user, password = doc.get("username"), doc.get("password")
    if not isinstance(user, str) or not isinstance(password, str):
        raise InvalidParameter("login: username and password must be strings")
    server = doc.get("serveraddress") if isinstance(doc.get("serveraddress"), str) else ""
    creds = Credentials(user, password)
    return reply(await engine_of(request).job("system.auth", auth=creds, server=server))


@route("GET", "/berth/v1/jobs")
async def jobs(request: web.Request) -> web.Response:
    engine = engine_of(request)
    return reply([j.summary() for j in engine.jobs(all=qbool(request, "all"))])


def _seconds(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name, "")
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise InvalidParameter(f"invalid value for {name}: {raw!r} is not a Unix timestamp") from None


@route("GET", "/events")
async def events(request: web.Request) -> web.StreamResponse:
    """Past events since ``since``, then live ones until ``until`` or until the client goes."""
    sink = LazyResponseSink(request)
    await engine_of(request).job(
        "system.events", stdout=sink, since=_seconds(request, "since"), until=_seconds(request, "until"),
        filters=qfilters(request),
    )
    return await sink.finish()
