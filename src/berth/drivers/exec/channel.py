"""One asyncio connection from the daemon to a container's monitor.

A background task reads frames: stdout/stderr go to every live :class:`OutputStream`, control
events resolve the pending request with the same ``req`` or end the channel (``exit``). Requests
are JSON control frames ``{"op": ..., "req": N}`` answered by ``{"event": "reply", "req": N,
"error": "", "kind": ""}``; a non-empty error becomes the matching :mod:`berth.errors` class.

Output streams are held weakly: a stream nobody holds any more stops receiving (and stops
holding back the container). A stream with a ``limit`` applies backpressure: the reader waits
while it holds that many frames, so the monitor, then the container, wait for a slow consumer.

    stream = channel.subscribe(limit=256)
    async for kind, data in stream: ...          # ends when the connection ends
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from typing import Any

from berth.errors import Conflict, ContainerStartError, InvalidParameter, SystemFailure
from berth.shim import protocol as P

_ERRORS = {"conflict": Conflict, "invalid": InvalidParameter}


class OutputStream:
    """Frames ``(1|2, bytes)`` of one subscriber; iterate it, or ``close()`` it to stop."""

    def __init__(self, channel: MonitorChannel, limit: int) -> None:
        self.limit = limit
        self._items: deque[tuple[int, bytes]] = deque()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._ended = False
        self._closed = False
        self._channel = channel
        channel.subs.add(self)
        if channel.closed or channel.exit_event is not None:
            self._ended = True  # subscribed after the last frame

    async def put(self, item: tuple[int, bytes]) -> None:
        while self.limit and len(self._items) >= self.limit and not self._closed:
            self._room.clear()
            await self._room.wait()
        if not self._closed:
            self._items.append(item)
            self._wake.set()

    def end(self) -> None:
        self._ended = True
        self._wake.set()

    def close(self) -> None:
        self._closed = True
        self._items.clear()
        self._room.set()
        self._channel.subs.discard(self)
        self.end()

    async def aclose(self) -> None:
        self.close()

    def __aiter__(self) -> OutputStream:
        return self

    async def __anext__(self) -> tuple[int, bytes]:
        while not self._items:
            if self._ended:
                raise StopAsyncIteration
            self._wake.clear()
            await self._wake.wait()
        item = self._items.popleft()
        self._room.set()
        return item


class MonitorChannel:
    """A connection to a monitor after its first (hello) answer was read."""

    def __init__(self, what: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.what = what  # "container <id>" or "exec <pid> in container <id>", for messages
        self.reader = reader
        self.writer = writer
        self.subs: weakref.WeakSet[OutputStream] = weakref.WeakSet()
        self.closed = False
        self.exit_event: dict[str, Any] | None = None
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_req = 0
        loop = asyncio.get_running_loop()
        # exited: the exit event (or None at EOF without one); done: the connection's EOF (the
        # monitor closes its connections after its teardown: cgroup removed, socket gone)
        self.exited: asyncio.Future[dict[str, Any] | None] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        self._task: asyncio.Task[None] | None = None

    def begin(self) -> None:
        """Start reading frames (after the hello answer was taken off the stream)."""
        self._task = asyncio.create_task(self._pump(), name=f"monitor channel: {self.what}")

    def subscribe(self, limit: int) -> OutputStream:
        return OutputStream(self, limit)

    async def _pump(self) -> None:
        try:
            while True:
                frame = await P.read_frame(self.reader)
                if frame is None:
                    break
                kind, payload = frame
                if kind in (P.STDOUT, P.STDERR):
                    for sub in list(self.subs):
                        await sub.put((kind, payload))
                elif kind == P.CONTROL:
                    self._on_event(P.decode_json(payload))
        except (P.ProtocolError, ConnectionError, OSError):
            pass  # a broken connection ends the channel like EOF; wait() falls back to exit.json
        finally:
            self._end()

    def _on_event(self, ev: dict[str, Any]) -> None:
        if ev.get("event") == "reply":
            fut = self._replies.pop(ev.get("req", -1), None)
            if fut is not None and not fut.done():
                fut.set_result(ev)
        elif ev.get("event") == "exit":
            self.exit_event = ev
            for sub in list(self.subs):
                sub.end()  # the exit event follows the last output frame
            if not self.exited.done():
                self.exited.set_result(ev)

    def _end(self) -> None:
        self.closed = True
        for sub in list(self.subs):
            sub.end()
        for fut in self._replies.values():
            if not fut.done():
                fut.set_exception(Conflict(f"{self.what} is not running"))
        self._replies.clear()
        self.writer.close()
        if not self.exited.done():
            self.exited.set_result(self.exit_event)
        if not self.done.done():
            self.done.set_result(None)

    async def send(self, kind: int, payload: bytes = b"") -> None:
        if self.closed:
            raise Conflict(f"{self.what} is not running")
        try:
            await P.write_frame(self.writer, kind, payload)
        except (ConnectionError, OSError) as exc:
            raise Conflict(f"{self.what} is not running: {exc}") from exc

    async def request(self, op: str, **args: Any) -> None:
        """Send one control op and wait for its reply; errors become berth errors."""
        self._next_req += 1
        req = self._next_req
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[req] = fut
        try:
            await self.send(P.CONTROL, P.encode_json({"op": op, "req": req, **args})[P.HEADER.size :])
        except BaseException:
            self._replies.pop(req, None)
            raise
        reply = await fut
        if reply.get("error"):
            kind = str(reply.get("kind", ""))
            if kind.startswith("start:"):  # the process could not be exec'd: 127/126
                raise ContainerStartError(str(reply["error"]), int(kind[6:]))
            raise _ERRORS.get(kind, SystemFailure)(str(reply["error"]))

    async def close(self) -> None:
        """Drop the connection (the container goes on once started) and stop the reader."""
        self.writer.close()
        if self._task is not None:
            await asyncio.wait([self._task])
        else:
            self._end()


class ControlLine:
    """Requests to the monitor on a connection of their own (opened on first use, or ahead of
    it with ``open_soon``: a start right after create then finds it ready).

    Stdin can back up on the attach connection (a process that does not read it); a stop or a
    resize must not wait behind it, so requests never share that connection.
    """

    def __init__(self, what: str, connect: Any, hello_msg: dict[str, Any]) -> None:
        self.what = what
        self._connect = connect  # async () -> (reader, writer) on monitor.sock
        self._hello = hello_msg
        self._channel: MonitorChannel | None = None
        self._lock = asyncio.Lock()
        self._opening: asyncio.Task[None] | None = None

    def open_soon(self) -> None:
        if self._opening is None:
            self._opening = asyncio.create_task(self._open_quietly(), name=f"control line: {self.what}")

    async def _open_quietly(self) -> None:
        try:
            async with self._lock:
                await self._open()
        except Conflict:
            pass  # the request that follows meets the same and says so

    async def _open(self) -> MonitorChannel:
        if self._channel is None or self._channel.closed:
            try:
                reader, writer = await self._connect()
            except (FileNotFoundError, ConnectionError) as exc:
                raise Conflict(f"{self.what} is not running") from exc
            writer.write(P.encode_json(self._hello))
            self._channel = MonitorChannel(self.what, reader, writer)
            self._channel.begin()
        return self._channel

    async def request(self, op: str, **args: Any) -> None:
        async with self._lock:
            channel = await self._open()
        await channel.request(op, **args)

    async def close(self) -> None:
        if self._opening is not None:
            self._opening.cancel()
            await asyncio.gather(self._opening, return_exceptions=True)
        if self._channel is not None:
            await self._channel.close()


async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, msg: dict[str, Any]) -> dict[str, Any] | None:
    """Send a hello and return the monitor's first control event (None at EOF).

    An error frame (the monitor refused the hello) comes back as ``{"event": "refused",
    "message": text}``.
    """
    writer.write(P.encode_json(msg))
    await writer.drain()
    return await first_event(reader)


async def first_event(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The monitor's first control event after a hello (None at EOF; see :func:`hello`)."""
    while True:
        frame = await P.read_frame(reader)
        if frame is None:
            return None
        if frame[0] == P.CONTROL:
            return P.decode_json(frame[1])
        if frame[0] == P.ERROR:
            return {"event": "refused", "message": frame[1].decode("utf-8", "replace")}
