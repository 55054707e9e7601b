"""``berth history``: GET /images/{name}/history as docker's table (newest layer first).

Row fields (``--format``): ID, CreatedSince, CreatedAt, CreatedBy, Size, Comment.
"""

from __future__ import annotations

from berth.cli.commands.ps import ellipsis
from berth.cli.formatter import render
from berth.cli.options import Command, Flag
from berth.cli.reference import path_escape
from berth.cli.units import human_size, since

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SPEC = Command(
    "history",
    "berth history [OPTIONS] IMAGE",
    "Show the history of an image",
    (
        Flag(("--format",), "value", "Format output using a custom template"),
        Flag(("-H", "--human"), "bool", "Print sizes and dates in human readable format", default=True),
        Flag(("--no-trunc",), help="Don't truncate output"),
        Flag(("-q", "--quiet"), help="Only show image IDs"),
    ),
    min_args=1,
    max_args=1,
)
HEADERS = {
    "ID": "IMAGE",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "CreatedBy": "CREATED BY",
    "Size": "SIZE",
    "Comment": "COMMENT",
}
DEFAULT_TABLE = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"


class HistoryRow:
    def __init__(self, item: dict[str, Any], trunc: bool, human: bool) -> None:
        self._h = item
        self._trunc = trunc
        self._human = human

    @property
    def ID(self) -> str:
        iid = str(self._h.get("Id") or "<missing>")
        if self._trunc and iid.startswith("sha256:"):
            return iid[7:19]
        return iid

    @property
    def CreatedAt(self) -> str:
        import time

        created = int(self._h.get("Created") or 0)
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)) if created else ""

    @property
    def CreatedSince(self) -> str:
        created = float(self._h.get("Created") or 0)
        if not self._human:
            return self.CreatedAt
        return since(created) if created > 0 else "N/A"

    @property
    def CreatedBy(self) -> str:
        text = str(self._h.get("CreatedBy") or "").replace("\t", " ")
        return ellipsis(text, 45) if self._trunc else text

    @property
    def Size(self) -> str:
        size = int(self._h.get("Size") or 0)
        return human_size(size) if self._human else str(size)

    @property
    def Comment(self) -> str:
        return str(self._h.get("Comment") or "")

    def json_fields(self) -> dict[str, str]:
        return {
            k: getattr(self, k) for k in ("Comment", "CreatedAt", "CreatedBy", "CreatedSince", "ID", "Size")
        }


def history(ctx: Any, argv: list[str]) -> int:
    opts, (name,) = ctx.parse(SPEC, argv)
    items = ctx.client.call("GET", f"/images/{path_escape(name)}/history") or []
    rows = [HistoryRow(i, not opts["no_trunc"], opts["human"]) for i in items]
    if opts["quiet"] and not opts["format"]:
        ctx.out("".join(r.ID + "\n" for r in rows))
        return 0
    ctx.out(render(opts["format"] or DEFAULT_TABLE, rows, HEADERS))
    return 0
