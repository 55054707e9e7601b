"""What a route needs from the server, without importing it: the engine, the API version of
the request, and the version constants. Route modules import this; the server imports the
route modules (their ``routes`` tables) and never the other way round."""

from __future__ import annotations

from aiohttp import web

from berth.api.versions import API_VERSION, MAX_ACCEPTED_VERSION, MIN_API_VERSION, SERVER, parse_version
from berth.engine import Engine

__all__ = ["API_VERSION", "MAX_ACCEPTED_VERSION", "MIN_API_VERSION", "SERVER", "parse_version"]

ENGINE = web.AppKey("engine", Engine)
API_VERSION_KEY = web.RequestKey("api_version", tuple[int, int])


def engine_of(request: web.Request) -> Engine:
    return request.app[ENGINE]


def api_version(request: web.Request) -> tuple[int, int]:
    """The request's ``/vX.Y`` version; the daemon's own for an unversioned path."""
    if API_VERSION_KEY in request:
        return request[API_VERSION_KEY]
    return parse_version(API_VERSION)
