"""A gzip stream read through zlib directly: the same checks as Python's ``gzip``, twice as fast.

The model: zlib itself parses each member's header (with its optional fields and header CRC)
and checks its trailer (CRC-32 and length) when given ``wbits=16+15``, so the reader only has to
chain members and feed input; Python's ``GzipFile`` does the same work around it in Python
(its own CRC pass, a buffered reader and a padded file over the input), which halves the speed
on a layer of incompressible bytes. Behaviour follows ``GzipFile``: several members are read one
after another, zero bytes between or after them are skipped, anything else there is an error;
a corrupt or cut stream raises :class:`gzip.BadGzipFile` or ``EOFError`` as ``GzipFile`` does.
Each call returns at most ``size`` bytes, so a small stream that expands enormously is read a
bounded piece at a time (the caller's budget sees every piece)::

    with open("layer.tar.gz", "rb") as f:
        tar = GunzipReader(f)
        while chunk := tar.read(1 << 20): ...
"""

from __future__ import annotations

import gzip
import zlib
from typing import BinaryIO

IN_CHUNK = 1 << 18  # compressed bytes fed at a time (zlib copies the unconsumed rest on each call)
OUT_CHUNK = 1 << 20  # a read without a size returns pieces of this


class GunzipReader:
    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._in_member = False  # a member has begun and not yet ended
        self._input = b""  # compressed bytes read and not yet fed
        self._eof = False
        self._out = b""  # decompressed, handed out up to ``_pos``
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while chunk := self.read(OUT_CHUNK):
                parts.append(chunk)
            return b"".join(parts)
        # Decompress OUT_CHUNK at a time and serve small reads (tarfile's 10 KiB) from that:
        # each decompress call copies the input zlib has not consumed yet.
        while self._pos >= len(self._out):
            if self._eof:
                return b""
            self._out, self._pos = self._step(OUT_CHUNK), 0
        if self._pos == 0 and size >= len(self._out):
            data, self._out = self._out, b""
            return data
        data = self._out[self._pos : self._pos + size]
        self._pos += len(data)
        return data

    def _step(self, want: int) -> bytes:
        """Decompress up to ``want`` bytes (possibly none: a header, a member's end)."""
        d = self._inflate
        try:
            if d.eof:  # a member ended: zeros, the end, or the next member (unused_data holds
                # what follows it; unconsumed_tail may repeat those bytes and is not to be fed)
                rest = (d.unused_data + self._input).lstrip(b"\0")
                self._input = b""
                while not rest:
                    more = self._raw.read(IN_CHUNK)
                    if not more:
                        self._eof = True
                        return b""
                    rest = more.lstrip(b"\0")
                self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._in_member = False
                self._input = rest
                return b""
            if d.unconsumed_tail:
                return d.decompress(d.unconsumed_tail, want)
            data = self._input or self._raw.read(IN_CHUNK)
            self._input = b""
            if not data:
                if self._in_member:
                    raise EOFError("Compressed file ended before the end-of-stream marker was reached")
                self._eof = True
                return b""
            self._in_member = True
            return d.decompress(data, want)
        except zlib.error as exc:
            raise gzip.BadGzipFile(f"corrupt gzip stream: {exc}") from exc

    def close(self) -> None:
        self._eof = True

    def __enter__(self) -> GunzipReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
