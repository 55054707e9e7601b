"""The zlib-backed gzip reader (berth.drivers.graph.gunzip) behaves as Python's GzipFile."""

from __future__ import annotations

import gzip
import io
import os
import struct
import zlib

import pytest

from berth.drivers.graph.gunzip import GunzipReader

DATA = os.urandom(3_000_000) + b"a" * 5_000_000
GZ = gzip.compress(DATA, 1)


def read_all(blob: bytes, size: int = 1 << 20) -> bytes:
    reader = GunzipReader(io.BytesIO(blob))  # type: ignore[arg-type]
    out = []
    while chunk := reader.read(size):
        assert len(chunk) <= size
        out.append(chunk)
    return b"".join(out)


@pytest.mark.parametrize("size", [777, 10240, 1 << 20, 5 << 20])
def test_reads_of_any_size(size: int) -> None:
    assert read_all(GZ, size) == DATA


def test_members_in_a_row_and_zero_padding_as_gzipfile() -> None:
    for blob in (GZ + GZ, GZ + b"\0" * 100, GZ + b"\0" * 100 + GZ):
        assert read_all(blob) == gzip.decompress(blob)
    assert GunzipReader(io.BytesIO(GZ)).read() == DATA  # type: ignore[arg-type]


def test_header_fields_and_header_crc() -> None:
    body = zlib.compressobj(6, zlib.DEFLATED, -15)
    raw = body.compress(b"hello" * 1000) + body.flush()
    head = b"\x1f\x8b\x08\x1e\0\0\0\0\0\xff" + struct.pack("<H", 3) + b"abc" + b"name\0" + b"comment\0"
    head += struct.pack("<H", zlib.crc32(head) & 0xFFFF)
    blob = head + raw + struct.pack("<II", zlib.crc32(b"hello" * 1000), 5000)
    assert read_all(blob) == b"hello" * 1000 == gzip.decompress(blob)


@pytest.mark.parametrize("blob", [GZ[:-4], GZ[:100], GZ[:-1]], ids=["no-length", "cut", "cut-1"])
def test_a_cut_stream_is_an_eof_error(blob: bytes) -> None:
    with pytest.raises(EOFError):
        read_all(blob)


@pytest.mark.parametrize(
    "blob",
    [GZ + b"junk", GZ[:50] + b"\xff" * 100 + GZ[150:], GZ[:-8] + b"\0\0\0\0" + GZ[-4:], GZ[:-4] + b"\1\0\0\0"],
    ids=["trailing-junk", "corrupt-data", "bad-crc", "bad-length"],
)
def test_corruption_is_a_bad_gzip_file(blob: bytes) -> None:
    with pytest.raises(gzip.BadGzipFile):
        read_all(blob)


def test_a_bomb_comes_out_a_bounded_piece_at_a_time() -> None:
    bomb = gzip.compress(b"\0" * (64 << 20), 9)
    reader = GunzipReader(io.BytesIO(bomb))  # type: ignore[arg-type]
    assert len(reader.read(10)) == 10
    assert len(reader._out) <= 1 << 20  # what one decompress call may produce
