"""What the daemon holds for a container between attach/start and exit: the Session.

Docker clients attach *before* they start a container (create → attach → wait → start), and
may send stdin before the process exists. A Session therefore exists from the first attach or
start: it keeps the attached streams, buffers early stdin, and once started, the monitor
handle, whose output the pump fans out to every attached stream.

    s = d.session(cid)           # created on demand
    s.attachers.add(Attacher(conn, tty=False, stdout=True, stderr=True))
    s.started(handle)            # pump output, flush buffered stdin
    await s.run_done.wait()      # the process exited and its output is drained
"""

from __future__ import annotations

import asyncio
import struct
from typing import TYPE_CHECKING

from berth.engine import ByteSink

if TYPE_CHECKING:
    from berth.drivers.exec.driver import ContainerHandle


def frame(stream: int, data: bytes) -> bytes:
    """Docker's 8-byte multiplexing header: stream, 0, 0, 0, big-endian length."""
    return struct.pack(">BxxxI", stream, len(data)) + data


class Attacher:
    """One attached client: writes framed (or raw, for a TTY) output into its connection."""

    def __init__(self, sink: ByteSink, tty: bool, stdout: bool = True, stderr: bool = True) -> None:
        self.sink = sink
        self.tty = tty
        self.want = {1: stdout, 2: stderr}
        self.dead = False

    async def send(self, stream: int, data: bytes) -> None:
        if self.dead or not self.want.get(stream, True):
            return
        try:
            await self.sink.write(data if self.tty else frame(stream, data))
        except (ConnectionError, OSError, RuntimeError):
            self.dead = True  # the client went away; the container goes on


class Session:
    def __init__(self) -> None:
        self.handle: ContainerHandle | None = None
        self.attachers: set[Attacher] = set()
        self.stdin_buffer: list[bytes] = []
        self.stdin_eof = False
        self.run_done = asyncio.Event()
        self.pump: asyncio.Task[None] | None = None

    async def write_stdin(self, data: bytes) -> None:
        if self.handle is None:
            self.stdin_buffer.append(data)
        else:
            await self.handle.write_stdin(data)

    async def close_stdin(self) -> None:
        if self.handle is None:
            self.stdin_eof = True
        else:
            await self.handle.close_stdin()

    async def started(self, handle: ContainerHandle) -> None:
        """Bind the monitor handle: start pumping output, deliver buffered stdin."""
        self.handle = handle
        self.run_done = asyncio.Event() if self.run_done.is_set() else self.run_done
        self.pump = asyncio.ensure_future(self._pump(handle))
        for chunk in self.stdin_buffer:
            await handle.write_stdin(chunk)
        self.stdin_buffer.clear()
        if self.stdin_eof:
            await handle.close_stdin()
            self.stdin_eof = False

    async def _pump(self, handle: ContainerHandle) -> None:
        async for stream, data in handle.output():
            for attacher in list(self.attachers):
                await attacher.send(stream, data)
                if attacher.dead:
                    self.attachers.discard(attacher)

    async def drained(self) -> None:
        """Wait until the output of the current run has reached every attacher."""
        if self.pump is not None:
            try:
                await self.pump
            except (ConnectionError, OSError, EOFError):
                pass  # the monitor connection broke: the exit status still comes from exit.json

    def finish_run(self) -> None:
        self.handle = None
        self.pump = None
        self.run_done.set()

    def detach(self) -> None:
        """Daemon shutdown: stop pumping, leave the container running."""
        if self.pump is not None:
            self.pump.cancel()

