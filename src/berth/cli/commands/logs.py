"""``berth logs``: GET /containers/{id}/logs, demultiplexed unless the container has a TTY.

``--since``/``--until`` take durations (``10s``, ``5m``), RFC3339 times or Unix times, turned
into absolute Unix times on the client, as docker does.
"""

from __future__ import annotations

from berth.cli.options import Command, Flag
from berth.cli.reference import path_escape
from berth.cli.streams import copy_output
from berth.cli.timespec import get_timestamp

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SPEC = Command(
    "logs",
    "berth logs [OPTIONS] CONTAINER",
    "Fetch the logs of a container",
    (
        Flag(("--details",), help="Show extra details provided to logs"),
        Flag(("-f", "--follow"), help="Follow log output"),
        Flag(("--since",), "value", "Show logs since timestamp or relative (e.g. 42m for 42 minutes)"),
        Flag(("-n", "--tail"), "value", "Number of lines to show from the end of the logs", default="all"),
        Flag(("-t", "--timestamps"), help="Show timestamps"),
        Flag(("--until",), "value", "Show logs before a timestamp or relative (e.g. 42m for 42 minutes)"),
    ),
    min_args=1,
    max_args=1,
)


def logs(ctx: Any, argv: list[str]) -> int:
    opts, (name,) = ctx.parse(SPEC, argv)
    info = ctx.client.call("GET", f"/containers/{path_escape(name)}/json") or {}
    tty = bool((info.get("Config") or {}).get("Tty"))
    query = {
        "stdout": "1",
        "stderr": "1",
        "since": get_timestamp(opts["since"]) if opts["since"] else None,
        "until": get_timestamp(opts["until"]) if opts["until"] else None,
        "timestamps": "1" if opts["timestamps"] else None,
        "follow": "1" if opts["follow"] else None,
        "tail": opts["tail"],
        "details": "1" if opts["details"] else None,
    }
    resp = ctx.client.open("GET", f"/containers/{info.get('Id', name)}/logs", query=query)
    try:
        copy_output(resp.iter_chunks(), ctx.write_bytes, tty)
    finally:
        resp.close()
    return 0
