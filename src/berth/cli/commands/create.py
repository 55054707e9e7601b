"""``berth create``: POST /containers/create from docker's run/create flags.

``create_container()`` is shared with ``run``: it prints the daemon's warnings and writes
``--cidfile``. A 404 on create means the image is missing: as docker does, it prints
``Unable to find image 'busybox:latest' locally`` on stderr, pulls
(``POST /images/create?fromImage=docker.io/library/busybox&tag=latest``, progress on stderr)
and creates again; ``--pull never`` skips the pull, ``--pull always`` pulls first. When the
daemon cannot pull, its answer to the pull is the error the command reports.
"""

from __future__ import annotations

import os

from berth.cli.containerspec import CREATE_SPEC, build_create_body
from berth.cli.reference import normalize_name, split_digest, split_tag
from berth.cli.terminal import fd_of, is_tty, size
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


PULL_POLICIES = ("missing", "always", "never")


def pull_image(ctx: Any, image: str, quiet: bool, platform: str | None = None) -> None:
    """docker's implicit pull: fromImage is the normalized name, the tag (or digest) apart."""
    from berth.cli.progress import display_stream

    name, digest = split_digest(image)
    if not digest:
        name, tag = split_tag(name)
    query = {
        "fromImage": normalize_name(name),
        "tag": digest or tag or "latest",
        "platform": platform or None,
    }
    from berth.cli.credentials import auth_header_for

    auth = auth_header_for(ctx.env, name)
    resp = ctx.client.open("POST", "/images/create", query=query, headers={"X-Registry-Auth": auth})
    display_stream(resp, (lambda text: None) if quiet else ctx.err)


def create_container(ctx: Any, opts: dict[str, Any], args: list[str]) -> str:
    console = None
    if opts["tty"] and is_tty(fd_of(ctx.stdout)):
        console = size(fd_of(ctx.stdout))
    body = build_create_body((opts, args), ctx.env, console)
    if opts["init"] and not (ctx.client.call("GET", "/info") or {}).get("InitBinary"):
        ctx.err("WARNING: --init is not supported by this daemon; ignored\n")
        body["HostConfig"].pop("Init", None)
    cidfile = opts["cidfile"]
    if cidfile and os.path.exists(cidfile):
        raise InvalidParameter(
            f"container ID file found, make sure the other container isn't running or delete {cidfile}"
        )
    policy = opts["pull"] or "missing"
    if policy not in PULL_POLICIES:
        raise InvalidParameter(
            f'invalid pull option: \'{policy}\': must be one of "always", "missing" or "never"'
        )
    if policy == "always":
        pull_image(ctx, args[0], opts["quiet"], opts["platform"])
    query = {"name": opts["name"] or None, "platform": opts["platform"] or None}
    try:
        created = ctx.client.call("POST", "/containers/create", query=query, json_body=body) or {}
    except NotFound:
        if policy == "never":
            raise
        ctx.err(f"Unable to find image '{tagged(args[0])}' locally\n")
        pull_image(ctx, args[0], opts["quiet"], opts["platform"])
        created = ctx.client.call("POST", "/containers/create", query=query, json_body=body) or {}
    for warning in created.get("Warnings") or []:
        ctx.err(f"WARNING: {warning}\n")
    cid = created.get("Id", "")
    if cidfile:
        with open(cidfile, "w", encoding="utf-8") as fh:
            fh.write(cid)
    return str(cid)


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
