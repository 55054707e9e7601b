"""``berth container prune`` and ``berth image prune``: ask (unless ``-f``), prune, report."""

from __future__ import annotations

import json

from berth.cli.commands.ps import checked_filters
from berth.cli.options import Command, Flag
from berth.cli.units import human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CONTAINER_SPEC = Command(
    "container prune",
    "berth container prune [OPTIONS]",
    "Remove all stopped containers",
    (
        Flag(("--filter",), "list", 'Provide filter values (e.g. "until=<timestamp>")'),
        Flag(("-f", "--force"), help="Do not prompt for confirmation"),
    ),
    max_args=0,
)
IMAGE_SPEC = Command(
    "image prune",
    "berth image prune [OPTIONS]",
    "Remove unused images",
    (
        Flag(("-a", "--all"), help="Remove all unused images, not just dangling ones"),
        Flag(("--filter",), "list", 'Provide filter values (e.g. "until=<timestamp>")'),
        Flag(("-f", "--force"), help="Do not prompt for confirmation"),
    ),
    max_args=0,
)


def _confirm(ctx: Any, warning: str) -> bool:
    ctx.out(f"{warning}\nAre you sure you want to continue? [y/N] ")
    ctx.stdout.flush()
    try:
        answer = ctx.stdin.readline()
    except (OSError, ValueError):
        return False
    if isinstance(answer, bytes):
        answer = answer.decode("utf-8", "replace")
    return answer.strip().lower() in ("y", "yes")


def container_prune(ctx: Any, argv: list[str]) -> int:
    opts, _ = ctx.parse(CONTAINER_SPEC, argv)
    filters = checked_filters(ctx, CONTAINER_SPEC, opts["filter"])
    if not opts["force"] and not _confirm(ctx, "WARNING! This will remove all stopped containers."):
        return 0
    query = {"filters": json.dumps(filters, separators=(",", ":"))} if filters else None
    report = ctx.client.call("POST", "/containers/prune", query=query) or {}
    deleted = report.get("ContainersDeleted") or []
    if deleted:
        ctx.out("Deleted Containers:\n" + "".join(f"{cid}\n" for cid in deleted) + "\n")
    ctx.out(f"Total reclaimed space: {human_size(report.get('SpaceReclaimed') or 0)}\n")
    return 0


def image_prune(ctx: Any, argv: list[str]) -> int:
    opts, _ = ctx.parse(IMAGE_SPEC, argv)
    filters = checked_filters(ctx, IMAGE_SPEC, opts["filter"])
    filters["dangling"] = {"false" if opts["all"] else "true": True}
    warning = (
        "WARNING! This will remove all images without at least one container associated to them."
        if opts["all"]
        else "WARNING! This will remove all dangling images."
    )
    if not opts["force"] and not _confirm(ctx, warning):
        return 0
    report = ctx.client.call(
        "POST", "/images/prune", query={"filters": json.dumps(filters, separators=(",", ":"))}
    )
    report = report or {}
    deleted = report.get("ImagesDeleted") or []
    if deleted:
        lines = ["Deleted Images:"]
        for item in deleted:
            if item.get("Untagged"):
                lines.append(f"untagged: {item['Untagged']}")
            if item.get("Deleted"):
                lines.append(f"deleted: {item['Deleted']}")
        ctx.out("\n".join(lines) + "\n\n")
    ctx.out(f"Total reclaimed space: {human_size(report.get('SpaceReclaimed') or 0)}\n")
    return 0
