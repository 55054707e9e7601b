"""Docker's stdout/stderr multiplexing (``pkg/stdcopy``), decoded incrementally.

Model: a non-TTY attach, exec or logs stream is a sequence of frames, each an 8-byte header
``stream:u8, 0, 0, 0, length:u32be`` and ``length`` payload bytes. ``Demuxer.feed(data)``
takes bytes as they arrive (frames may be split anywhere) and returns the complete
``(stream, payload)`` pairs; stream 0 (stdin echo) is reported as stdout, stream 3 is an error
from the daemon, which the CLI prints as ``error from daemon in stream: <payload>``.

    >>> d = Demuxer()
    >>> d.feed(b"\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x03hi")
    []
    >>> d.feed(b"\\n\\x02\\x00\\x00\\x00\\x00\\x00\\x00\\x01x")
    [(1, b'hi\\n'), (2, b'x')]
"""

from __future__ import annotations

from berth.errors import SystemFailure

STDIN, STDOUT, STDERR, SYSTEMERR = 0, 1, 2, 3
HEADER_SIZE = 8


class Demuxer:
    """Incremental frame decoder."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buffer += data
        out: list[tuple[int, bytes]] = []
        buf = self.buffer
        pos = 0
        while len(buf) - pos >= HEADER_SIZE:
            kind = buf[pos]
            if kind > SYSTEMERR:
                raise SystemFailure(f"demultiplex daemon stream: unrecognized stream type {kind}")
            length = int.from_bytes(buf[pos + 4 : pos + 8], "big")
            end = pos + HEADER_SIZE + length
            if len(buf) < end:
                break
            out.append((STDOUT if kind == STDIN else kind, bytes(buf[pos + HEADER_SIZE : end])))
            pos = end
        del buf[:pos]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame still held (non-zero at EOF means a truncated stream)."""
        return len(self.buffer)


def frame(stream: int, payload: bytes) -> bytes:
    """Encode one frame (tests and fakes use it)."""
    return bytes((stream, 0, 0, 0)) + len(payload).to_bytes(4, "big") + payload
