"""What a route needs from the server, without importing it: the engine, the API version of
the request, and the version constants. Route modules import this; the server imports the
route modules (their ``routes`` tables) and never the other way round."""

from __future__ import annotations

from aiohttp import web

from berth.engine import Engine

API_VERSION = "1.45"
MIN_API_VERSION = "1.24"
MAX_ACCEPTED_VERSION = (1, 99)  # tolerate newer clients' paths rather than answering 400
SERVER = "Berth/0.1.0 (linux)"

ENGINE = web.AppKey("engine", Engine)
API_VERSION_KEY = web.RequestKey("api_version", tuple[int, int])


def parse_version(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


def engine_of(request: web.Request) -> Engine:
    return request.app[ENGINE]


def api_version(request: web.Request) -> tuple[int, int]:
    """The request's ``/vX.Y`` version; the daemon's own for an unversioned path."""
    if API_VERSION_KEY in request:
        return request[API_VERSION_KEY]
    return parse_version(API_VERSION)
