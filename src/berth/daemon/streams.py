"""The logs job: json-file records out as Docker's multiplexed frames (raw for a TTY)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from berth.container.logs import read_logs
from berth.daemon.live import frame
from berth.engine import Job
from berth.errors import InvalidParameter

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
    want = {1: job.args.get("want_stdout", True), 2: job.args.get("want_stderr", True)}
    await out.start("application/vnd.docker.raw-stream" if c.tty else None)  # type: ignore[attr-defined]
    async for record in read_logs(
        c.log_path, tail=tail, since=since, until=until, follow=follow,  # type: ignore[arg-type]
        timestamps=bool(job.args.get("timestamps")), stop=stop,
    ):
        if not want.get(record.stream, True):
            continue
        await out.write(record.data if c.tty else frame(record.stream, record.data))


HANDLERS = {"container.logs": logs}
