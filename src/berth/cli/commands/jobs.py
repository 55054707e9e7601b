"""``berth jobs``: the daemon's job table (GET /berth/v1/jobs?all=0|1), newest last.

Each job is ``{ID, Name, Status: running|ok|error, Args, StartedAt, DurationMs (null while
running), Error}``. Without ``-a`` the table shows the running jobs and the last 20 finished
ones (the daemon is asked for ``all=0``; the same cut is applied here so the output does not
depend on how much the daemon sends). Row fields (``--format``): ID, Name, Status, Duration,
DurationMs, StartedAt, Args, Error.
"""

from __future__ import annotations

from berth.cli.formatter import render
from berth.cli.options import Command, Flag
from berth.cli.templatefuncs import go_json
from berth.cli.units import format_duration_ms

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SPEC = Command(
    "jobs",
    "berth jobs [OPTIONS]",
    "List the daemon's jobs (running ones and the most recent)",
    (
        Flag(("-a", "--all"), help="Show all recent jobs (default: running ones and the last 20)"),
        Flag(("--format",), "value", "Format output using a custom template"),
        Flag(("--no-trunc",), help="Don't truncate output"),
        Flag(("-q", "--quiet"), help="Only display job IDs"),
    ),
    max_args=0,
)

HEADERS = {
    "ID": "ID",
    "Name": "NAME",
    "Status": "STATUS",
    "Duration": "DURATION",
    "DurationMs": "DURATION MS",
    "StartedAt": "STARTED AT",
    "Args": "ARGS",
    "Error": "ERROR",
}
DEFAULT_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Status}}\t{{.Duration}}\t{{.Error}}"
RECENT = 20


class JobRow:
    def __init__(self, job: dict[str, Any], trunc: bool) -> None:
        self._j = job
        self._trunc = trunc

    @property
    def ID(self) -> str:
        jid = str(self._j.get("ID", ""))
        return jid[:12] if self._trunc else jid

    @property
    def Name(self) -> str:
        return str(self._j.get("Name", ""))

    @property
    def Status(self) -> str:
        return str(self._j.get("Status", ""))

    @property
    def Duration(self) -> str:
        return format_duration_ms(self._j.get("DurationMs"))

    @property
    def DurationMs(self) -> Any:
        return self._j.get("DurationMs")

    @property
    def StartedAt(self) -> str:
        return str(self._j.get("StartedAt", ""))

    @property
    def Args(self) -> str:
        args = self._j.get("Args")
        return args if isinstance(args, str) else go_json(args)

    @property
    def Error(self) -> str:
        text = str(self._j.get("Error") or "").replace("\n", " ")
        return text[:59] + "…" if self._trunc and len(text) > 60 else text

    def json_fields(self) -> dict[str, Any]:
        return dict(self._j)


def select_jobs(jobs: list[dict[str, Any]], show_all: bool, recent: int = RECENT) -> list[dict[str, Any]]:
    """Running jobs plus the last ``recent`` finished ones (by StartedAt), in start order."""
    ordered = sorted(jobs, key=lambda j: str(j.get("StartedAt") or ""))
    if show_all:
        return ordered
    finished = [j for j in ordered if j.get("Status") != "running"]
    keep = {id(j) for j in finished[-recent:]} if recent else set()
    return [j for j in ordered if j.get("Status") == "running" or id(j) in keep]


def jobs(ctx: Any, argv: list[str]) -> int:
    opts, _ = ctx.parse(SPEC, argv)
    listing = (
        ctx.client.call("GET", "/berth/v1/jobs", query={"all": "1" if opts["all"] else "0"}, versioned=False)
        or []
    )
    chosen = select_jobs(listing, opts["all"])
    trunc = not opts["no_trunc"]
    rows = [JobRow(j, trunc) for j in chosen]
    if opts["quiet"] and not opts["format"]:
        ctx.out("".join(r.ID + "\n" for r in rows))
        return 0
    ctx.out(render(opts["format"] or DEFAULT_TABLE, rows, HEADERS))
    return 0
