"""TLS for ``tcp://`` endpoints: the docker CLI's ``--tls`` / ``--tlsverify`` semantics.

Model: ``--tlsverify`` checks the daemon's certificate against ``--tlscacert`` (or the system
store) and its name against the host; ``--tls`` alone encrypts without checking; a client
certificate is presented when both ``--tlscert`` and ``--tlskey`` are known.

``TLSSocket`` runs the TLS session over memory BIOs on top of the plain socket, rather than
``ssl.SSLSocket``, for one reason: a hijacked stream must half-close (stdin ended) and keep
reading. TLS has no SHUT_WR; its equivalent is sending close_notify, and ``SSLSocket.unwrap()``
then reads on to wait for the daemon's close_notify, swallowing output that was already on the
wire. With memory BIOs, ``close_write()`` first moves every byte already received into a
plaintext buffer, so the shutdown finds nothing to swallow, and the output keeps coming.
Imported only for TLS endpoints: ``ssl`` costs several milliseconds of start-up.
"""

from __future__ import annotations

import select
import ssl

from berth.errors import InvalidParameter, Unavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from berth.client.transport import Endpoint

_READ = 65536
_DONTWAIT = 0x40  # MSG_DONTWAIT on Linux, without importing socket


class TLSSocket:
    """The socket interface berth's HTTP client and hijacked streams use, over TLS."""

    def __init__(self, sock: Any, ctx: ssl.SSLContext, server_hostname: str | None) -> None:
        self.sock = sock
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname=server_hostname)
        self.plain = bytearray()  # decrypted bytes taken ahead of the reader (close_write)
        self.backlog = bytearray()  # ciphertext not yet accepted by the socket (non-blocking)
        self.eof = False
        self.write_closed = False
        self.blocking = True
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                if not self._fill():
                    raise ssl.SSLEOFError("daemon closed the connection during the TLS handshake") from None
        self._flush()

    # -- ciphertext side --------------------------------------------------------------------

    def _flush(self) -> None:
        self.backlog += self.outgoing.read()
        if not self.backlog:
            return
        if self.blocking:
            self.sock.sendall(self.backlog)
            self.backlog.clear()
            return
        try:
            sent = self.sock.send(self.backlog, _DONTWAIT)
        except BlockingIOError:
            return
        del self.backlog[:sent]

    def _flush_quietly(self) -> None:
        """Flush while reading: a daemon that stopped reading from us must not stop us from
        reading what it sent (a broken write side is reported by the next send)."""
        try:
            self._flush()
        except (BrokenPipeError, ConnectionResetError):
            self.backlog.clear()

    def _fill(self) -> bool:
        data = self.sock.recv(_READ)
        if not data:
            self.eof = True
            self.incoming.write_eof()
            return False
        self.incoming.write(data)
        return True

    def _readable_now(self) -> bool:
        readable, _, _ = select.select([self.sock.fileno()], [], [], 0)
        return bool(readable)

    # -- the socket interface ---------------------------------------------------------------

    def fileno(self) -> int:
        return int(self.sock.fileno())

    def setblocking(self, flag: bool) -> None:
        # the plain socket stays blocking; non-blocking only changes what recv does when no
        # plaintext is ready (BlockingIOError instead of waiting)
        self.blocking = flag

    def getblocking(self) -> bool:
        return self.blocking

    def pending(self) -> int:
        """Bytes select() cannot see: plaintext taken ahead, or undecrypted records."""
        return len(self.plain) + self.obj.pending() + self.incoming.pending

    def recv(self, n: int) -> bytes:
        while True:
            if self.plain:
                data = bytes(self.plain[:n])
                del self.plain[:n]
                return data
            try:
                data = self.obj.read(n)
                self._flush_quietly()
                return data
            except ssl.SSLWantReadError:
                self._flush_quietly()
                if self.eof:
                    return b""
                if not self.blocking and not self._readable_now():
                    raise BlockingIOError("no TLS record ready") from None
                self._fill()
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""  # close_notify, or a daemon that closed without one

    def sendall(self, data: bytes | bytearray) -> None:
        if data:
            self.obj.write(bytes(data))
            self._flush()

    def send(self, data: bytes | bytearray) -> int:
        """Non-blocking mode: take ``data`` only when earlier ciphertext has left (else 0), so
        a daemon that stops reading stdin never blocks us from reading its output."""
        if self.blocking:
            self.sendall(data)
            return len(data)
        self._flush()
        if self.backlog:
            return 0
        if data:
            self.obj.write(bytes(data))
            self._flush()
        return len(data)

    def write_pending(self) -> bool:
        return bool(self.backlog)

    def close_write(self) -> None:
        """close_notify without losing output already received (see the module docstring)."""
        if self.write_closed:
            return
        self.write_closed = True
        while True:
            try:
                data = self.obj.read(_READ)
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return  # the daemon already closed its side: nothing to tell it
            if not data:
                break
            self.plain += data
        try:
            self.obj.unwrap()
        except ssl.SSLWantReadError:
            pass  # close_notify is queued; the daemon's comes at the end of the stream
        except ssl.SSLError:
            return  # the session is already gone: nothing left to tell the daemon
        try:
            self._flush()
        except OSError:
            pass  # the daemon closed: it no longer needs to hear that stdin ended

    def shutdown(self, how: int) -> None:
        self.sock.shutdown(how)

    def close(self) -> None:
        self.sock.close()


def context_for(endpoint: Endpoint) -> ssl.SSLContext:
    opts = endpoint.tls
    assert opts is not None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        if opts.verify:
            if opts.cacert:
                ctx.load_verify_locations(opts.cacert)
            else:
                ctx.load_default_certs()
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if opts.cert and opts.key:
            ctx.load_cert_chain(opts.cert, opts.key)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidParameter(f"load TLS files for {endpoint.url}: {exc}") from exc
    return ctx


def wrap(sock: Any, endpoint: Endpoint) -> TLSSocket:
    """TLS over a connected TCP socket as the endpoint's options say; ssl errors become
    InvalidParameter (bad files) or Unavailable (failed handshake)."""
    try:
        ctx = context_for(endpoint)
    except InvalidParameter:
        sock.close()
        raise
    host = endpoint.address.rpartition(":")[0].strip("[]")
    try:
        return TLSSocket(sock, ctx, host)
    except (OSError, ssl.SSLError) as exc:
        sock.close()
        raise Unavailable(f"TLS handshake with {endpoint.url}: {exc}") from exc
