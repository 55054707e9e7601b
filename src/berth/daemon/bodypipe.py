"""A request body read as a file by a worker thread, while the event loop still receives it.

The model: ``docker load`` sends a few hundred MB; spooling it to a file first writes and reads
it all once more before the archive is even opened. :func:`consume` instead runs ``work(reader)``
in a thread and feeds it the body as it arrives: what the loop received at once, as it is (not
joined again), handed over in lists of about :data:`PIECE` bytes (a wakeup of the thread per MiB,
not per read); at most :data:`DEPTH` lists wait, so a slow reader holds the client back (TCP's own
flow control) instead of filling memory. If ``work`` stops early (a refused archive), the rest
of the body is not read; if the body breaks, the reader gets the error::

    lines = await consume(job.source, lambda f: graph.load(f))
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

from berth.errors import InvalidParameter

PIECE = 1 << 20
MIN_PIECE = 64 << 10  # smaller reads are joined: a reader pays per piece, a trickle must not cost more
DEPTH = 8
_WAIT = 0.2

T = TypeVar("T")


class Source(Protocol):
    async def read(self) -> bytes: ...


class _Broken:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class BodyReader:
    """The thread's side: ``read(n)`` blocks until the loop has handed over bytes, b"" at the end."""

    def __init__(self) -> None:
        self._pieces: queue.Queue[list[bytes] | _Broken | None] = queue.Queue(DEPTH)
        self._next: list[bytes] = []  # pieces of the list taken from the queue, last first
        self._current = b""
        self._pos = 0
        self._eof = False
        self.stopped = threading.Event()  # the reader is done (finished or failed)
        self.abandoned = threading.Event()  # the loop's side is gone (the job was cancelled)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while chunk := self.read(PIECE):
                parts.append(chunk)
            return b"".join(parts)
        while self._pos >= len(self._current):
            if self._next:
                self._current, self._pos = self._next.pop(), 0
                continue
            if self._eof:
                return b""
            try:
                item = self._pieces.get(timeout=_WAIT)
            except queue.Empty:
                if self.abandoned.is_set():
                    raise InvalidParameter("read the request body: the request was cancelled") from None
                continue
            if item is None:
                self._eof = True
                return b""
            if isinstance(item, _Broken):
                self._eof = True
                raise InvalidParameter(f"read the request body: {item.exc or type(item.exc).__name__}")
            self._next = item[::-1]
        if self._pos == 0 and size >= len(self._current):
            data, self._current = self._current, b""
            return data
        data = self._current[self._pos : self._pos + size]
        self._pos += len(data)
        return data

    def offer(self, item: list[bytes] | _Broken | None) -> bool:
        """Hand over a piece if there is room, without waiting (from the loop)."""
        try:
            self._pieces.put_nowait(item)
            return True
        except queue.Full:
            return False

    def put(self, item: list[bytes] | _Broken | None) -> bool:
        """Hand over a piece (from a worker thread: it may wait); False once the reader stopped."""
        while not self.stopped.is_set():
            try:
                self._pieces.put(item, timeout=_WAIT)
                return True
            except queue.Full:
                continue
        return False


async def consume(source: Source, work: Callable[[BodyReader], T]) -> T:
    """``work(reader)`` in a thread over the body of ``source``; its result or its error."""
    reader = BodyReader()

    def run() -> T:
        try:
            return work(reader)
        finally:
            reader.stopped.set()

    task = asyncio.ensure_future(asyncio.to_thread(run))
    try:
        pieces: list[bytes] = []
        pending = 0
        small: list[bytes] = []
        small_size = 0
        while not reader.stopped.is_set():
            try:
                chunk = await source.read()
            except Exception as exc:  # the client's connection broke: the reader raises it
                await asyncio.to_thread(reader.put, _Broken(exc))
                break
            if chunk and len(chunk) < MIN_PIECE:
                small.append(chunk)
                small_size += len(chunk)
            if small and (not chunk or small_size >= MIN_PIECE or len(chunk) >= MIN_PIECE):
                pieces.append(b"".join(small))
                pending += small_size
                small, small_size = [], 0
            if len(chunk) >= MIN_PIECE:
                pieces.append(chunk)
                pending += len(chunk)
            if pieces and (not chunk or pending >= PIECE):
                data, pieces, pending = pieces, [], 0
                # a thread to wait in only when the queue is full (a slow reader)
                if not reader.offer(data) and not await asyncio.to_thread(reader.put, data):
                    break
            if not chunk:
                if not reader.offer(None):
                    await asyncio.to_thread(reader.put, None)
                break
    except BaseException:
        reader.abandoned.set()  # cancelled: the thread's next read fails instead of waiting
        raise
    return await task
