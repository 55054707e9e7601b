"""Tar streams in and out: ``berth export``, ``berth save`` (to stdout or ``-o``), ``berth load``.

Like docker, ``export``/``save`` refuse to write a tar to a terminal, and ``load`` asks for
``quiet=1`` when stdout is not a terminal; the tar goes up as a chunked body.
"""

from __future__ import annotations

import os

from berth.cli.commands.imports import file_chunks
from berth.cli.options import Command, Flag
from berth.cli.progress import display_stream
from berth.cli.reference import path_escape
from berth.cli.terminal import fd_of, is_tty
from berth.errors import InvalidParameter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

EXPORT_SPEC = Command(
    "export",
    "berth export [OPTIONS] CONTAINER",
    "Export a container's filesystem as a tar archive",
    (Flag(("-o", "--output"), "value", "Write to a file, instead of STDOUT"),),
    min_args=1,
    max_args=1,
)
SAVE_SPEC = Command(
    "save",
    "berth save [OPTIONS] IMAGE [IMAGE...]",
    "Save one or more images to a tar archive (streamed to STDOUT by default)",
    (
        Flag(("-o", "--output"), "value", "Write to a file, instead of STDOUT"),
        Flag(("--format",), "value", "docker (default) or oci: an OCI image layout that docker load also reads"),
    ),
    min_args=1,
)
LOAD_SPEC = Command(
    "load",
    "berth load [OPTIONS]",
    "Load an image from a tar archive or STDIN",
    (
        Flag(("-i", "--input"), "value", "Read from tar archive file, instead of STDIN"),
        Flag(("-q", "--quiet"), help="Suppress the load output"),
    ),
    max_args=0,
)


def _write_body(ctx: Any, resp: Any, output: str | None, what: str) -> None:
    if output:
        tmp = f"{output}.berth-tmp"
        try:
            with open(tmp, "wb") as fh:
                for chunk in resp.iter_chunks():
                    fh.write(chunk)
            os.replace(tmp, output)
        except OSError as exc:
            raise InvalidParameter(f"write {what} to {output}: {exc.strerror or exc}") from exc
        return
    if is_tty(fd_of(ctx.stdout)):
        resp.close()
        raise InvalidParameter("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    for chunk in resp.iter_chunks():
        ctx.write_bytes(chunk, 1)


def export(ctx: Any, argv: list[str]) -> int:
    opts, (name,) = ctx.parse(EXPORT_SPEC, argv)
    if not opts["output"] and is_tty(fd_of(ctx.stdout)):
        raise InvalidParameter("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    resp = ctx.client.open("GET", f"/containers/{path_escape(name)}/export")
    _write_body(ctx, resp, opts["output"], f"the export of {name}")
    return 0


def save(ctx: Any, argv: list[str]) -> int:
    opts, names = ctx.parse(SAVE_SPEC, argv)
    if not opts["output"] and is_tty(fd_of(ctx.stdout)):
        raise InvalidParameter("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    fmt = opts.get("format") or None
    if fmt not in (None, "docker", "oci"):
        raise InvalidParameter(f"invalid --format {fmt!r}: docker or oci")
    resp = ctx.client.open("GET", "/images/get", query={"names": names, "format": fmt})
    _write_body(ctx, resp, opts["output"], "the images")
    return 0


def load(ctx: Any, argv: list[str]) -> int:
    opts, _ = ctx.parse(LOAD_SPEC, argv)
    quiet = opts["quiet"] or not is_tty(fd_of(ctx.stdout))
    if opts["input"]:
        try:
            fd = os.open(opts["input"], os.O_RDONLY)
        except OSError as exc:
            raise InvalidParameter(f"open {opts['input']}: {exc.strerror}") from exc
    else:
        fd = fd_of(ctx.stdin)
        if fd < 0 or is_tty(fd):
            raise InvalidParameter("requested load from stdin, but stdin is empty")
    try:
        resp = ctx.client.open(
            "POST",
            "/images/load",
            query={"quiet": "1" if quiet else "0"},
            body=file_chunks(fd),
            headers={"Content-Type": "application/x-tar"},
        )
        display_stream(resp, ctx.out)
    finally:
        if opts["input"]:
            os.close(fd)
    return 0
