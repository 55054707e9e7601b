"""Moving container bytes: daemon output to our stdout/stderr, our stdin to the daemon.

Model: ``copy_output`` drains a byte source (a chunked HTTP body, e.g. logs), demuxing docker's
8-byte frames unless the container has a TTY, and writes each payload to stdout or stderr at
once (unbuffered: ``logs -f`` and interactive shells need it). ``duplex`` runs a hijacked
session on one thread: stdin into the socket (half-closed at stdin EOF, so the daemon sees the
end of input while we keep reading) and the socket's bytes into an ``OutputSink``. A
stream-type-3 frame is an error from the daemon: ``error from daemon in stream: <text>``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from berth.client.stdcopy import SYSTEMERR, Demuxer
from berth.errors import SystemFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def copy_output(chunks: Iterable[bytes], write: Callable[[bytes, int], None], tty: bool) -> None:
    demux = None if tty else Demuxer()
    for data in chunks:
        if demux is None:
            write(data, 1)
            continue
        for stream, payload in demux.feed(data):
            if stream == SYSTEMERR:
                raise SystemFailure(f"error from daemon in stream: {payload.decode('utf-8', 'replace')}")
            write(payload, stream)


def duplex(
    raw: Any,
    stdin_fd: int,
    on_output: Callable[[bytes], None],
    keys: Callable[[bytes], bytes | None] | None = None,
) -> bool:
    """Both directions on one thread: our stdin -> the stream, the stream -> ``on_output``.

    select() over the socket and stdin, with a bounded send buffer so a daemon that is busy
    writing to us is never blocked on our sending (and we never block on it). Stdin EOF
    half-closes the stream once everything is sent; the daemon's EOF ends the loop (the
    process's output is over, whatever stdin still holds). Returns False when ``keys``
    recognized the detach sequence. One thread only: OpenSSL forbids using a TLS session
    from two threads at once, and no thread means no lock.
    """
    import select

    limit = 1 << 16
    outgoing = bytearray()
    stdin_open = stdin_fd >= 0
    half_closed = not stdin_open  # without stdin the caller half-closed right after the 101
    sock_fd = raw.fileno()
    raw.setblocking(False)
    try:
        while True:
            rlist = [sock_fd]
            if stdin_open and len(outgoing) < limit:
                rlist.append(stdin_fd)
            wlist = [sock_fd] if outgoing or raw.write_pending() else []
            readable, writable, _ = select.select(rlist, wlist, [], 0 if raw.buffered() else None)
            if writable:
                try:
                    del outgoing[: raw.send_some(outgoing)]  # an empty send flushes a TLS backlog
                except (BrokenPipeError, ConnectionResetError):
                    # the daemon stopped taking input; its output (what we are here for) may
                    # still be buffered for us, so stop sending and keep reading
                    outgoing.clear()
                    stdin_open = False
                    half_closed = True
                if not outgoing and not stdin_open and not half_closed:
                    raw.close_write()
                    half_closed = True
            if stdin_fd in readable:
                try:
                    data = os.read(stdin_fd, 32768)
                except OSError:
                    data = b""  # an unreadable stdin is an ended stdin
                if data and keys is not None:
                    filtered = keys(data)
                    if filtered is None:
                        return False
                    data = filtered
                if data:
                    outgoing += data
                else:
                    stdin_open = False
                    if not outgoing and not half_closed:
                        raw.close_write()
                        half_closed = True
            if sock_fd in readable or raw.buffered():
                try:
                    chunk = raw.recv_some()
                except ConnectionResetError:
                    return True  # the daemon dropped the stream: that is its end
                if chunk is None:
                    continue
                if not chunk:
                    return True
                on_output(chunk)
    finally:
        raw.setblocking(True)


class OutputSink:
    """Feeds raw stream bytes to our stdout/stderr, demuxed unless TTY (for ``duplex``)."""

    def __init__(self, write: Callable[[bytes, int], None], tty: bool) -> None:
        self.write = write
        self.demux = None if tty else Demuxer()

    def __call__(self, data: bytes) -> None:
        if self.demux is None:
            self.write(data, 1)
            return
        for stream, payload in self.demux.feed(data):
            if stream == SYSTEMERR:
                raise SystemFailure(f"error from daemon in stream: {payload.decode('utf-8', 'replace')}")
            self.write(payload, stream)


class DetachKeys:
    """Watch typed input for docker's detach sequence (default ctrl-p ctrl-q)."""

    def __init__(self, keys: bytes = b"\x10\x11") -> None:
        self.keys = keys
        self.matched = b""

    def __call__(self, data: bytes) -> bytes | None:
        out = bytearray()
        for byte in data:
            candidate = self.matched + bytes((byte,))
            if self.keys.startswith(candidate):
                self.matched = candidate
                if candidate == self.keys:
                    return None
                continue
            out += self.matched
            self.matched = b""
            if self.keys.startswith(bytes((byte,))):
                self.matched = bytes((byte,))
            else:
                out.append(byte)
        return bytes(out)
