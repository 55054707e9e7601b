"""The Docker Engine API client: version negotiation, requests, errors, hijacks.

Model: a ``Client`` talks to one ``Endpoint``. The first versioned call pings (``HEAD /_ping``,
falling back to ``GET``), takes ``min(client max, Api-Version)`` (1.24 when the header is
missing; ``BERTH_API_VERSION`` turns negotiation off) and prefixes every path with
``/v{version}``. Connections are kept alive and reused once a response body has been read to its
end; a call made while another response is still open (``run`` waits on one connection while it
starts on another) opens a new connection, and every hijack gets its own. Replies >= 400 raise
the ``berth.errors`` class for the status (see ``berth.client.status``).

    client = Client(parse_host("unix:///run/berth/berth.sock"))
    client.call("GET", "/containers/json", query={"all": "1"})    # -> list of dicts
    stream = client.hijack("/containers/ID/attach", query={"stream": "1", "stdout": "1"})
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from berth.client.http import Connection, Response
from berth.client.status import error_for
from berth.client.transport import Endpoint
from berth.errors import SystemFailure, Unavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from berth.client.rawstream import RawStream

CLIENT_MAX_VERSION = "1.50"
FALLBACK_VERSION = "1.24"

_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def quote(text: str, plus: bool = True) -> str:
    """Percent-encode like Go's url.QueryEscape (space -> '+'), or PathEscape-ish with plus=False."""
    out = []
    for byte in text.encode("utf-8"):
        if byte in _SAFE:
            out.append(chr(byte))
        elif byte == 0x20 and plus:
            out.append("+")
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def encode_query(query: dict[str, Any] | None) -> str:
    """Sorted ``k=v&...`` (as Go's url.Values.Encode); None values are left out, lists repeat."""
    if not query:
        return ""
    parts = []
    for key in sorted(query):
        value = query[key]
        if value is None:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            parts.append(f"{quote(key)}={quote(str(item))}")
    return "&".join(parts)


def version_tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        return (0,)


class Client:
    """A Docker Engine API client for the CLI (synchronous, lazily negotiating)."""

    def __init__(self, endpoint: Endpoint, api_version: str | None = None, timeout: float | None = None):
        self.endpoint = endpoint
        self.timeout = timeout
        self.fixed_version = api_version
        self._version: str | None = api_version
        self.ping_headers: dict[str, str] = {}
        self._conns: list[tuple[Connection, list[Response | None]]] = []

    # -- connections -----------------------------------------------------------------------

    def _connect(self) -> tuple[Connection, list[Response | None]]:
        sock = self.endpoint.connect(self.timeout)
        entry: tuple[Connection, list[Response | None]] = (
            Connection(sock, self.endpoint.host_header),
            [None],
        )
        self._conns.append(entry)
        return entry

    def _idle(self) -> tuple[Connection, list[Response | None]] | None:
        for entry in list(self._conns):
            conn, current = entry
            if conn.closed or not conn.reusable:
                if current[0] is None or current[0].done:
                    conn.close()
                    self._conns.remove(entry)
                continue
            if current[0] is None or current[0].done:
                return entry
        return None

    def close(self) -> None:
        for conn, _ in self._conns:
            conn.close()
        self._conns.clear()

    def _exchange(
        self, method: str, target: str, headers: dict[str, str] | None, body: bytes | Iterable[bytes] | None
    ) -> Response:
        entry = self._idle()
        reused = entry is not None
        if entry is None:
            entry = self._connect()
        conn, current = entry
        try:
            conn.send_request(method, target, headers, body)
            resp = conn.read_response(method)
        except (ConnectionResetError, BrokenPipeError) as exc:
            conn.close()
            if reused and (body is None or isinstance(body, bytes | bytearray)):
                # the daemon closed an idle keep-alive connection; replay once on a fresh one
                conn, current = self._connect()
                try:
                    conn.send_request(method, target, headers, body)
                    resp = conn.read_response(method)
                except OSError as exc2:
                    conn.close()
                    raise self._io_error(method, target, exc2) from exc2
            else:
                raise self._io_error(method, target, exc) from exc
        except OSError as exc:
            conn.close()
            raise self._io_error(method, target, exc) from exc
        current[0] = resp
        return resp

    def _io_error(self, method: str, target: str, exc: OSError) -> Unavailable:
        cause = exc.strerror or str(exc) or type(exc).__name__
        return Unavailable(f"error during connect: {method} {self.endpoint.url}{target}: {cause}")

    # -- negotiation -------------------------------------------------------------------------

    def ping(self) -> dict[str, str]:
        """HEAD /_ping (GET when HEAD is refused); returns the reply headers."""
        resp = self._exchange("HEAD", "/_ping", None, None)
        resp.read()
        if resp.status not in (200, 500):
            resp = self._exchange("GET", "/_ping", None, None)
            resp.read()
        self.ping_headers = resp.headers
        if resp.status >= 400 and resp.status != 500:
            raise error_for(resp.status, resp.content_type, b"", "/_ping")
        return resp.headers

    @property
    def version(self) -> str:
        if self._version is None:
            server = self.ping().get("api-version") or FALLBACK_VERSION
            self._version = min(server, CLIENT_MAX_VERSION, key=version_tuple)
        return self._version

    def version_at_least(self, version: str) -> bool:
        return version_tuple(self.version) >= version_tuple(version)

    # -- requests ----------------------------------------------------------------------------

    def target(self, path: str, query: dict[str, Any] | None = None, versioned: bool = True) -> str:
        target = f"/v{self.version}{path}" if versioned else path
        encoded = encode_query(query)
        return f"{target}?{encoded}" if encoded else target

    def open(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        json_body: Any = None,
        body: bytes | Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
        versioned: bool = True,
    ) -> Response:
        """Send a request and return the response once its headers are in; raise on >= 400."""
        hdrs = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":")).encode()
            hdrs.setdefault("Content-Type", "application/json")
        target = self.target(path, query, versioned)
        resp = self._exchange(method, target, hdrs, body)
        if resp.status >= 400:
            raise error_for(resp.status, resp.content_type, self._read_error_body(resp), target)
        return resp

    def _read_error_body(self, resp: Response) -> bytes:
        try:
            return resp.read()
        except (OSError, SystemFailure):
            return b""

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """``open`` + read the whole body: parsed JSON, or None for an empty body."""
        resp = self.open(method, path, **kwargs)
        try:
            return resp.json()
        except ValueError as exc:
            raise SystemFailure(f"{method} {path}: daemon sent invalid JSON: {exc}") from exc

    def hijack(
        self,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        json_body: Any = None,
        content_type: str = "text/plain",
    ) -> RawStream:
        """POST with ``Connection: Upgrade`` / ``Upgrade: tcp`` on a new connection; expects 101."""
        target = self.target(path, query)
        conn, current = self._connect()
        body = b"" if json_body is None else json.dumps(json_body, separators=(",", ":")).encode()
        headers = {
            "Connection": "Upgrade",
            "Content-Type": "application/json" if json_body is not None else content_type,
            "Upgrade": "tcp",
        }
        try:
            conn.send_request("POST", target, headers, body)
            resp = conn.read_response("POST")
        except OSError as exc:
            conn.close()
            raise self._io_error("POST", target, exc) from exc
        current[0] = resp
        if resp.status >= 400:
            raise error_for(resp.status, resp.content_type, self._read_error_body(resp), target)
        if resp.status != 101:
            conn.close()
            raise SystemFailure(f"unable to upgrade to tcp, received {resp.status}")
        self._conns.remove((conn, current))
        return conn.detach()
