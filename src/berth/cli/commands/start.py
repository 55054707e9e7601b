"""``berth start``: start containers; with ``-a`` attach first, like ``run`` minus create.

``start -a``: GET /containers/{name}/json (Tty, OpenStdin), attach (``101``), wait
``next-exit``, start, stream, exit with the container's status. Without ``-a`` every name is
started and printed; 304 (already running) counts as success.
"""

from __future__ import annotations

from berth.cli.commands.run import parse_detach_keys
from berth.cli.options import Command, Flag
from berth.cli.reference import path_escape
from berth.cli.session import Session, side_client, signal_proxy
from berth.errors import BerthError, InvalidParameter, NotModified

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SPEC = Command(
    "start",
    "berth start [OPTIONS] CONTAINER [CONTAINER...]",
    "Start one or more stopped containers",
    (
        Flag(("-a", "--attach"), help="Attach STDOUT/STDERR and forward signals"),
        Flag(("--detach-keys",), "value", "Override the key sequence for detaching a container"),
        Flag(("-i", "--interactive"), help="Attach container's STDIN"),
    ),
    min_args=1,
)


def start(ctx: Any, argv: list[str]) -> int:
    from berth.cli.main import report_error

    opts, args = ctx.parse(SPEC, argv)
    if opts["attach"] or opts["interactive"]:
        if len(args) > 1:
            raise InvalidParameter("you cannot start and attach multiple containers at once")
        return _start_attached(ctx, args[0], opts)
    failed: list[str] = []
    for name in args:
        try:
            ctx.client.call("POST", f"/containers/{path_escape(name)}/start")
        except NotModified:
            pass
        except BerthError as exc:
            report_error(ctx, exc)
            failed.append(name)
            continue
        ctx.out(f"{name}\n")
    if failed:
        ctx.stdout.flush()
        ctx.err(f"Error: failed to start containers: {', '.join(failed)}\n")
        return 1
    return 0


def _start_attached(ctx: Any, name: str, opts: dict[str, Any]) -> int:
    client = ctx.client
    info = client.call("GET", f"/containers/{path_escape(name)}/json") or {}
    cid = info.get("Id", name)
    config = info.get("Config") or {}
    tty = bool(config.get("Tty"))
    with_stdin = bool(opts["interactive"]) and bool(config.get("OpenStdin"))
    try:
        keys = parse_detach_keys(opts["detach_keys"])
    except InvalidParameter as exc:
        ctx.usage_error(SPEC, exc.message)
    query = {"stream": "1", "stdin": "1" if with_stdin else None, "stdout": "1", "stderr": "1"}
    raw = client.hijack(f"/containers/{cid}/attach", query=query)
    session = Session(ctx, raw, tty, with_stdin, keys)
    session.begin()
    waiter = client.open("POST", f"/containers/{cid}/wait", query={"condition": "next-exit"})
    try:
        client.call("POST", f"/containers/{cid}/start")
    except NotModified:
        pass
    except BerthError:
        raw.close()
        waiter.close()
        raise
    side = side_client(ctx)
    try:
        with signal_proxy(
            lambda sig: side.call("POST", f"/containers/{cid}/kill", query={"signal": sig}), not tty
        ):
            attached = session.stream(
                lambda h, w: side.call("POST", f"/containers/{cid}/resize", query={"h": h, "w": w})
            )
    finally:
        side.close()
    if not attached:
        waiter.close()
        ctx.err("read escape sequence\n")
        return 0
    body = waiter.json() or {}
    return int(body.get("StatusCode", 0))
