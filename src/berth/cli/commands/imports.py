"""``berth import``: create an image from a tarball (file, ``-`` for stdin, or a URL).

POST /images/create?fromSrc=-&repo=NAME:TAG&changes=...&message=... with the tar as a chunked
body (``text/plain``, as the docker CLI sends it); the reply is a JSON stream whose status is the
new image id, which is printed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from berth.cli.options import Command, Flag
from berth.cli.progress import display_stream
from berth.cli.terminal import fd_of
from berth.errors import InvalidParameter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SPEC = Command(
    "import",
    "berth import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
    "Import the contents from a tarball to create a filesystem image",
    (
        Flag(("-c", "--change"), "list", "Apply Dockerfile instruction to the created image"),
        Flag(("-m", "--message"), "value", "Set commit message for imported image"),
        Flag(("--platform",), "value", "Set platform if server is multi-platform capable"),
    ),
    min_args=1,
    max_args=2,
)

CHUNK = 64 * 1024


def file_chunks(fd: int) -> Iterator[bytes]:
    while True:
        data = os.read(fd, CHUNK)
        if not data:
            return
        yield data


def import_body(
    client: Any,
    body: Any,
    repo: str | None,
    changes: list[str],
    message: str | None,
    write: Any,
    src: str = "-",
    platform: str | None = None,
) -> list[dict[str, Any]]:
    query = {
        "fromSrc": src,
        "repo": repo or None,
        "changes": changes or None,
        "message": message or None,
        "platform": platform or None,
    }
    resp = client.open(
        "POST", "/images/create", query=query, body=body, headers={"Content-Type": "text/plain"}
    )
    return display_stream(resp, write)


def import_(ctx: Any, argv: list[str]) -> int:
    opts, args = ctx.parse(SPEC, argv)
    source = args[0]
    repo = args[1] if len(args) > 1 else None
    changes = opts["change"]
    if source.startswith(("http://", "https://")):
        import_body(
            ctx.client, None, repo, changes, opts["message"], ctx.out, src=source, platform=opts["platform"]
        )
        return 0
    if source == "-":
        fd = fd_of(ctx.stdin)
        if fd < 0:
            raise InvalidParameter("import from -: standard input has no file descriptor")
        body = file_chunks(fd)
        import_body(ctx.client, body, repo, changes, opts["message"], ctx.out, platform=opts["platform"])
        return 0
    try:
        fd = os.open(source, os.O_RDONLY)
    except OSError as exc:
        raise InvalidParameter(f"open {source}: {exc.strerror}") from exc
    try:
        import_body(
            ctx.client, file_chunks(fd), repo, changes, opts["message"], ctx.out, platform=opts["platform"]
        )
    finally:
        os.close(fd)
    return 0
