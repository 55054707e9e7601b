"""``/_ping`` from the moment berthd is spawned: its unix listeners, bound first, answered by a
small thread while the daemon imports its server and starts.

berthd's first milliseconds go to importing (asyncio, aiohttp, the routes, the handlers:
~0.3 s of CPU) and to opening its stores, bringing its network up and restoring containers. A
client only needs to learn that the daemon is there and which API it speaks; so ``main`` binds
the unix sockets before it imports any of that, and this thread answers pings on them exactly
as the ``/_ping`` route does. Any other request's connection is held, unread (the thread only
peeks at it), and handed to the API server when it takes the listeners over
(:meth:`EarlyListener.take_over`); there the request waits, if it must, for the start-up
(``Engine.hold``). TCP and ``fd://`` listeners are not bound early.

    early = EarlyListener.bind(["/run/berth/berth.sock"])   # before the heavy imports
    ...
    listeners, held = early.take_over()                      # {path: socket}, [socket]
"""

from __future__ import annotations

import os
import re
import select
import socket
import threading
import time
from pathlib import Path

from berth.api.versions import API_VERSION, MAX_ACCEPTED_VERSION, MIN_API_VERSION, SERVER, parse_version
from berth.errors import InvalidParameter

PING = re.compile(rb"^(GET|HEAD) (?:/v([0-9]+\.[0-9]+))?/_ping(?:\?[^ ]*)? HTTP/1\.[01]\r\n")
MAX_HEADERS = 16 * 1024  # a request line and headers larger than this are not a ping we answer


def ping_response(method: bytes) -> bytes:
    """The ``/_ping`` route's answer (its headers and the server's), closing the connection."""
    body = b"" if method == b"HEAD" else b"OK"
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
    headers = [
        "HTTP/1.1 200 OK",
        f"Api-Version: {API_VERSION}",
        "Builder-Version: 1",
        "Cache-Control: no-cache, no-store, must-revalidate",
        "Pragma: no-cache",
        "Swarm: inactive",
        "Content-Type: text/plain; charset=utf-8",
        "Docker-Experimental: false",
        "Ostype: linux",
        f"Server: {SERVER}",
        f"Date: {date}",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


def _answerable(head: bytes) -> bytes | None:
    """The method of a ping we answer here (its version one the server would accept)."""
    m = PING.match(head)
    if m is None:
        return None
    if m.group(2) is not None:
        version = parse_version(m.group(2).decode())
        if not parse_version(MIN_API_VERSION) <= version <= MAX_ACCEPTED_VERSION:
            return None  # the server's 400, with its text
    return m.group(1)


class EarlyListener:
    """Unix listeners and the thread that answers pings on them until ``take_over``."""

    def __init__(self, listeners: dict[str, socket.socket]) -> None:
        self.listeners = listeners
        self.held: list[socket.socket] = []
        self._pending: list[socket.socket] = []  # accepted, not yet known to be a ping or not
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)
        self._thread = threading.Thread(target=self._run, name="berthd early /_ping", daemon=True)
        self._thread.start()

    @classmethod
    def bind(cls, paths: list[str]) -> EarlyListener:
        listeners: dict[str, socket.socket] = {}
        try:
            for path in paths:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                if Path(path).is_socket():
                    Path(path).unlink()
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                listeners[path] = sock
                sock.bind(path)
                os.chmod(path, 0o660)  # as the API server's own unix sites
                sock.listen(128)
        except BaseException:
            for path, sock in listeners.items():
                sock.close()
                Path(path).unlink(missing_ok=True)
            raise
        return cls(listeners)

    def take_over(self) -> tuple[dict[str, socket.socket], list[socket.socket]]:
        """Stop answering; the listeners and the held connections are the caller's now (the
        connections still hold their first request, unread). Once only: then it is empty."""
        if self._wake_w >= 0:
            os.write(self._wake_w, b"x")
            self._thread.join()
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1
        listeners, held = self.listeners, self.held + self._pending
        self.listeners, self.held, self._pending = {}, [], []
        return listeners, held

    def close(self) -> None:
        """The daemon did not get as far as serving: close what was not taken over, remove
        its sockets."""
        listeners, held = self.take_over()
        for sock in held:
            sock.close()
        for path, sock in listeners.items():
            sock.close()
            Path(path).unlink(missing_ok=True)


    # ---- the thread -------------------------------------------------------------------------
    def _run(self) -> None:
        by_fd = {s.fileno(): s for s in self.listeners.values()}
        while True:
            watched = [self._wake_r, *by_fd, *(c.fileno() for c in self._pending)]
            ready, _, _ = select.select(watched, [], [])
            if self._wake_r in ready:
                return
            for fd in ready:
                if fd in by_fd:
                    self._accept(by_fd[fd])
            for conn in [c for c in self._pending if c.fileno() in ready]:
                self._look(conn)

    def _accept(self, listener: socket.socket) -> None:
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        self._pending.append(conn)

    def _look(self, conn: socket.socket) -> None:
        """Answer a ping; hold anything else, unread, for the server."""
        try:
            head = conn.recv(MAX_HEADERS, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError:
            head = b""
        if not head:  # the client went away
            self._pending.remove(conn)
            conn.close()
            return
        if b"\r\n" not in head and len(head) < MAX_HEADERS:
            return  # the request line is still on its way
        method = _answerable(head)
        end = head.find(b"\r\n\r\n")
        if method is None or (end < 0 and len(head) >= MAX_HEADERS):
            self._pending.remove(conn)
            self.held.append(conn)
            return
        if end < 0:
            return  # headers still on their way
        self._pending.remove(conn)
        try:
            conn.recv(end + 4)  # the request, consumed: the answer closes the connection
            conn.sendall(ping_response(method))
        except OSError:
            pass  # the client went away: nothing to answer
        finally:
            conn.close()


_LOOPBACK = re.compile(r"^(127\.\d+\.\d+\.\d+|localhost|\[?::1\]?)$")


def check_host(host: str, tls_enabled: bool, insecure_tcp: bool) -> None:
    """Plain TCP only on loopback (or with --insecure-tcp): checked before anything listens."""
    if not host.startswith("tcp://"):
        return
    addr = host[len("tcp://") :].rpartition(":")[0]
    if not tls_enabled and not insecure_tcp and not _LOOPBACK.match(addr or "127.0.0.1"):
        raise InvalidParameter(
            f"refusing to listen on {host} without TLS: anyone who can reach it gets root on this host; "
            "use --tlsverify with certificates, or --insecure-tcp if you really mean it"
        )
