"""The logs job: json-file records out as Docker's multiplexed frames (raw for a TTY).

The reading and framing happen on the log reader's threads in blocks of about 1 MiB
(:mod:`berth.container.logreader`); here each block is written to the client, whose
back-pressure holds the reader back, and the loop is yielded between blocks.
"""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from berth.container.logreader import read_log_stream
from berth.daemon.handlers import HandlerTable
from berth.engine import Job
from berth.errors import InvalidParameter, Unimplemented
from berth.jobs import containers as jobs

if TYPE_CHECKING:
    from berth.container.record import Container
    from berth.daemon.daemon import Daemon

handlers = HandlerTable()


def _seconds(text: str, field: str) -> Decimal | None:
    """Docker sends ``seconds.nanoseconds``; a Decimal keeps the nanoseconds exact, so a
    timestamp copied from ``logs -t`` selects its own line (both bounds are inclusive)."""
    if not text or text == "0":
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        raise InvalidParameter(f"invalid value for {field}: {text!r}") from None


async def sync_logs(d: Daemon, c: Container) -> None:
    """Before the log of a running container is read: the monitor writes what the container
    wrote so far into it (``docker start X; docker logs X``; docs/decisions.md)."""
    handle = d.session(c.id).handle
    if c.state.running and handle is not None:
        await handle.sync_logs()


@handlers.on(jobs.ContainerLogs)
async def logs(d: Daemon, req: jobs.ContainerLogs, job: Job) -> None:
    c = d.find(req.id)
    if not c.logs_kept:
        raise Unimplemented("configured logging driver does not support reading")
    out = job.sink
    tail_arg = req.tail or "all"
    if tail_arg == "all":
        tail = None
    else:
        try:
            tail = int(tail_arg)
        except ValueError:
            raise InvalidParameter(f"invalid value for tail: {tail_arg!r}") from None
    since = _seconds(req.since, "since")
    until = _seconds(req.until, "until")
    follow = req.follow and c.state.running
    stop = d.session(c.id).run_done if follow else None
    await sync_logs(d, c)
    await out.start("application/vnd.docker.raw-stream" if c.tty else None)
    blocks = read_log_stream(
        c.log_path, tty=c.tty, stdout=req.want_stdout, stderr=req.want_stderr, tail=tail, since=since,
        until=until, follow=follow, timestamps=req.timestamps, stop=stop,
    )
    async with aclosing(blocks):
        async for block in blocks:
            await out.write(block)
            await asyncio.sleep(0)  # a write into a socket with room does not yield by itself


