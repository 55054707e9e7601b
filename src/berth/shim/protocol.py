"""The frame codec spoken on ``<exec_root>/<id>/monitor.sock`` (both directions).

A frame is Docker's stream-multiplexing header followed by the payload::

    type:u8, 0, 0, 0, length:u32 big-endian, payload[length]

    >>> encode(STDOUT, b"hi\\n")
    b'\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x03hi\\n'
    >>> d = FrameDecoder(); d.feed(encode(CONTROL, b"{}")[:5]); d.feed(encode(CONTROL, b"{}")[5:])
    [(4, b'{}')]

Types: 0 stdin bytes (client -> monitor), 1 stdout, 2 stderr, 3 error text, 4 one JSON control
message, 5 stdin EOF (client -> monitor, empty payload). The sync half (``FrameDecoder``) is used by
the monitor, which runs no event loop; the async half (``read_frame``/``write_frame``) by the daemon.
"""

from __future__ import annotations

import json
import struct
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

STDIN = 0
STDOUT = 1
STDERR = 2
ERROR = 3
CONTROL = 4
STDIN_EOF = 5

HEADER = struct.Struct(">BxxxI")
MAX_PAYLOAD = 64 << 20  # a control message holding an OCI spec is far smaller; anything larger is garbage


class ProtocolError(ValueError):
    """The peer sent bytes that are not a frame."""


def encode(kind: int, payload: bytes = b"") -> bytes:
    """One frame as bytes."""
    return HEADER.pack(kind, len(payload)) + payload


_ENCODER = json.JSONEncoder(separators=(",", ":"))  # one instance: json.dumps(**kw) builds one per call


def dumps(obj: Any) -> bytes:
    """Compact JSON as bytes."""
    return _ENCODER.encode(obj).encode()


def encode_json(obj: Any) -> bytes:
    """One type-4 control frame holding ``obj`` as compact JSON."""
    return encode(CONTROL, dumps(obj))


def decode_json(payload: bytes) -> dict[str, Any]:
    """The JSON object in a control frame; anything else is a :class:`ProtocolError`."""
    try:
        obj = json.loads(payload)
    except ValueError as exc:
        raise ProtocolError(f"decode control frame: {exc}") from exc
    if not isinstance(obj, dict):
        raise ProtocolError(f"decode control frame: not a JSON object: {payload[:80]!r}")
    return obj


class FrameDecoder:
    """Incremental decoder: feed it bytes as they arrive, get the complete frames back."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        frames: list[tuple[int, bytes]] = []
        buf = self._buf
        pos = 0
        while len(buf) - pos >= HEADER.size:
            kind, length = HEADER.unpack_from(buf, pos)
            if kind > STDIN_EOF or length > MAX_PAYLOAD:
                raise ProtocolError(f"decode frame: bad header type={kind} length={length}")
            end = pos + HEADER.size + length
            if len(buf) < end:
                break
            frames.append((kind, bytes(buf[pos + HEADER.size : end])))
            pos = end
        if pos:
            del buf[:pos]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buf)


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes] | None:
    """The next frame, or ``None`` at a clean EOF between frames.

    EOF inside a frame raises :class:`ProtocolError`.
    """
    import asyncio

    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ProtocolError(f"read frame: EOF inside a header ({len(exc.partial)} bytes)") from exc
        return None
    kind, length = HEADER.unpack(header)
    if kind > STDIN_EOF or length > MAX_PAYLOAD:
        raise ProtocolError(f"read frame: bad header type={kind} length={length}")
    try:
        payload = await reader.readexactly(length) if length else b""
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError(f"read frame: EOF inside a payload ({len(exc.partial)}/{length} bytes)") from exc
    return kind, payload


async def write_frame(writer: asyncio.StreamWriter, kind: int, payload: bytes = b"") -> None:
    """Write one frame and wait until the transport's buffer drains."""
    writer.write(encode(kind, payload))
    await writer.drain()


async def write_json(writer: asyncio.StreamWriter, obj: Any) -> None:
    """Write one type-4 control frame."""
    writer.write(encode_json(obj))
    await writer.drain()
