"""Moving container bytes: daemon output to our stdout/stderr, our stdin to the daemon.

Model: ``copy_output`` drains a byte source (a hijacked socket or a chunked HTTP body), demuxing
docker's 8-byte frames unless the container has a TTY, and writes each payload to stdout or
stderr at once (unbuffered: ``logs -f`` and interactive shells need it). ``StdinPump`` copies
our stdin into a hijacked socket from a daemon thread and half-closes the socket at EOF, so the
daemon sees the end of input while we keep reading output. A stream-type-3 frame is an error
from the daemon and ends the copy with ``error from daemon in stream: <text>``.
"""

from __future__ import annotations

import os
import threading
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


def socket_chunks(raw: Any, size: int = 65536) -> Iterable[bytes]:
    while True:
        try:
            data = raw.recv(size)
        except ConnectionResetError:
            return  # the daemon dropped the stream: that is its end
        if not data:
            return
        yield data


class StdinPump:
    """Copy ``fd`` into ``raw`` on a daemon thread; half-close at EOF."""

    def __init__(self, fd: int, raw: Any, filter_bytes: Callable[[bytes], bytes | None] | None = None):
        self.fd = fd
        self.raw = raw
        self.filter = filter_bytes
        self.done = threading.Event()
        self.detached = False
        self.thread = threading.Thread(target=self._run, name="stdin-pump", daemon=True)

    def start(self) -> StdinPump:
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            while True:
                try:
                    data = os.read(self.fd, 32768)
                except OSError:
                    break
                if not data:
                    break
                if self.filter is not None:
                    filtered = self.filter(data)
                    if filtered is None:
                        self.detached = True
                        self.raw.abort()  # wakes the output reader; the container keeps running
                        return
                    data = filtered
                try:
                    self.raw.sendall(data)
                except OSError:
                    return  # the daemon closed the stream; output side will notice
            self.raw.close_write()
        finally:
            self.done.set()


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
