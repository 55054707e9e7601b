"""A scripted Docker Engine API server on a unix socket, for testing clients without a daemon.

Model: ``FakeDaemon(path, handler)`` accepts connections on a thread each, parses HTTP/1.1
requests (keep-alive; Content-Length or chunked bodies) and calls ``handler(request, reply)``.
The handler answers through ``reply``: ``send(status, body, headers)`` (Content-Length),
``begin_chunked(status)`` + ``chunk(data)`` + ``end_chunked()`` (streamed, e.g. wait or logs),
or ``upgrade()`` -> the raw socket after ``101 UPGRADED`` (attach, exec start). Every request is
recorded in ``daemon.requests`` with its connection number, so tests can check call order and
connection use, as the transcripts in the API reference do.

    daemon = FakeDaemon(tmp / "d.sock", lambda req, reply: reply.json(200, []))
    with daemon:
        ... Client(parse_host(f"unix://{tmp}/d.sock")).call("GET", "/containers/json")
    daemon.requests[0].path   # '/v1.45/containers/json'

It is a test fake shipped with the client (like ``httpx.MockTransport``): it binds the unix
socket it is given, or with ``tcp=True`` an ephemeral port on 127.0.0.1 (optionally TLS), never
anything but loopback.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Request:
    def __init__(self, conn_no: int, method: str, target: str, headers: dict[str, str], body: bytes):
        self.conn_no = conn_no
        self.method = method
        self.target = target
        parts = urlsplit(target)
        self.path = parts.path
        self.query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        self.query_lists = parse_qs(parts.query, keep_blank_values=True)
        self.headers = headers
        self.body = body

    @property
    def route(self) -> str:
        """The path without the /v1.xx prefix."""
        path = self.path
        if path.startswith("/v") and "/" in path[1:]:
            head, rest = path[1:].split("/", 1)
            if head[1:].replace(".", "").isdigit():
                return "/" + rest
        return path

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def __repr__(self) -> str:
        return f"<Request c{self.conn_no} {self.method} {self.target}>"


class Reply:
    def __init__(self, sock: socket.socket, api_version: str) -> None:
        self.sock = sock
        self.api_version = api_version
        self.upgraded = False
        self.close_after = False
        self.reader: Any = None  # buffered reader of the request stream: read stdin from it
        self.method = ""

    def _head(self, status: int, headers: dict[str, str]) -> bytes:
        reason = {
            101: "UPGRADED",
            200: "OK",
            201: "Created",
            204: "No Content",
            304: "Not Modified",
            400: "Bad Request",
            404: "Not Found",
            409: "Conflict",
            500: "Internal Server Error",
        }
        lines = [
            f"HTTP/1.1 {status} {reason.get(status, 'Status')}",
            f"Api-Version: {self.api_version}",
            "Ostype: linux",
            "Server: berth-fake",
        ]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        hdrs = dict(headers or {})
        if status not in (204, 304):
            hdrs["Content-Length"] = str(len(body))
        self.sock.sendall(self._head(status, hdrs) + (b"" if self.method == "HEAD" else body))

    def json(self, status: int, doc: Any) -> None:
        self.send(status, json.dumps(doc).encode(), {"Content-Type": "application/json"})

    def error(self, status: int, message: str) -> None:
        self.json(status, {"message": message})

    def begin_chunked(self, status: int = 200, content_type: str = "application/json") -> None:
        self.sock.sendall(self._head(status, {"Content-Type": content_type, "Transfer-Encoding": "chunked"}))

    def chunk(self, data: bytes) -> None:
        if data:
            self.sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))

    def end_chunked(self) -> None:
        self.sock.sendall(b"0\r\n\r\n")

    def read_stdin(self) -> bytes:
        """After upgrade(): everything the client sends until it half-closes."""
        data: bytes = self.reader.read()
        return data

    def upgrade(self) -> socket.socket:
        self.sock.sendall(
            b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
            b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
        )
        self.upgraded = True
        return self.sock


class FakeDaemon:
    def __init__(
        self,
        path: os.PathLike[str] | str,
        handler: Callable[[Request, Reply], None],
        api_version: str = "1.45",
        tcp: bool = False,
        ssl_context: Any = None,
    ) -> None:
        """``tcp=True`` listens on 127.0.0.1 (an ephemeral port) instead of the unix socket
        ``path``; ``ssl_context`` (server side) makes it TLS."""
        self.path = os.fspath(path)
        self.tcp = tcp
        self.ssl_context = ssl_context
        self.port = 0
        self.handler = handler
        self.api_version = api_version
        self.requests: list[Request] = []
        self.errors: list[BaseException] = []
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._count = 0
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}" if self.tcp else f"unix://{self.path}"

    def __enter__(self) -> FakeDaemon:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self.tcp:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind(("127.0.0.1", 0))  # loopback only
            self.port = listener.getsockname()[1]
        else:
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(self.path)
        listener.listen(16)
        self._listener = listener
        t = threading.Thread(target=self._accept, args=(listener,), name="fake-daemon-accept", daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # not connected: nothing to wake
            self._listener.close()
            self._listener = None
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # the client already closed it
            conn.close()
        for t in self._threads:
            t.join(timeout=5)
        if not self.tcp:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass  # never bound or already removed

    def routes(self) -> list[str]:
        return [f"{r.method} {r.route}" for r in self.requests]

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # stopped
            with self._lock:
                self._count += 1
                number = self._count
                self._conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn, number), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket, number: int) -> None:
        if self.ssl_context is not None:
            try:
                conn = self.ssl_context.wrap_socket(conn, server_side=True)
            except OSError as exc:  # ssl.SSLError is an OSError: a refused handshake
                self.errors.append(exc)
                conn.close()
                return
        reader = conn.makefile("rb")
        try:
            while True:
                line = reader.readline()
                if not line:
                    return
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while True:
                    h = reader.readline().decode("latin-1").rstrip("\r\n")
                    if not h:
                        break
                    k, _, v = h.partition(":")
                    headers[k.strip().lower()] = v.strip()
                if "chunked" in headers.get("transfer-encoding", ""):
                    body = b""
                    while True:
                        size = int(reader.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            reader.readline()
                            break
                        body += reader.read(size)
                        reader.readline()
                else:
                    body = reader.read(int(headers.get("content-length", "0") or 0))
                req = Request(number, method, target, headers, body)
                with self._lock:
                    self.requests.append(req)
                reply = Reply(conn, self.api_version)
                reply.reader = reader
                reply.method = method
                self.handler(req, reply)
                if reply.upgraded or reply.close_after:
                    return
        except (OSError, ValueError) as exc:
            self.errors.append(exc)
        finally:
            reader.close()
            try:
                conn.close()
            except OSError:
                pass  # already closed by an upgraded handler


def frame(stream: int, payload: bytes) -> bytes:
    """One stdcopy frame (re-exported for tests)."""
    from berth.client.stdcopy import frame as _frame

    return _frame(stream, payload)
