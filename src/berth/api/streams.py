"""Small helpers shared by the routes: JSON responses, query parsing, streamed bodies.

Docker's conventions: a query boolean is false when empty, ``0``, ``no``, ``false`` or
``none`` (any case); filters come as JSON ``{"k": ["v"]}`` or the old ``{"k": {"v": true}}``.
JSON bodies are bounded (:data:`MAX_JSON_BODY`, a 413 beyond) and parsed by
:func:`berth.jsondoc.loads` (malformed or too deeply nested is a 400).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from berth import jsondoc
from berth.api.errors import RequestTooLarge, json_body
from berth.errors import InvalidParameter

FALSE = {"", "0", "no", "false", "none"}
# A JSON request body (create, exec, update...) is a few KB; image uploads, archives and build
# contexts are streams and have no such limit.
MAX_JSON_BODY = 8 << 20


def reply(obj: object, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=json_body(obj) + b"\n", headers={"Content-Type": "application/json"}
    )


def qbool(request: web.Request, name: str, default: bool = False) -> bool:
    if name not in request.query:
        return default
    return request.query[name].strip().lower() not in FALSE


def qint(request: web.Request, name: str, default: int | None = None) -> int | None:
    raw = request.query.get(name, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidParameter(f"invalid value for {name}: {raw!r} is not an integer") from None


def qfilters(request: web.Request) -> dict[str, list[str]]:
    raw = request.query.get("filters", "")
    if not raw:
        return {}
    data = jsondoc.loads(raw, "invalid filter")
    if not isinstance(data, dict):
        raise InvalidParameter("invalid filter: expected a JSON object")
    out: dict[str, list[str]] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out[key] = [k for k, v in value.items() if v]
        elif isinstance(value, list):
            out[key] = [str(v) for v in value]
        else:
            out[key] = [str(value)]
    return out


_BODY = web.RequestKey("berth_body", bytes)


async def bounded_body(request: web.Request) -> bytes:
    """The body of a JSON route: at most :data:`MAX_JSON_BODY` bytes (413 beyond, and the rest is
    not read); read once, later calls get the same bytes."""
    if _BODY in request:
        return request[_BODY]
    if request.content_length is not None and request.content_length > MAX_JSON_BODY:
        raise RequestTooLarge(_too_large(request))
    raw = bytearray()
    while chunk := await request.content.read(1 << 16):
        raw += chunk
        if len(raw) > MAX_JSON_BODY:
            raise RequestTooLarge(_too_large(request))
    request[_BODY] = bytes(raw)
    return request[_BODY]


async def json_request(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body (:func:`bounded_body`), nested at most
    :data:`berth.jsondoc.MAX_DEPTH` deep; empty or ``null`` is ``{}``."""
    if not request.body_exists:
        return {}
    raw = await bounded_body(request)
    if not raw.strip():
        return {}
    data = jsondoc.loads(raw, "invalid JSON in request body")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidParameter("invalid JSON in request body: expected an object")
    return data


def _too_large(request: web.Request) -> str:
    return (
        f"{request.method} {request.path}: request body over {MAX_JSON_BODY} bytes "
        "(the limit for JSON requests)"
    )


async def chunked_stream(
    request: web.Request, content_type: str = "application/json", headers: dict[str, str] | None = None
) -> web.StreamResponse:
    """Start a chunked response and send its headers at once (waits and streams rely on it)."""
    resp = web.StreamResponse(status=200, headers={"Content-Type": content_type, **(headers or {})})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    flush_headers(resp)
    return resp


def flush_headers(resp: web.StreamResponse) -> None:
    # aiohttp ≥3.10 holds the headers until the first body write; Docker clients block on
    # the headers of wait/attach/events before they go on, so push them out now.
    writer = resp._payload_writer
    if writer is not None and hasattr(writer, "send_headers"):
        writer.send_headers()


class ResponseSink:
    """A job's stdout that writes into a streamed HTTP response."""

    def __init__(self, resp: web.StreamResponse) -> None:
        self.resp = resp

    async def write(self, data: bytes) -> None:
        await self.resp.write(data)


class RequestSource:
    """A job's stdin that reads a (possibly chunked) request body."""

    def __init__(self, request: web.Request) -> None:
        self.request = request

    async def read(self) -> bytes:
        return await self.request.content.readany()


class LazyResponseSink:
    """A job's stdout that starts the HTTP response only when the job first writes.

    A handler can still fail with a normal error response (404, 409...) until it writes;
    ``start(content_type)`` (or the first ``write``, even of ``b""``) sends the headers at
    once, which is what wait, logs and events need.
    """

    def __init__(self, request: web.Request, content_type: str = "application/json") -> None:
        self.request = request
        self.content_type = content_type
        self.resp: web.StreamResponse | None = None

    async def start(self, content_type: str | None = None, headers: dict[str, str] | None = None) -> None:
        if self.resp is None:
            self.resp = await chunked_stream(self.request, content_type or self.content_type, headers)

    async def write(self, data: bytes) -> None:
        await self.start()
        if data:
            assert self.resp is not None
            await self.resp.write(data)

    async def finish(self) -> web.StreamResponse:
        await self.start()
        assert self.resp is not None
        await self.resp.write_eof()
        return self.resp
