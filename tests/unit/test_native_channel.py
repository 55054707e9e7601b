"""The daemon's side of a monitor connection, against a scripted fake monitor on a socketpair."""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import Awaitable, Callable

import pytest

from berth.drivers.exec.channel import MonitorChannel
from berth.errors import Conflict, ContainerStartError, InvalidParameter, SystemFailure
from berth.shim import protocol as P


def with_channel(body: Callable[[MonitorChannel, socket.socket], Awaitable[None]]) -> None:
    async def scenario() -> None:
        ours, theirs = socket.socketpair()
        theirs.setblocking(True)
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        channel = MonitorChannel("container t", reader, writer)
        channel.begin()
        try:
            await body(channel, theirs)
        finally:
            theirs.close()
            await channel.close()

    asyncio.run(asyncio.wait_for(scenario(), 10))


def read_request(peer: socket.socket) -> dict:
    dec = P.FrameDecoder()
    while True:
        frames = dec.feed(peer.recv(65536))
        if frames:
            return P.decode_json(frames[0][1])


def test_frames_reach_every_subscriber_and_end_at_exit() -> None:
    async def body(ch: MonitorChannel, peer: socket.socket) -> None:
        a, b = ch.subscribe(0), ch.subscribe(0)
        peer.sendall(P.encode(P.STDOUT, b"one") + P.encode(P.STDERR, b"two")
                     + P.encode_json({"event": "exit", "exit_code": 3}))
        assert [x async for x in a] == [(1, b"one"), (2, b"two")]
        assert [x async for x in b] == [(1, b"one"), (2, b"two")]
        assert (await ch.exited)["exit_code"] == 3
        late = ch.subscribe(0)
        assert [x async for x in late] == []  # subscribed after the end
        peer.close()
        await ch.done

    with_channel(body)


def test_a_dropped_stream_stops_receiving_and_holding_back() -> None:
    async def body(ch: MonitorChannel, peer: socket.socket) -> None:
        keep = ch.subscribe(2)
        ch.subscribe(1)  # not held by anyone: gone at once
        gc.collect()
        assert len(ch.subs) == 1
        peer.sendall(b"".join(P.encode(P.STDOUT, bytes([i])) for i in range(5)))
        got = []
        async for item in keep:
            got.append(item[1])
            if len(got) == 5:
                break
        assert got == [bytes([i]) for i in range(5)]

    with_channel(body)


def test_a_full_stream_holds_the_reader_back() -> None:
    async def body(ch: MonitorChannel, peer: socket.socket) -> None:
        slow = ch.subscribe(2)
        peer.sendall(b"".join(P.encode(P.STDOUT, b"x") for _ in range(5)) + P.encode_json({"event": "exit"}))
        await asyncio.sleep(0.05)
        assert not ch.exited.done()  # the reader waits for room before it reads the exit
        assert len([x async for x in slow]) == 5
        assert ch.exited.done()

    with_channel(body)


def test_replies_map_to_berth_errors() -> None:
    async def body(ch: MonitorChannel, peer: socket.socket) -> None:
        for kind, error_cls, code in (("", None, None), ("conflict", Conflict, None),
                                      ("invalid", InvalidParameter, None), ("system", SystemFailure, None),
                                      ("start:127", ContainerStartError, 127)):
            task = asyncio.create_task(ch.request("signal", signal=9))
            req = await asyncio.to_thread(read_request, peer)
            assert req["op"] == "signal" and req["signal"] == 9
            error = "" if error_cls is None else "text"
            peer.sendall(P.encode_json({"event": "reply", "req": req["req"], "error": error, "kind": kind}))
            if error_cls is None:
                await task
            else:
                with pytest.raises(error_cls) as info:
                    await task
                if code is not None:
                    assert info.value.exit_code == code  # type: ignore[attr-defined]

    with_channel(body)


def test_eof_fails_pending_requests_and_resolves_exited_without_an_event() -> None:
    async def body(ch: MonitorChannel, peer: socket.socket) -> None:
        task = asyncio.create_task(ch.request("pause"))
        await asyncio.to_thread(read_request, peer)
        peer.close()
        with pytest.raises(Conflict, match="container t is not running"):
            await task
        assert await ch.exited is None
        with pytest.raises(Conflict):
            await ch.send(P.STDIN, b"x")

    with_channel(body)
