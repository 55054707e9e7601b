"""A small HTTP/1.1 client over one connected socket.

Model: a ``Connection`` owns a socket and a read buffer. ``send_request()`` writes the request
head and body (``bytes`` with Content-Length, an iterable of ``bytes`` as a chunked body) and
``read_response()`` returns a ``Response`` once the status line and headers are in; the body is
read lazily: by Content-Length, chunked, or until EOF. When the body has been read to its end and
neither side said ``Connection: close`` the connection can carry the next request (keep-alive).
After a ``101`` the socket stops being HTTP: ``Connection.detach()`` hands it over as a
``RawStream`` together with any bytes already buffered past the response head.

    conn = Connection(sock, "api.moby.localhost")
    conn.send_request("GET", "/v1.44/containers/json")
    resp = conn.read_response("GET")
    resp.status, resp.headers["content-type"], resp.read()

Written by hand because ``http.client`` costs ~10 ms to import (email parser and friends) and
cannot hand a socket over after ``101 UPGRADED``; the CLI needs both speed and the hijack.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from berth.errors import SystemFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from berth.client.rawstream import RawStream

USER_AGENT = "berth-client/0.1.0 (linux)"
_READ_SIZE = 65536
_NO_BODY_STATUSES = (204, 304)


class Connection:
    """One HTTP/1.1 connection; not thread-safe, one request at a time."""

    def __init__(self, sock: Any, host_header: str) -> None:
        self.sock = sock
        self.host_header = host_header
        self.buffer = bytearray()
        self.reusable = True
        self.closed = False

    # -- reading -------------------------------------------------------------------------

    def fill(self) -> bool:
        """Receive more bytes into the buffer; False at EOF."""
        data = self.sock.recv(_READ_SIZE)
        if not data:
            return False
        self.buffer += data
        return True

    def readline(self, limit: int = 65536) -> bytes:
        """One line including its ``\\n``; what is left at EOF (maybe b"")."""
        start = 0
        while True:
            idx = self.buffer.find(b"\n", start)
            if idx >= 0:
                line = bytes(self.buffer[: idx + 1])
                del self.buffer[: idx + 1]
                return line
            if len(self.buffer) > limit:
                raise SystemFailure(f"read response from daemon: line longer than {limit} bytes")
            start = len(self.buffer)
            if not self.fill():
                line = bytes(self.buffer)
                self.buffer.clear()
                return line

    def read_some(self, n: int) -> bytes:
        """Up to ``n`` bytes: what is buffered, else one receive; b"" at EOF."""
        if not self.buffer and not self.fill():
            return b""
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def read_exact(self, n: int) -> bytes:
        while len(self.buffer) < n:
            if not self.fill():
                raise SystemFailure(
                    f"read response from daemon: connection closed with {n - len(self.buffer)} bytes missing"
                )
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    # -- writing -------------------------------------------------------------------------

    def send_request(
        self,
        method: str,
        target: str,
        headers: dict[str, str] | None = None,
        body: bytes | Iterable[bytes] | None = None,
    ) -> None:
        """Write one request; a non-bytes iterable body goes out chunked as it is produced."""
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host_header}", f"User-Agent: {USER_AGENT}"]
        chunked = body is not None and not isinstance(body, bytes | bytearray)
        pieces: Iterable[bytes] = () if not chunked else body  # type: ignore[assignment]
        if chunked:
            lines.append("Transfer-Encoding: chunked")
        elif body is not None:
            lines.append(f"Content-Length: {len(body)}")  # type: ignore[arg-type]
        elif method in ("POST", "PUT", "PATCH"):
            lines.append("Content-Length: 0")
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if body is None or chunked:
            self.sock.sendall(head)
        else:
            self.sock.sendall(head + bytes(body))  # type: ignore[arg-type]
        if chunked:
            for piece in pieces:
                if piece:
                    self.sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.sock.sendall(b"0\r\n\r\n")

    def read_response(self, method: str) -> Response:
        """Read the status line and headers; the body stays on the wire."""
        status_line = self.readline()
        if not status_line:
            raise ConnectionResetError("daemon closed the connection before responding")
        parts = status_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise SystemFailure(f"read response from daemon: malformed status line {status_line[:80]!r}")
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers: dict[str, str] = {}
        while True:
            line = self.readline()
            if not line:
                raise SystemFailure("read response from daemon: connection closed inside the headers")
            text = line.decode("latin-1").rstrip("\r\n")
            if not text:
                break
            name, sep, value = text.partition(":")
            if not sep:
                raise SystemFailure(f"read response from daemon: malformed header {text[:80]!r}")
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        if parts[0] == "HTTP/1.0" or "close" in headers.get("connection", "").lower():
            self.reusable = False
        return Response(self, method, status, reason, headers)

    def detach(self) -> RawStream:
        """Give the socket up after a 101: it is a raw byte pipe from here on."""
        from berth.client.rawstream import RawStream

        stream = RawStream(self.sock, bytes(self.buffer))
        self.buffer.clear()
        self.reusable = False
        self.closed = True
        return stream

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()


class Response:
    """Status, headers (lower-case names) and a lazily read body."""

    def __init__(self, conn: Connection, method: str, status: int, reason: str, headers: dict[str, str]):
        self.conn = conn
        self.status = status
        self.reason = reason
        self.headers = headers
        self.done = False
        self._length: int | None = None
        self._chunked = False
        self._until_eof = False
        if method == "HEAD" or status in _NO_BODY_STATUSES or 100 <= status < 200:
            self._length = 0
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._chunked = True
        elif "content-length" in headers:
            try:
                self._length = int(headers["content-length"])
            except ValueError:
                raise SystemFailure(
                    f"read response from daemon: bad Content-Length {headers['content-length']!r}"
                ) from None
        else:
            self._until_eof = True
            conn.reusable = False
        if self._length == 0:
            self.done = True

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def iter_chunks(self) -> Iterator[bytes]:
        """The body in pieces, each as soon as it arrives (for logs -f, progress streams)."""
        conn = self.conn
        if self.done:
            return
        if self._chunked:
            yield from self._iter_chunked()
        elif self._until_eof:
            while True:
                data = conn.read_some(_READ_SIZE)
                if not data:
                    break
                yield data
        else:
            left = self._length or 0
            while left:
                data = conn.read_some(min(left, _READ_SIZE))
                if not data:
                    raise SystemFailure(
                        f"read response from daemon: connection closed with {left} bytes missing"
                    )
                left -= len(data)
                yield data
        self.done = True

    def _iter_chunked(self) -> Iterator[bytes]:
        conn = self.conn
        while True:
            line = conn.readline()
            if not line:
                raise SystemFailure("read response from daemon: connection closed inside a chunked body")
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise SystemFailure(f"read response from daemon: bad chunk size {size_text[:20]!r}") from None
            if size == 0:
                while conn.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers: berth sends none and needs none
                return
            left = size
            while left:
                data = conn.read_some(left)
                if not data:
                    raise SystemFailure("read response from daemon: connection closed inside a chunk")
                left -= len(data)
                yield data
            conn.read_exact(2)  # CRLF after the chunk data

    def read(self) -> bytes:
        """The whole (remaining) body."""
        return b"".join(self.iter_chunks())

    def json(self) -> Any:
        import json

        data = self.read()
        try:
            return json.loads(data) if data.strip() else None
        except ValueError as exc:
            raise SystemFailure(f"decode daemon response: invalid JSON: {exc}") from exc

    def close(self) -> None:
        """Drop the body if unread; the connection then cannot be reused."""
        if not self.done:
            self.conn.reusable = False
            self.conn.close()
