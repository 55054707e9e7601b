"""The one place where berth's error classes become HTTP statuses (moby's errdefs → httpstatus).

Bodies are ``{"message": "..."}`` with ``Content-Type: application/json`` exactly: the docker
CLI parses the JSON only when the header is exactly that string.
"""

from __future__ import annotations

import json

from aiohttp import web

from berth import errors


class RequestTooLarge(errors.InvalidParameter):
    """A request body over the limit of its route (HTTP 413; a 400 to code that only knows
    berth's classes)."""


STATUS: dict[type[errors.BerthError], int] = {
    RequestTooLarge: 413,
    errors.NotModified: 304,
    errors.InvalidParameter: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.SystemFailure: 500,
    errors.Unimplemented: 501,
    errors.Unavailable: 503,
}


def status_of(exc: BaseException) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def json_body(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def error_response(status: int, message: str) -> web.Response:
    if status == 304:
        return web.Response(status=304)
    return web.Response(
        status=status,
        body=json_body({"message": message}) + b"\n",
        headers={"Content-Type": "application/json"},
    )
