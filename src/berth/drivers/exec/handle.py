"""The daemon's grip on a running container (:class:`MonitorHandle`) and on one exec
(:class:`ExecHandle`), through the container's monitor: the native driver's implementations of
:class:`~berth.drivers.exec.driver.ContainerHandle` and :class:`~berth.drivers.exec.driver.ExecProcess`.

A MonitorHandle is one attach connection to the container's monitor. ``output()`` subscribes at call
time (subscribe before ``start()`` to see everything; frames that arrive while nobody is
subscribed are only in the log); each stream ends at the container's exit. ``wait()`` returns
the exit status from the monitor's exit event, or from ``exit.json`` if the connection broke.

    handle = await driver.create(req)
    out = handle.output()
    await handle.start()
    async for stream, data in out: ...
    status = await handle.wait()

An ExecHandle buffers its process's output from the first byte until ``output()`` is called
(once); calling ``wait()`` without having taken ``output()`` discards it (``docker exec -d``).
"""

from __future__ import annotations

import asyncio
import json
import signal as _signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from berth.container.logs import format_time
from berth.drivers.exec.channel import ControlLine, MonitorChannel, OutputStream, hello
from berth.drivers.exec.model import ExitStatus
from berth.errors import Conflict, ContainerStartError, InvalidParameter, SystemFailure
from berth.shim import protocol as P

STREAM_LIMIT = 64  # frames (<= 32 KiB each) a subscriber may hold before the container is made to wait


def read_exit_file(exec_dir: Path, cid: str) -> ExitStatus:
    """The status the monitor recorded, or exit 255 when it recorded none."""
    import time

    try:
        return ExitStatus.from_json(json.loads((exec_dir / "exit.json").read_text()))
    except FileNotFoundError:
        return ExitStatus(255, False, format_time(time.time_ns()),
                          f"monitor of container {cid} exited without recording an exit status")
    except (ValueError, KeyError, TypeError) as exc:
        return ExitStatus(255, False, format_time(time.time_ns()),
                          f"read exit status of container {cid}: {exc}")


class MonitorHandle:
    """A created or running container, seen through its monitor."""

    def __init__(self, cid: str, exec_dir: Path, channel: MonitorChannel, pid: int, monitor_pid: int,
                 started: bool, connect: Any, paused: bool = False, started_at: str = "") -> None:
        self.id = cid
        self.pid = pid
        self.monitor_pid = monitor_pid
        self.started = started
        self.paused = paused  # as the monitor saw it at attach (reconnect), then as set by pause()
        self.started_at = started_at  # RFC3339Nano, from the monitor at reconnect
        self._dir = exec_dir
        self._channel = channel  # output, stdin and the exit event
        self._connect = connect  # async () -> (reader, writer) on monitor.sock
        self._control = ControlLine(f"container {cid}", connect, {"op": "control"})
        self.on_started: Callable[[], None] | None = None  # the driver's: called once started

    def prepare(self) -> None:
        """Open the request connection now, so that ``start()`` does not wait for it."""
        self._control.open_soon()

    def output(self) -> OutputStream:
        """A new subscription to the container's stdout (1) / stderr (2) frames."""
        return self._channel.subscribe(STREAM_LIMIT)

    async def start(self) -> None:
        await self._control.request("start")
        self.started = True
        if self.on_started is not None:
            self.on_started()

    async def write_stdin(self, data: bytes) -> None:
        if data:
            await self._channel.send(P.STDIN, data)

    async def close_stdin(self) -> None:
        await self._channel.send(P.STDIN_EOF)

    async def resize(self, h: int, w: int) -> None:
        await self._control.request("resize", h=h, w=w)

    async def signal(self, signum: int = _signal.SIGKILL) -> None:
        await self._control.request("signal", signal=int(signum))

    async def pause(self) -> None:
        await self._control.request("pause")
        self.paused = True

    async def resume(self) -> None:
        await self._control.request("resume")
        self.paused = False

    async def sync_logs(self) -> None:
        """Returns once what the container wrote so far is in its log (the monitor reads its
        pipes at once): ``docker start X; docker logs X`` sees output written before the logs
        request came. A monitor that does not know the op (an older one) is not waited for."""
        try:
            await self._control.request("sync")
        except (Conflict, InvalidParameter):
            pass  # not running any more (its log is complete at exit), or an older monitor

    async def wait(self) -> ExitStatus:
        ev = await asyncio.shield(self._channel.exited)
        if ev is not None:
            return ExitStatus.from_json(ev)
        return read_exit_file(self._dir, self.id)

    def exited(self) -> bool:
        return self._channel.exited.done()

    async def closed(self) -> None:
        """Wait until the monitor closed the connection (after its teardown, or it died)."""
        await asyncio.shield(self._channel.done)

    async def close(self) -> None:
        """Let go of the container without touching it (daemon shutdown; before start it dies)."""
        await self._control.close()
        await self._channel.close()

    async def exec(self, process: dict[str, Any], open_stdin: bool = False) -> ExecHandle:
        """Run ``process`` (an OCI process object) in the container.

        ``open_stdin`` gives it a stdin pipe fed by ``write_stdin`` (``docker exec -i``);
        without it stdin is /dev/null. Start failures raise ContainerStartError (126/127).
        """
        if self._channel.closed:
            raise Conflict(f"container {self.id} is not running")
        try:
            reader, writer = await self._connect()
            ev = await hello(reader, writer, {"op": "exec", "process": process, "stdin": open_stdin})
        except (FileNotFoundError, ConnectionError) as exc:
            raise Conflict(f"container {self.id} is not running") from exc
        if ev is None:
            writer.close()
            raise Conflict(f"container {self.id} is not running")
        if ev.get("event") == "error":
            writer.close()
            raise ContainerStartError(str(ev.get("message")), int(ev.get("exit_code", 126)))
        if ev.get("event") == "refused":
            writer.close()
            raise InvalidParameter(f"exec in container {self.id}: {ev.get('message')}")
        if ev.get("event") != "started":
            writer.close()
            raise SystemFailure(f"exec in container {self.id}: unexpected answer from the monitor: {ev}")
        pid = int(ev["pid"])
        what = f"exec {pid} in container {self.id}"
        channel = MonitorChannel(what, reader, writer)
        ex = ExecHandle(pid, channel, ControlLine(what, self._connect, {"op": "control", "pid": pid}))
        channel.begin()
        return ex


class ExecHandle:
    """One process exec'd into a running container."""

    def __init__(self, pid: int, channel: MonitorChannel, control: ControlLine) -> None:
        self.pid = pid
        self._channel = channel
        self._control = control
        # held strongly until output() hands it out or wait() drops it
        self._pending: OutputStream | None = channel.subscribe(0)

    def output(self) -> OutputStream:
        """The process's frames from its first byte; callable once."""
        if self._pending is None:
            raise Conflict(f"exec {self.pid}: output was already taken or discarded")
        stream, self._pending = self._pending, None
        stream.limit = STREAM_LIMIT
        return stream

    async def write_stdin(self, data: bytes) -> None:
        if data:
            await self._channel.send(P.STDIN, data)

    async def close_stdin(self) -> None:
        await self._channel.send(P.STDIN_EOF)

    async def resize(self, h: int, w: int) -> None:
        await self._control.request("resize", h=h, w=w)

    async def signal(self, signum: int) -> None:
        await self._control.request("signal", signal=int(signum))

    async def wait(self) -> int:
        if self._pending is not None:
            self._pending.close()
            self._pending = None
        ev = await asyncio.shield(self._channel.exited)
        await self._control.close()  # the monitor keeps a control connection until it is closed
        return int(ev["exit_code"]) if ev is not None else 255
