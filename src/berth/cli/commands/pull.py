"""``berth pull``: POST /images/create?fromImage=NAME&tag=TAG, the progress rendered as docker does.

The name is normalized (``busybox`` -> ``docker.io/library/busybox``) and the tag defaults to
``latest`` (``Using default tag: latest``); at the end the full reference is printed.
"""

from __future__ import annotations

from berth.cli.options import Command, Flag
from berth.cli.progress import display_stream
from berth.cli.reference import normalize_name, split_digest, split_tag
from berth.cli.terminal import fd_of, is_tty

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SPEC = Command(
    "pull",
    "berth pull [OPTIONS] NAME[:TAG|@DIGEST]",
    "Download an image from a registry",
    (
        Flag(("-a", "--all-tags"), help="Download all tagged images in the repository"),
        Flag(("--platform",), "value", "Set platform if server is multi-platform capable"),
        Flag(("-q", "--quiet"), help="Suppress verbose output"),
    ),
    min_args=1,
    max_args=1,
)


def pull(ctx: Any, argv: list[str]) -> int:
    opts, (ref,) = ctx.parse(SPEC, argv)
    name, digest = split_digest(ref)
    tag = ""
    if not digest:
        name, tag = split_tag(name)
        if not tag and not opts["all_tags"]:
            tag = "latest"
            ctx.out("Using default tag: latest\n")
    full_name = normalize_name(name)
    query = {
        "fromImage": full_name,
        "tag": None if opts["all_tags"] else (digest or tag),
        "platform": opts["platform"] or None,
    }
    from berth.cli.credentials import auth_header_for

    auth = auth_header_for(ctx.env, name)
    resp = ctx.client.open("POST", "/images/create", query=query, headers={"X-Registry-Auth": auth})
    display_stream(resp, (lambda text: None) if opts["quiet"] else ctx.out, tty=is_tty(fd_of(ctx.stdout)))
    shown = full_name if opts["all_tags"] else f"{full_name}{'@' + digest if digest else ':' + tag}"
    ctx.out(shown + "\n")
    return 0
