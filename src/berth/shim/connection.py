"""One client connection of the shim: frames in, frames out, with a bounded unsent buffer.

Outgoing buffers are queued as they are (no concatenation) and gather-sent with ``sendmsg``;
what the socket does not take waits, and the reactor calls ``flush`` again once it is
writable. The owner learns two things through :class:`Owner`: the connection broke (or was
closed after its last bytes) and its backlog fell under ``LOW_WATER`` (so the output it had
stopped reading for this client may flow again). Above ``HIGH_WATER`` unsent bytes the owner
stops feeding it (``over_high``): back-pressure reaches the container, which blocks on write.

    conn = Conn(sock, "new", reactor, owner)
    reactor.watch(conn.fd, read=lambda: owner.on_readable(conn))
    conn.send(header, payload)          # queued; sent as soon as the socket takes it
    conn.close_when_flushed = True      # e.g. after an exec's exit event
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Protocol

from berth.shim import protocol as P

if TYPE_CHECKING:
    from berth.shim.process import Process
    from berth.shim.reactor import Reactor

HIGH_WATER = 1 << 20
LOW_WATER = 256 << 10
IOV_BATCH = 64  # buffers per sendmsg (well under IOV_MAX)


class Owner(Protocol):
    def close_conn(self, conn: Conn) -> None: ...
    def conn_drained(self, conn: Conn) -> None: ...


class Conn:
    """A client: its socket, frame decoder, unsent buffers and what it is to the shim."""

    __slots__ = ("sock", "fd", "decoder", "out", "out_len", "role", "process", "closed",
                 "close_when_flushed", "reactor", "owner")

    def __init__(self, sock: socket.socket, role: str, reactor: Reactor, owner: Owner) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()
        self.decoder = P.FrameDecoder()
        self.out: list[bytes | memoryview] = []  # unsent buffers, sent with one sendmsg
        self.out_len = 0
        self.role = role  # "new" until the hello, then "daemon" | "attach" | "exec" | "control"
        self.process: Process | None = None  # an exec's process, or the one a control connection names
        self.closed = False
        self.close_when_flushed = False
        self.reactor = reactor
        self.owner = owner

    @property
    def over_high(self) -> bool:
        return self.out_len > HIGH_WATER

    def send(self, *parts: bytes) -> None:
        if self.closed:
            return
        self.out.extend(parts)
        self.out_len += sum(len(p) for p in parts)
        self.flush()

    def send_json(self, obj: object) -> None:
        self.send(P.encode_json(obj))

    def flush(self) -> None:
        """Send what the socket takes now; watch for writability while something is left."""
        out = self.out
        try:
            while out:
                sent = self.sock.sendmsg(out[:IOV_BATCH])
                self.out_len -= sent
                done = 0
                for buf in out:
                    if sent < len(buf):
                        if sent:
                            out[done] = memoryview(buf)[sent:]
                        break
                    sent -= len(buf)
                    done += 1
                del out[:done]
        except BlockingIOError:
            pass
        except OSError:
            self.owner.close_conn(self)
            return
        self.reactor.watch(self.fd, write=self.flush if out else None)
        if not out and self.close_when_flushed:
            self.owner.close_conn(self)
        elif self.out_len < LOW_WATER:
            self.owner.conn_drained(self)

    def finish(self, deadline: float) -> None:
        """Last chance before the shim exits: block until the buffers are sent or ``deadline``
        (``time.monotonic()``) passes."""
        import time

        if self.closed or not self.out:
            return
        try:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            for buf in self.out:
                self.sock.sendall(buf)
        except OSError:
            pass  # the client is gone or stuck; the exit status is in exit.json anyway
        self.out.clear()
        self.out_len = 0
