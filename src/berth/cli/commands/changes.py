"""``berth diff`` (GET /containers/{id}/changes) and ``berth commit`` (POST /commit)."""

from __future__ import annotations

from berth.cli.options import Command, Flag
from berth.cli.reference import normalize_name, path_escape, split_tag
from berth.errors import InvalidParameter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DIFF_SPEC = Command(
    "diff",
    "berth diff CONTAINER",
    "Inspect changes to files or directories on a container's filesystem",
    (),
    min_args=1,
    max_args=1,
)
COMMIT_SPEC = Command(
    "commit",
    "berth commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
    "Create a new image from a container's changes",
    (
        Flag(("-a", "--author"), "value", 'Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")'),
        Flag(("-c", "--change"), "list", "Apply Dockerfile instruction to the created image"),
        Flag(("-m", "--message"), "value", "Commit message"),
        Flag(("-p", "--pause"), "bool", "Pause container during commit", default=True),
    ),
    min_args=1,
    max_args=2,
)
KINDS = {0: "C", 1: "A", 2: "D"}


def diff(ctx: Any, argv: list[str]) -> int:
    _, (name,) = ctx.parse(DIFF_SPEC, argv)
    changes = ctx.client.call("GET", f"/containers/{path_escape(name)}/changes") or []
    ctx.out("".join(f"{KINDS.get(c.get('Kind'), '?')} {c.get('Path', '')}\n" for c in changes))
    return 0


def commit(ctx: Any, argv: list[str]) -> int:
    opts, args = ctx.parse(COMMIT_SPEC, argv)
    query: dict[str, Any] = {
        "container": args[0],
        "author": opts["author"] or "",
        "comment": opts["message"] or "",
        "changes": opts["change"] or None,
        "pause": None if opts["pause"] else "0",
    }
    if len(args) > 1:
        if "@" in args[1]:
            raise InvalidParameter(f"invalid reference format: {args[1]} (a commit cannot have a digest)")
        name, tag = split_tag(args[1])
        query["repo"] = normalize_name(name)
        query["tag"] = tag or "latest"
    created = ctx.client.call("POST", "/commit", query=query) or {}
    ctx.out(f"{created.get('Id', '')}\n")
    return 0
