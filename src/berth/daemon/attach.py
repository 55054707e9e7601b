"""The attach job: a client's hijacked connection bound to a container's stdio.

What dockerd does, in order (``daemon/attach.go``):

1. ``detachKeys`` is checked first (400 ``Invalid detach keys (...) provided``); a paused
   container is refused (409).
2. ``logs=1``: the container's log so far, framed like the live output (raw for a TTY), then
   the ``attach`` event. ``stream=0`` ends the attach here: the client gets the logs and EOF,
   whether or not the container runs. (``--log-driver none``: an error line in the stream.)
3. ``stream=1``: live output until the run ends (a container that is not running: until its
   next run ends, which is how ``docker start -a`` attaches before it starts). The live
   output is bound after the log was read, so the two never interleave.
4. Stdin (``stdin=1`` on a container with ``OpenStdin``): on a TTY the bytes go through the
   escape proxy (:mod:`berth.container.escape`); the detach sequence ends the attach with a
   ``detach`` event and leaves the container running. The client's EOF closes the container's
   stdin only for a ``StdinOnce`` container without a TTY (the attach then goes on until the
   exit); otherwise it ends the attach and leaves the container's stdin open, so a client
   that goes away (the docker CLI after ctrl-p ctrl-q) never makes the container read EOF.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from berth.container.escape import EscapeProxy, parse_detach_keys
from berth.container.logreader import read_log_stream
from berth.daemon.handlers import HandlerTable
from berth.daemon.live import Attacher, frame
from berth.daemon.streams import sync_logs
from berth.engine import ByteSink, ByteSource, Duplex, Job
from berth.errors import Conflict, InvalidParameter
from berth.jobs import containers as jobs

if TYPE_CHECKING:
    from berth.container.record import Container
    from berth.daemon.daemon import Daemon

handlers = HandlerTable()


StdinWriter = Callable[[bytes], Awaitable[None]]


class StdinEnd(enum.Enum):
    """Why a client's stdin stopped: what the attach (or exec) does next depends on it."""

    DETACH = "detach"  # the detach sequence: end the stream, the process goes on
    EOF = "eof"  # the client closed its side (or went away)
    SERVER = "server"  # the daemon closed the connection (shutdown): leave the process alone
    GONE = "gone"  # the process takes no more stdin (it exited): its output ends the stream


def detach_keys(text: str, what: str = "detach") -> bytes:
    """The parsed ``detachKeys``/``DetachKeys``; Docker's 400 text for a bad one."""
    try:
        return parse_detach_keys(text)
    except ValueError:
        raise InvalidParameter(f"Invalid {what} keys ({text}) provided") from None


async def pump_stdin(source: ByteSource, write: StdinWriter, keys: bytes | None) -> StdinEnd:
    """Copy a client's stdin into ``write`` until it ends; through the escape proxy if ``keys``."""
    try:
        return await _copy_stdin(source, write, EscapeProxy(keys) if keys else None)
    except Conflict:
        return StdinEnd.GONE  # the monitor said the process is not running


async def _copy_stdin(source: ByteSource, write: StdinWriter, proxy: EscapeProxy | None) -> StdinEnd:
    while True:
        data = await source.read()
        if not data:
            if proxy is not None and (held := proxy.flush()):
                await write(held)
            return StdinEnd.SERVER if getattr(source, "closed_by_server", False) else StdinEnd.EOF
        if proxy is not None:
            data, detached = proxy.feed(data)
            if data:
                await write(data)
            if detached:
                return StdinEnd.DETACH
        else:
            await write(data)


@handlers.on(jobs.ContainerAttach)
async def attach(d: Daemon, req: jobs.ContainerAttach, job: Job) -> None:
    keys = detach_keys(req.detach_keys)
    c = d.find(req.id)
    if c.state.status == "paused":
        raise Conflict(f"container {req.id} is paused, unpause the container before attach")
    conn = job.duplex
    await conn.start("application/vnd.docker.raw-stream" if c.tty else None)
    want_stdout, want_stderr = req.want_stdout, req.want_stderr
    if req.logs:
        if not c.logs_kept:
            # dockerd writes the error into the stream it has already upgraded, and ends it
            text = b"Error attaching: configured logging driver does not support reading\n"
            await conn.write(text if c.tty else frame(1, text))
            return
        await sync_logs(d, c)
        await conn.headers_read()  # data sent with the 101 is lost to docker-py (hijack.py)
        await _send_logs(c, conn, want_stdout, want_stderr)
    d.publish(c, "attach")
    if not req.stream:
        return
    await _stream(d, c, req, conn, keys, Attacher(conn, c.tty, want_stdout, want_stderr))


async def _send_logs(c: Container, conn: ByteSink, stdout: bool, stderr: bool) -> None:
    """The log so far: a frame per record (raw for a TTY), as ``GET /logs`` sends it."""
    blocks = read_log_stream(c.log_path, tty=c.tty, stdout=stdout, stderr=stderr)
    async with aclosing(blocks):
        async for block in blocks:
            try:
                await conn.write(block)
            except (ConnectionError, OSError):
                return  # the client left; the attach ends with the connection


async def _stream(
    d: Daemon, c: Container, req: jobs.ContainerAttach, conn: Duplex, keys: bytes, attacher: Attacher
) -> None:
    session = d.session(c.id)
    session.attachers.add(attacher)
    run_done = session.run_done
    if not c.state.running and run_done.is_set():
        run_done = asyncio.Event()
        session.run_done = run_done
    waits: set[asyncio.Future[Any]] = {
        asyncio.ensure_future(conn.gone.wait()),
        asyncio.ensure_future(run_done.wait()),
    }
    stdin_task = None
    if req.want_stdin and c.config.get("OpenStdin"):
        stdin_task = asyncio.ensure_future(pump_stdin(conn, session.write_stdin, keys if c.tty else None))
        waits.add(stdin_task)
    try:
        while waits:
            finished, waits = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if stdin_task is None or stdin_task not in finished:
                return  # the client went away, or the run ended
            end = stdin_task.result()
            if end is StdinEnd.DETACH:
                d.publish(c, "detach")
                return
            if end is StdinEnd.EOF and c.config.get("StdinOnce") and not c.tty:
                try:
                    await session.close_stdin()
                except Conflict:
                    pass  # the process is gone already: the end of its run ends the stream
                continue  # `docker run -i`: the output goes on until the exit
            if end is StdinEnd.GONE:
                continue
            return
    finally:
        for t in waits:
            t.cancel()
        session.attachers.discard(attacher)


