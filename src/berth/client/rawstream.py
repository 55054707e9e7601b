"""A hijacked connection (after ``101 UPGRADED``): raw bytes both ways, half-closable.

Model: ``RawStream`` wraps the socket the HTTP connection gave up, plus any bytes that were
already read past the response head. ``recv``/``sendall`` block; ``recv_some``/``send_some``
serve a select() loop (``berth.cli.streams.duplex``) after ``setblocking(False)``.
``close_write`` is the half-close that tells the daemon stdin ended: ``shutdown(SHUT_WR)``,
or close_notify over TLS (``berth.client.tls``). Only hijacking commands import this.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_READ_SIZE = 65536


class RawStream:
    """A hijacked connection: raw bytes both ways, half-closable, usable from one thread.

    ``recv``/``sendall`` block; ``recv_some``/``send_some`` are for a select() loop after
    ``setblocking(False)`` (they return None / 0 instead of raising when the socket - or the
    TLS layer - is not ready). ``buffered()`` says bytes are waiting that select() cannot see
    (read ahead past the 101, or decrypted TLS records)."""

    def __init__(self, sock: Any, pending: bytes = b"") -> None:
        self.sock = sock
        self.pending = pending
        self.tls = hasattr(sock, "close_write")  # berth.client.tls.TLSSocket

    def fileno(self) -> int:
        return int(self.sock.fileno())

    def setblocking(self, flag: bool) -> None:
        self.sock.setblocking(flag)

    def write_pending(self) -> bool:
        """Bytes accepted but not yet on the wire (TLS ciphertext backlog)."""
        return self.tls and bool(self.sock.write_pending())

    def buffered(self) -> bool:
        return bool(self.pending) or (self.tls and self.sock.pending() > 0)

    def recv(self, n: int = _READ_SIZE) -> bytes:
        if self.pending:
            data, self.pending = self.pending[:n], self.pending[n:]
            return data
        received: bytes = self.sock.recv(n)
        return received

    def recv_some(self, n: int = _READ_SIZE) -> bytes | None:
        try:
            return self.recv(n)
        except BlockingIOError:
            return None

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_some(self, data: bytes | bytearray) -> int:
        try:
            return int(self.sock.send(data))
        except BlockingIOError:
            return 0

    def close_write(self) -> None:
        """Half-close: tell the daemon stdin ended, keep reading its output (over TLS:
        close_notify, see berth.client.tls)."""
        if self.tls:
            self.sock.close_write()
            return
        try:
            self.sock.shutdown(1)  # SHUT_WR
        except OSError:
            pass  # the daemon already closed: nothing left to tell it

    def abort(self) -> None:
        """Shut both directions (detach)."""
        try:
            self.sock.shutdown(2)  # SHUT_RDWR
        except OSError:
            pass  # already closed by the daemon

    def close(self) -> None:
        self.sock.close()
