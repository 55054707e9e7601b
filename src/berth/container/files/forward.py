"""A forward-only, seekable view of a stream, for reading a tar in one pass without copies.

Python's tarfile in stream mode (``r|``) re-joins and re-slices its buffer on every read, which
costs more than the copy itself for a 100 MB upload; in ``r:`` mode it reads member data straight
from its file object, but wants ``seek``/``tell``. This gives it both over a stream that can only
be read forward: ``seek`` may skip ahead (the bytes are read and dropped) or stay where it is,
never go back past what is buffered.

    tarfile.open(fileobj=ForwardReader(source), mode="r:")
"""

from __future__ import annotations

import io
import os
from typing import Any

CHUNK = 1 << 20


class ForwardReader(io.RawIOBase):
    def __init__(self, source: Any) -> None:
        super().__init__()
        self.source = source  # has read(n) -> bytes, b"" at the end
        self.buf = b""  # the bytes from self.base on
        self.base = 0  # stream offset of buf[0]
        self.pos = 0
        self.eof = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            pos += self.pos
        elif whence != io.SEEK_SET:
            raise io.UnsupportedOperation("a forward-only stream has no end to seek from")
        if pos < self.base:
            raise io.UnsupportedOperation(f"a forward-only stream cannot go back to {pos} (at {self.base})")
        self.pos = pos
        return pos

    def _fill(self) -> bool:
        """More bytes into the buffer (what is behind ``pos`` is dropped); False at the end."""
        if self.eof:
            return False
        drop = min(self.pos - self.base, len(self.buf))
        if drop:
            self.buf = self.buf[drop:] if drop < len(self.buf) else b""
            self.base += drop
        data = self.source.read(CHUNK)
        if not data:
            self.eof = True
            return False
        self.buf = self.buf + data if self.buf else bytes(data)
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = 1 << 62
        parts: list[bytes] = []
        while size > 0:
            off = self.pos - self.base
            if off < len(self.buf):
                take = self.buf[off : off + size] if (off or size < len(self.buf)) else self.buf
                parts.append(take)
                self.pos += len(take)
                size -= len(take)
                continue
            if not self._fill():
                break
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)

    def write_to(self, fd: int, size: int) -> int:
        """Copy the next ``size`` bytes to ``fd`` straight from the buffer; the bytes copied
        (fewer at the end of the stream)."""
        done = 0
        while done < size:
            off = self.pos - self.base
            if off >= len(self.buf):
                if not self._fill():
                    break
                continue
            view = memoryview(self.buf)[off : off + (size - done)]
            while view:
                n = os.write(fd, view)
                view = view[n:]
                self.pos += n
                done += n
        return done

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)
