"""The monitor's frame codec: Docker's 8-byte header, sync incremental and asyncio halves."""

from __future__ import annotations

import asyncio

import pytest

from berth.shim import protocol as P


def test_encode_is_dockers_multiplexing_header() -> None:
    assert P.encode(P.STDERR, b"err\n") == b"\x02\x00\x00\x00\x00\x00\x00\x04err\n"
    assert P.encode(P.STDIN_EOF) == b"\x05\x00\x00\x00\x00\x00\x00\x00"
    assert P.encode_json({"op": "start"}) == b"\x04\x00\x00\x00\x00\x00\x00\x0e" + b'{"op":"start"}'


def test_decoder_reassembles_frames_split_anywhere() -> None:
    stream = (
        P.encode(P.STDOUT, b"hello") + P.encode_json({"op": "resize", "h": 1, "w": 2}) + P.encode(P.STDIN_EOF)
    )
    for step in (1, 3, 8, 9, len(stream)):
        dec = P.FrameDecoder()
        frames = []
        for i in range(0, len(stream), step):
            frames += dec.feed(stream[i : i + step])
        assert frames == [(1, b"hello"), (4, b'{"op":"resize","h":1,"w":2}'), (5, b"")]
        assert dec.pending == 0


def test_decoder_holds_back_an_incomplete_frame() -> None:
    dec = P.FrameDecoder()
    assert dec.feed(P.encode(P.STDOUT, b"abcdef")[:10]) == []
    assert dec.pending == 10


def test_decoder_rejects_garbage() -> None:
    with pytest.raises(P.ProtocolError):
        P.FrameDecoder().feed(b"\x09\x00\x00\x00\x00\x00\x00\x01x")
    with pytest.raises(P.ProtocolError):
        P.FrameDecoder().feed(b"\x01\x00\x00\x00\xff\xff\xff\xff")


def test_decode_json_wants_an_object() -> None:
    assert P.decode_json(b'{"a":1}') == {"a": 1}
    with pytest.raises(P.ProtocolError):
        P.decode_json(b"[1]")
    with pytest.raises(P.ProtocolError):
        P.decode_json(b"{nope")


def test_async_read_and_write() -> None:
    async def scenario() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(P.encode(P.STDOUT, b"x") + P.encode(P.CONTROL, b"{}"))
        reader.feed_eof()
        assert await P.read_frame(reader) == (1, b"x")
        assert await P.read_frame(reader) == (4, b"{}")
        assert await P.read_frame(reader) is None
        broken = asyncio.StreamReader()
        broken.feed_data(P.encode(P.STDOUT, b"abc")[:9])
        broken.feed_eof()
        with pytest.raises(P.ProtocolError):
            await P.read_frame(broken)
        half_header = asyncio.StreamReader()
        half_header.feed_data(b"\x01\x00")
        half_header.feed_eof()
        with pytest.raises(P.ProtocolError):
            await P.read_frame(half_header)

    asyncio.run(scenario())
