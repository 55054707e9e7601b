"""``berth top``: GET /containers/{name}/top[?ps_args=...], printed as a table."""

from __future__ import annotations

from berth.cli.options import Command
from berth.cli.reference import path_escape
from berth.cli.tabwriter import tabwrite

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SPEC = Command(
    "top",
    "berth top CONTAINER [ps OPTIONS]",
    "Display the running processes of a container",
    (),
    interspersed=False,
    min_args=1,
)


def top(ctx: Any, argv: list[str]) -> int:
    _, args = ctx.parse(SPEC, argv)
    query = {"ps_args": " ".join(args[1:])} if len(args) > 1 else None
    data = ctx.client.call("GET", f"/containers/{path_escape(args[0])}/top", query=query) or {}
    lines = ["\t".join(data.get("Titles") or [])]
    lines += ["\t".join(str(v) for v in proc) for proc in data.get("Processes") or []]
    ctx.out(tabwrite("\n".join(lines) + "\n", minwidth=20, padding=1))
    return 0
