"""Taking over an HTTP connection for attach and exec (Go's ``http.Hijacker``, in aiohttp).

The client asks with ``Connection: Upgrade`` / ``Upgrade: tcp``; we answer
``HTTP/1.1 101 UPGRADED`` at once and from then on the socket is a raw two-way pipe:
client→server is the process's stdin, server→client its output (framed unless TTY).

aiohttp would close the connection on the client's half-close (``shutdown(SHUT_WR)`` once its
stdin ends) and never hand us the bytes sent after the upgrade, so we swap in our own
protocol: ``eof_received`` returns True (keep writing after the client's EOF) and incoming
bytes go to a queue that the job reads as stdin. The route must not return before
``close()``: aiohttp closes a force-closed connection when its handler returns.
"""

from __future__ import annotations

import asyncio
import fcntl
import ssl
import sys
import termios
import weakref
from typing import Any

from aiohttp import web

from berth.api.streams import flush_headers
from berth.steptrace import mark

# The app's live hijacked connections, closed first when the server stops.
HIJACKED: web.AppKey[weakref.WeakSet[Hijacked]] = web.AppKey("hijacked", weakref.WeakSet)


class HijackProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self.lost = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()

    def data_received(self, data: bytes) -> None:
        if data:
            self.incoming.put_nowait(data)

    def eof_received(self) -> bool:
        self.incoming.put_nowait(b"")
        return True  # half-close: keep our write side open

    def connection_lost(self, exc: Exception | None) -> None:
        self.incoming.put_nowait(b"")
        self.lost.set()
        self._writable.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()


class Hijacked:
    """The raw connection after the upgrade: a ByteSource (stdin) and a ByteSink (output)."""

    def __init__(self, transport: asyncio.Transport, protocol: HijackProtocol) -> None:
        self.transport = transport
        self.protocol = protocol
        self._eof = False
        self.closed_by_server = False  # our close (e.g. at shutdown) is not the client's EOF

    async def read(self) -> bytes:
        if self._eof:
            return b""
        data = await self.protocol.incoming.get()
        if not data:
            self._eof = True
        return data

    async def write(self, data: bytes) -> None:
        if self.transport.is_closing():
            raise ConnectionResetError("attach: the client closed the connection")
        self.transport.write(data)
        await self.protocol._writable.wait()

    @property
    def gone(self) -> asyncio.Event:
        return self.protocol.lost

    def close(self) -> None:
        self.closed_by_server = True
        if self.transport.is_closing():
            return
        if self.transport.can_write_eof():
            try:
                self.transport.write_eof()
            except OSError:
                pass  # the peer is already gone; close() below is all that is left to do
        self.transport.close()


async def hijack(request: web.Request, content_type: str, extra_headers: dict[str, str] | None = None) -> Hijacked:
    """Answer 101 (or 200 for clients that did not ask to upgrade) and take the socket over.

    Without the upgrade dockerd names the stream raw whatever it carries (its routes write that
    200 by hand), so only a 101 carries the multiplexed content type of API >= 1.42."""
    upgrade = request.headers.get("Upgrade", "").lower() == "tcp"
    headers = {"Content-Type": content_type if upgrade else "application/vnd.docker.raw-stream"}
    if upgrade:
        headers.update({"Connection": "Upgrade", "Upgrade": "tcp"})
    headers.update(extra_headers or {})
    resp = web.StreamResponse(status=101 if upgrade else 200, reason="UPGRADED" if upgrade else "OK", headers=headers)
    resp.force_close()
    await resp.prepare(request)
    flush_headers(resp)
    mark("d:hijacked")
    transport = request.transport
    assert transport is not None, "hijack: the request has no transport"
    protocol = HijackProtocol()
    # No await between sending the headers and swapping the protocol: the client sends stdin
    # only after it has read the 101, so no byte can be read by aiohttp's protocol meanwhile.
    ssl_protocol = getattr(transport, "_ssl_protocol", None)
    if ssl_protocol is not None:
        tls = _TLSPipe(ssl_protocol, protocol)
        return Hijacked(tls, protocol)  # type: ignore[arg-type]
    transport.set_protocol(protocol)
    transport.resume_reading()
    return Hijacked(transport, protocol)


class _TLSPipe(asyncio.Protocol):
    """A hijacked TLS connection that survives the client's close_notify.

    Go's ``tls.Conn.CloseWrite`` (what the docker CLI does when its stdin ends) sends a TLS
    close_notify; asyncio's SSL transport answers any close_notify by shutting the whole
    connection down, so the container's output would never reach the client. We take the
    TLS session (the ``SSLObject`` and its memory BIOs) out of asyncio's SSLProtocol and drive
    it ourselves on the raw TCP transport: a close_notify becomes EOF on stdin, and we keep
    encrypting output until the stream ends. This relies on SSLProtocol's private attributes
    (``_sslobj``, ``_incoming``, ``_outgoing``, ``_transport``), stable since Python 3.11.
    """

    def __init__(self, ssl_protocol: Any, app: HijackProtocol) -> None:
        self.sslobj: ssl.SSLObject = ssl_protocol._sslobj
        self.incoming: ssl.MemoryBIO = ssl_protocol._incoming
        self.outgoing: ssl.MemoryBIO = ssl_protocol._outgoing
        self.raw: asyncio.Transport = ssl_protocol._transport
        self.app = app
        self.read_closed = False
        self._flush()
        self.raw.set_protocol(self)
        self.raw.resume_reading()
        self.data_received(b"")  # records already in the BIO, if any

    # raw side -------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if data:
            self.incoming.write(data)
        while not self.read_closed:
            try:
                chunk = self.sslobj.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLError:
                self.read_closed = True
                self.app.connection_lost(None)
                self.raw.close()
                return
            if not chunk:  # close_notify (SSLObject.read returns b""): the client's half-close
                self.read_closed = True
                self.app.eof_received()
                break
            self.app.data_received(chunk)
        self._flush()

    def eof_received(self) -> bool:
        if not self.read_closed:
            self.read_closed = True
            self.app.eof_received()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.app.connection_lost(exc)

    def pause_writing(self) -> None:
        self.app.pause_writing()

    def resume_writing(self) -> None:
        self.app.resume_writing()

    # the Transport surface Hijacked uses -----------------------------------------------
    def _flush(self) -> None:
        pending = self.outgoing.read()
        if pending and not self.raw.is_closing():
            self.raw.write(pending)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = self.sslobj.write(view)
            view = view[written:]
        self._flush()

    def is_closing(self) -> bool:
        return self.raw.is_closing()

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        try:
            self.sslobj.unwrap()  # our close_notify
        except ssl.SSLError:
            pass  # the peer's close_notify is not needed for ours to be sent
        self._flush()

    def close(self) -> None:
        self.raw.close()


HEADERS_READ_WAIT = 0.05  # s: how long an attach with logs waits for the client to read the 101


class LazyHijack:
    """A job's stdin and stdout over a hijacked connection, hijacked on first use.

    Until the handler calls ``start()`` (or reads/writes) it can still answer with an ordinary
    error response, e.g. 404 for a missing container.
    """

    def __init__(self, request: web.Request, content_type: str, extra_headers: dict[str, str] | None = None):
        self.request = request
        self.content_type = content_type
        self.extra_headers = extra_headers
        self.conn: Hijacked | None = None

    async def start(self, content_type: str | None = None) -> Hijacked:
        if self.conn is None:
            self.conn = await hijack(self.request, content_type or self.content_type, self.extra_headers)
            # The server closes hijacked connections first when it stops: aiohttp no longer
            # sees them, and would otherwise wait out its shutdown timeout for their handlers.
            live = self.request.app.get(HIJACKED)
            if live is not None:
                live.add(self.conn)
        return self.conn

    async def read(self) -> bytes:
        return await (await self.start()).read()

    async def write(self, data: bytes) -> None:
        conn = await self.start()
        if data:
            await conn.write(data)

    @property
    def gone(self) -> asyncio.Event:
        assert self.conn is not None
        return self.conn.gone

    @property
    def closed_by_server(self) -> bool:
        return self.conn is not None and self.conn.closed_by_server

    async def headers_read(self, timeout: float = HEADERS_READ_WAIT) -> None:
        """Wait (at most ``timeout``) until the client has read the 101 and its headers.

        A client that reads the headers through a buffered reader and the stream from the
        socket beneath it (docker-py's attach: http.client, then ``response.raw._fp.fp.raw``)
        loses whatever arrived with the headers in one read: an attach with ``logs=1`` of an
        exited container answered b"" about 1 time in 40. dockerd sends its logs later only
        because it is slower. Polled with SIOCOUTQ (bytes the peer has not read yet)."""
        conn = await self.start()
        transport = conn.transport
        if not isinstance(transport, asyncio.Transport) or transport.get_extra_info("socket") is None:
            return  # TLS (_TLSPipe: the records are not the bytes): not waited for
        sock = transport.get_extra_info("socket")
        buf = bytearray(4)
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            try:
                fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, buf)
            except OSError:
                return
            if int.from_bytes(buf, sys.byteorder) == 0 and not transport.get_write_buffer_size():
                return
            await asyncio.sleep(0.001)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class _HijackedResponse(web.StreamResponse):
    """What a hijacking route returns: the connection is ours (and closed by now), so aiohttp
    must not write a response on it."""

    def __init__(self) -> None:
        super().__init__(status=101)

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


def hijacked_response() -> web.StreamResponse:
    return _HijackedResponse()
