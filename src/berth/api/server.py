"""The API server (the seed's Server): an aiohttp app with Docker's routes, on every listener.

Every route exists twice: ``/v{version}/path`` and unversioned ``/path`` (the daemon's own
version). Middlewares check the version, put Docker's informational headers on every answer,
and turn berth's errors into ``{"message": ...}`` bodies (``berth.api.errors``). A route
parses the request, runs a named job on the engine and writes the job's result; it never
calls a handler directly.

Listeners: ``unix://PATH``, ``tcp://HOST:PORT`` (TLS when configured) and ``fd://`` /
``fd://N`` (systemd socket activation: ``LISTEN_FDS`` sockets from fd 3).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from berth import errors
from berth.api.context import (
    API_VERSION,
    API_VERSION_KEY,
    ENGINE,
    MAX_ACCEPTED_VERSION,
    MIN_API_VERSION,
    SERVER,
    api_version,
    engine_of,
    parse_version,
)
from berth.api.early import EarlyListener, check_host
from berth.api.errors import error_response, status_of
from berth.api.hijack import HIJACKED
from berth.engine import Engine

log = logging.getLogger("berth.api")

RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The older way to add a route (``@route(method, path)``), kept while route modules move to
# their own ``routes`` table (an aiohttp RouteTableDef).
ROUTES: list[tuple[str, str, RouteHandler]] = []

__all__ = [
    "API_VERSION", "MIN_API_VERSION", "SERVER", "Server", "TLSOptions", "api_version", "engine_of", "make_app", "route",
]


def route(method: str, path: str) -> Callable[[RouteHandler], RouteHandler]:
    def register(fn: RouteHandler) -> RouteHandler:
        ROUTES.append((method, path, fn))
        return fn

    return register


@web.middleware
async def _middleware(request: web.Request, handler: RouteHandler) -> web.StreamResponse:
    version = request.match_info.get("version")
    if version is not None:
        try:
            parsed = parse_version(version)
        except ValueError:
            return error_response(400, f"invalid API version {version!r}")
        if parsed < parse_version(MIN_API_VERSION):
            return error_response(
                400,
                f"client version {version} is too old. Minimum supported API version is "
                f"{MIN_API_VERSION}, please upgrade your client to a newer version",
            )
        if parsed > MAX_ACCEPTED_VERSION:
            return error_response(
                400, f"client version {version} is too new. Maximum supported API version is {API_VERSION}"
            )
        request[API_VERSION_KEY] = parsed
    try:
        return await handler(request)
    except errors.BerthError as exc:
        return error_response(status_of(exc), exc.message)
    except web.HTTPNotFound:
        return error_response(404, "page not found")
    except web.HTTPMethodNotAllowed:
        return error_response(404, "page not found")
    except ConnectionResetError:
        # The client went away mid-stream (e.g. `run -d` drops its wait): nothing to answer.
        from berth.api.hijack import hijacked_response

        return hijacked_response()
    except Exception as exc:  # the one boundary where unexpected failures become a 500
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, f"{type(exc).__name__}: {exc}")


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("Api-Version", API_VERSION)
    headers.setdefault("Docker-Experimental", "false")
    headers.setdefault("Ostype", "linux")
    headers.setdefault("Server", SERVER)


def route_tables() -> list[web.RouteTableDef]:
    """Every route module's table, in the order their paths must be tried."""
    from berth.api.routes import archive, build, containers, execs, images, networks, swarm, system, volumes

    return [m.routes for m in (archive, build, containers, execs, images, networks, swarm, system, volumes)]


def make_app(engine: Engine) -> web.Application:
    app = web.Application(middlewares=[_middleware], client_max_size=64 * 1024 * 1024)
    app[ENGINE] = engine
    app[HIJACKED] = weakref.WeakSet()
    app.on_response_prepare.append(_on_prepare)
    defs: list[tuple[str, str, RouteHandler]] = []
    for table in route_tables():
        for item in table:
            if not isinstance(item, web.RouteDef) or isinstance(item.handler, type):
                raise TypeError(f"route tables hold plain routes only, not {item!r}")
            defs.append((item.method, item.path, item.handler))
    for method, path, fn in defs + ROUTES:
        app.router.add_route(method, path, fn)
        app.router.add_route(method, "/v{version:[0-9.]+}" + path, fn)
    return app


@dataclass(frozen=True)
class TLSOptions:
    cert: str | None = None
    key: str | None = None
    cacert: str | None = None
    verify: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.cert and self.key)

    def context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert or "", self.key or "")
        if self.verify:
            if not self.cacert:
                raise errors.InvalidParameter("--tlsverify needs --tlscacert")
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(self.cacert)
        return ctx


def systemd_sockets() -> list[socket.socket]:
    """The sockets systemd passed us (LISTEN_FDS/LISTEN_PID), fds 3..3+n-1."""
    if os.environ.get("LISTEN_PID") not in (None, str(os.getpid())):
        return []
    count = int(os.environ.get("LISTEN_FDS", "0") or 0)
    return [socket.socket(fileno=fd) for fd in range(3, 3 + count)]


class Server:
    """Serves the app on every ``-H`` address until ``stop()``."""

    def __init__(self, engine: Engine, hosts: list[str], tls: TLSOptions, insecure_tcp: bool = False,
                 early: EarlyListener | None = None) -> None:
        self.engine = engine
        self.early = early  # unix listeners bound (and answering /_ping) before the server was made
        self.app = make_app(engine)
        self.hosts = hosts
        self.tls = tls
        self.insecure_tcp = insecure_tcp
        # handler_cancellation: a wait/logs/events handler ends when its client disconnects.
        self.runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=0.3, handler_cancellation=True
        )
        self._unix_paths: list[Path] = []

    async def start(self) -> None:
        # A route whose job has no handler is a programming error: refuse to serve at all
        # rather than answer its requests with errors (every request type the routes build).
        self.engine.check()
        for host in self.hosts:
            _check_host(host, self.tls, self.insecure_tcp)
        await self.runner.setup()
        adopted, held = self.early.take_over() if self.early is not None else ({}, [])
        for host in self.hosts:
            path = host[len("unix://") :] if host.startswith("unix://") else None
            if path is not None and path in adopted:
                self._unix_paths.append(Path(path))
                await web.SockSite(self.runner, adopted.pop(path)).start()
                continue
            for site in self._sites(host):
                await site.start()
        loop = asyncio.get_running_loop()
        for conn in held:  # requests that came while the daemon was starting, still unread
            assert self.runner.server is not None
            await loop.connect_accepted_socket(self.runner.server, conn)

    def _sites(self, host: str) -> list[web.BaseSite]:
        if host.startswith("unix://"):
            path = Path(host[len("unix://") :])
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_socket():
                path.unlink()
            self._unix_paths.append(path)
            return [_ChmodUnixSite(self.runner, str(path))]
        if host.startswith("tcp://"):
            addr, _, port = host[len("tcp://") :].rpartition(":")
            ctx = self.tls.context() if self.tls.enabled else None
            return [web.TCPSite(self.runner, addr.strip("[]") or "127.0.0.1", int(port or 2375), ssl_context=ctx)]
        if host.startswith("fd://"):
            wanted = host[len("fd://") :]
            socks = systemd_sockets()
            if wanted:
                socks = [s for s in socks if s.fileno() == int(wanted)]
            if not socks:
                raise errors.InvalidParameter(f"listen on {host}: no socket was passed by systemd (LISTEN_FDS)")
            return [web.SockSite(self.runner, s) for s in socks]
        raise errors.InvalidParameter(f"listen on {host}: unsupported address (unix://, tcp://, fd://)")

    async def stop(self) -> None:
        live: weakref.WeakSet[Any] = self.app[HIJACKED]
        for conn in list(live):
            conn.close()
        await self.runner.cleanup()
        for path in self._unix_paths:
            try:
                path.unlink()
            except FileNotFoundError:
                pass


class _ChmodUnixSite(web.UnixSite):
    async def start(self) -> None:
        await super().start()
        os.chmod(self._path, 0o660)


def _check_host(host: str, tls: TLSOptions, insecure_tcp: bool) -> None:
    check_host(host, tls.enabled, insecure_tcp)
