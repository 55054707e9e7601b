"""System routes: ping, version, info, events, and berth's own job table."""

from __future__ import annotations

from aiohttp import web

from berth import jsondoc
from berth.api.context import API_VERSION, MIN_API_VERSION, engine_of
from berth.api.streams import LazyResponseSink, bounded_body, qbool, qfilters, reply
from berth.errors import InvalidParameter
from berth.jobs.system import SystemAuth, SystemDf, SystemEvents, SystemInfo, SystemPing, SystemVersion
from berth.registry.auth import Credentials

PING_HEADERS = {
    "Api-Version": API_VERSION,
    "Builder-Version": "1",
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
    "Swarm": "inactive",
    "Content-Type": "text/plain; charset=utf-8",
}
routes = web.RouteTableDef()


@routes.get("/_ping")
@routes.head("/_ping")
async def ping(request: web.Request) -> web.Response:
    await engine_of(request).job(SystemPing())
    body = b"" if request.method == "HEAD" else b"OK"
    resp = web.Response(body=body, headers=PING_HEADERS)
    if request.method == "HEAD":
        resp.headers["Content-Length"] = "0"
    return resp


@routes.get("/version")
async def version(request: web.Request) -> web.Response:
    info = await engine_of(request).job(SystemVersion())
    info.update(ApiVersion=API_VERSION, MinAPIVersion=MIN_API_VERSION)
    return reply(info)


@routes.get("/info")
async def info(request: web.Request) -> web.Response:
    return reply(await engine_of(request).job(SystemInfo()))


@routes.post("/auth")
async def auth(request: web.Request) -> web.Response:
    """docker login: {"username", "password", "serveraddress"} checked against the registry."""
    doc = jsondoc.loads(await bounded_body(request) or b"{}", "login")
    if not isinstance(doc, dict):
        raise InvalidParameter("login: the body is not a JSON object")
    user, password = doc.get("username"), doc.get("password")
    if not isinstance(user, str) or not isinstance(password, str):
        raise InvalidParameter("login: username and password must be strings")
    address = doc.get("serveraddress")
    server = address if isinstance(address, str) else ""
    creds = Credentials(user, password)
    return reply(await engine_of(request).job(SystemAuth(auth=creds, server=server)))


@routes.get("/berth/v1/jobs")
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


@routes.get("/events")
async def events(request: web.Request) -> web.StreamResponse:
    """Past events since ``since``, then live ones until ``until`` or until the client goes."""
    since, until = _seconds(request, "since"), _seconds(request, "until")
    if since is not None and until is not None and since > until:
        raise InvalidParameter(
            f"`since` time ({request.query['since']}) cannot be after `until` time ({request.query['until']})"
        )
    sink = LazyResponseSink(request)
    await engine_of(request).job(SystemEvents(since=since, until=until, filters=qfilters(request)), stdout=sink)
    return await sink.finish()


DF_TYPES = ("container", "image", "volume", "build-cache")


@routes.get("/system/df")
async def df(request: web.Request) -> web.Response:
    types = tuple(request.query.getall("type", []))
    for kind in types:
        if kind not in DF_TYPES:
            raise InvalidParameter(f"unknown object type: {kind}")
    return reply(await engine_of(request).job(SystemDf(types=types)))
