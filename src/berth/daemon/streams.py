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
from berth.engine import Job
from berth.errors import InvalidParameter, Unimplemented

if TYPE_CHECKING:
    from berth.daemon.daemon import Daemon


def _seconds(text: str, field: str) -> Decimal | None:
    """Docker sends ``seconds.nanoseconds``; a Decimal keeps the nanoseconds exact, so a
    timestamp copied from ``logs -t`` selects its own line (both bounds are inclusive)."""
    if not text or text == "0":
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        raise InvalidParameter(f"invalid value for {field}: {text!r}") from None


async def logs(d: Daemon, job: Job) -> None:
    c = d.find(job.args["id"])
    if not c.logs_kept:
        raise Unimplemented("configured logging driver does not support reading")
    out = job.stdout
    assert out is not None
    tail_arg = str(job.args.get("tail") or "all")
    if tail_arg == "all":
        tail = None
    else:
        try:
            tail = int(tail_arg)
        except ValueError:
            raise InvalidParameter(f"invalid value for tail: {tail_arg!r}") from None
    since = _seconds(job.args.get("since", ""), "since")
    until = _seconds(job.args.get("until", ""), "until")
    follow = bool(job.args.get("follow")) and c.state.running
    stop = d.session(c.id).run_done if follow else None
    await out.start("application/vnd.docker.raw-stream" if c.tty else None)  # type: ignore[attr-defined]
    blocks = read_log_stream(
        c.log_path, tty=c.tty, stdout=bool(job.args.get("want_stdout", True)),
        stderr=bool(job.args.get("want_stderr", True)), tail=tail, since=since, until=until,
        follow=follow, timestamps=bool(job.args.get("timestamps")), stop=stop,
    )
    async with aclosing(blocks):
        async for block in blocks:
            await out.write(block)
            await asyncio.sleep(0)  # a write into a socket with room does not yield by itself


HANDLERS = {"container.logs": logs}
