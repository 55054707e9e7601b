"""A request body read by a worker thread as it arrives (berth.daemon.bodypipe)."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from berth.daemon.bodypipe import BodyReader, consume
from berth.errors import InvalidParameter


class Source:
    """An HTTP body in pieces of ``step`` bytes; it may break after ``break_at`` bytes."""

    def __init__(self, data: bytes, step: int, break_at: int | None = None) -> None:
        self.data, self.step, self.break_at, self.pos, self.reads = data, step, break_at, 0, 0

    async def read(self) -> bytes:
        self.reads += 1
        if self.break_at is not None and self.pos >= self.break_at:
            raise ConnectionResetError("the client went away")
        out = self.data[self.pos : self.pos + self.step]
        self.pos += len(out)
        await asyncio.sleep(0)
        return out


DATA = os.urandom(5_000_000)


def drain(f: BodyReader, size: int) -> str:
    h = hashlib.sha256()
    while chunk := f.read(size):
        h.update(chunk)
    return h.hexdigest()


@pytest.mark.parametrize("size", [1, 10240, 1 << 20, 3 << 20])
def test_the_reader_gets_every_byte_in_order(size: int) -> None:
    data = DATA[: 200_000] if size == 1 else DATA
    got = asyncio.run(consume(Source(data, 65536), lambda f: drain(f, size)))
    assert got == hashlib.sha256(data).hexdigest()


def test_a_reader_that_stops_early_ends_the_reading_of_the_body() -> None:
    source = Source(DATA * 20, 65536)

    def refuse(f: BodyReader) -> None:
        f.read(1000)
        raise InvalidParameter("load: not an archive")

    with pytest.raises(InvalidParameter, match="not an archive"):
        asyncio.run(consume(source, refuse))
    assert source.pos < len(DATA) * 20 // 2  # not read to the end


def test_a_broken_body_is_an_error_in_the_reader() -> None:
    with pytest.raises(InvalidParameter, match="the client went away"):
        asyncio.run(consume(Source(DATA, 65536, break_at=2_000_000), lambda f: drain(f, 1 << 20)))


@pytest.mark.parametrize("step", [1000, 65536, 200_000, 3 << 20])
def test_reads_as_received_small_ones_gathered(step: int) -> None:
    """What the loop received at once reaches the reader as it is; reads under 64 KiB are
    joined first, so a body sent a few bytes at a time costs the reader no more per byte."""
    data = DATA[:3_000_000] + b"end"
    sizes: list[int] = []

    def work(f: BodyReader) -> bytes:
        parts = []
        while chunk := f.read(1 << 22):
            sizes.append(len(chunk))
            parts.append(chunk)
        return b"".join(parts)

    assert asyncio.run(consume(Source(data, step), work)) == data
    assert all(size >= 65536 for size in sizes[:-1])
    if step >= 65536:
        assert all(size == step for size in sizes[:-1])  # not joined again
