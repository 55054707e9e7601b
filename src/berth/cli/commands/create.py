"""``berth create``: POST /containers/create from docker's run/create flags.

``create_container()`` is shared with ``run``: it prints the daemon's warnings, reports a missing
image as docker does (``Unable to find image 'busybox:latest' locally`` on stderr; berthd has
no pull yet, so the daemon's 404 is the final answer) and writes ``--cidfile``.
"""

from __future__ import annotations

import os

from berth.cli.containerspec import CREATE_SPEC, build_create_body
from berth.cli.reference import split_digest, split_tag
from berth.cli.terminal import is_tty, size
from berth.errors import InvalidParameter, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def tagged(image: str) -> str:
    """The reference as docker prints it in 'Unable to find image': the tag made explicit."""
    name, digest = split_digest(image)
    if digest:
        return image
    _, tag = split_tag(name)
    return image if tag else f"{image}:latest"


def create_container(ctx: Any, opts: dict[str, Any], args: list[str]) -> str:
    console = None
    if opts["tty"] and is_tty(ctx.stdout.fileno()):
        console = size(ctx.stdout.fileno())
    body = build_create_body((opts, args), ctx.env, console)
    if opts["init"] and not (ctx.client.call("GET", "/info") or {}).get("InitBinary"):
        ctx.err("WARNING: --init is not supported by this daemon; ignored\n")
        body["HostConfig"].pop("Init", None)
    cidfile = opts["cidfile"]
    if cidfile and os.path.exists(cidfile):
        raise InvalidParameter(f"container ID file found, make sure the other container isn't running or delete {cidfile}")
    query = {"name": opts["name"] or None, "platform": opts["platform"] or None}
    try:
        created = ctx.client.call("POST", "/containers/create", query=query, json_body=body) or {}
    except NotFound as exc:
        if "image" in exc.message.lower():
            ctx.err(f"Unable to find image '{tagged(args[0])}' locally\n")
        raise
    for warning in created.get("Warnings") or []:
        ctx.err(f"WARNING: {warning}\n")
    cid = created.get("Id", "")
    if cidfile:
        with open(cidfile, "w", encoding="utf-8") as fh:
            fh.write(cid)
    return cid


def create(ctx: Any, argv: list[str]) -> int:
    from berth.cli.main import report_error
    from berth.errors import BerthError

    opts, args = ctx.parse(CREATE_SPEC, argv)
    try:
        cid = create_container(ctx, opts, args)
    except InvalidParameter as exc:
        if getattr(exc, "http_status", None) is None:
            ctx.usage_error(CREATE_SPEC, exc.message)
        raise
    except BerthError as exc:
        report_error(ctx, exc)
        return 1
    ctx.out(cid + "\n")
    return 0
