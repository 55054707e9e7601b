"""``berth events``: GET /events (streamed), printed as docker prints them.

Each event is a line ``<time RFC3339Nano> <Type> <Action> <Actor.ID> (k=v, ...)`` with the
attributes sorted by key; ``--since``/``--until`` take durations, RFC3339 or Unix times;
``--filter`` as for ps; ``--format`` renders each event (a map: ``{{.Type}}``, ``{{json .}}``).
Without ``--until`` the stream stays open until the daemon ends it or ctrl-c.
"""

from __future__ import annotations

import json
import time

from berth.cli.commands.ps import checked_filters
from berth.cli.options import Command, Flag
from berth.cli.timespec import get_timestamp
from berth.client.jsonstream import JSONStreamDecoder

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SPEC = Command(
    "events",
    "berth events [OPTIONS]",
    "Get real time events from the server",
    (
        Flag(("-f", "--filter"), "list", "Filter output based on conditions provided"),
        Flag(("--format",), "value", "Format output using a custom template"),
        Flag(("--since",), "value", "Show all events created since timestamp"),
        Flag(("--until",), "value", "Stream events until this timestamp"),
    ),
    max_args=0,
)


def rfc3339nano(time_nano: int) -> str:
    """Go's time.Format(RFC3339Nano) in local time: trailing zeros of the fraction dropped."""
    secs, nanos = divmod(int(time_nano), 1_000_000_000)
    tm = time.localtime(secs)
    frac = f".{nanos:09d}".rstrip("0").rstrip(".")
    off = tm.tm_gmtoff or 0
    zone = "Z" if off == 0 else f"{'+' if off > 0 else '-'}{abs(off) // 3600:02d}:{abs(off) % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", tm) + frac + zone


def event_line(event: dict[str, Any]) -> str:
    time_nano = event.get("timeNano") or int(event.get("time") or 0) * 1_000_000_000
    actor = event.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    line = f"{rfc3339nano(time_nano)} {event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}"
    if attrs:
        line += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return line + "\n"


def events(ctx: Any, argv: list[str]) -> int:
    opts, _ = ctx.parse(SPEC, argv)
    now = time.time()
    query: dict[str, Any] = {
        "since": get_timestamp(opts["since"], now) if opts["since"] else None,
        "until": get_timestamp(opts["until"], now) if opts["until"] else None,
    }
    if opts["filter"]:
        query["filters"] = json.dumps(checked_filters(ctx, SPEC, opts["filter"]), separators=(",", ":"))
    tmpl = None
    if opts["format"]:
        from berth.cli.formatter import compile_format, normalize

        tmpl = compile_format(normalize(opts["format"])[1])
    resp = ctx.client.open("GET", "/events", query=query)
    decoder = JSONStreamDecoder()
    try:
        for chunk in resp.iter_chunks():
            for event in decoder.feed(chunk):
                if not isinstance(event, dict):
                    continue
                ctx.out(tmpl.render(event) + "\n" if tmpl is not None else event_line(event))
                ctx.stdout.flush()
    finally:
        resp.close()
    return 0
