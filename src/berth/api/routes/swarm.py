"""Swarm and plugin routes. berth has no swarm mode and no plugins: the routes exist so that
clients get dockerd's answers for a node outside a swarm (503) and an empty plugin list, not
``page not found`` (the ``swarm.*`` and ``plugin.*`` jobs say which)."""

from __future__ import annotations

from aiohttp import web

from berth.api.context import engine_of
from berth.api.streams import qfilters, reply
from berth.errors import Unimplemented
from berth.jobs.system import PluginFind, PluginList, SwarmUnavailable

SWARM_OBJECTS = ("nodes", "services", "tasks", "secrets", "configs")
routes = web.RouteTableDef()


async def _unavailable(request: web.Request, action: str = "") -> web.Response:
    await engine_of(request).job(
        SwarmUnavailable(action=action, path=request.path, version=request.query.get("version", ""))
    )
    raise AssertionError("swarm.unavailable always raises")  # pragma: no cover


@routes.get("/swarm")
async def swarm_inspect(request: web.Request) -> web.Response:
    return await _unavailable(request)


def _swarm_action(action: str, method: str = "POST") -> None:
    async def handler(request: web.Request) -> web.Response:
        return await _unavailable(request, action)

    routes.route(method, f"/swarm/{action}")(handler)


for _action in ("init", "join", "leave", "update", "unlock"):
    _swarm_action(_action)
_swarm_action("unlockkey", "GET")


async def _swarm_object(request: web.Request) -> web.Response:
    return await _unavailable(request)


for _kind in SWARM_OBJECTS:
    routes.route("*", f"/{_kind}")(_swarm_object)
    routes.route("*", f"/{_kind}/{{tail:.+}}")(_swarm_object)


@routes.get("/plugins")
async def plugins(request: web.Request) -> web.Response:
    return reply(await engine_of(request).job(PluginList(filters=qfilters(request))))


@routes.get("/plugins/privileges")
@routes.post("/plugins/pull")
@routes.post("/plugins/create")
async def plugin_install(request: web.Request) -> web.Response:
    raise Unimplemented("plugins are not supported by berth: it has no plugin system")


@routes.get("/plugins/{name:.+}/json")
@routes.delete("/plugins/{name:.+}")
@routes.post("/plugins/{name:.+}/{action:enable|disable|push|set|upgrade}")
async def plugin(request: web.Request) -> web.Response:
    await engine_of(request).job(PluginFind(name=request.match_info["name"]))
    raise AssertionError("plugin.find always raises")  # pragma: no cover
