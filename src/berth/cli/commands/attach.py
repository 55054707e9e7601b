"""``berth attach``: connect our stdio to a running container.

POST /containers/{name}/wait (no condition, sent first, as docker does), GET json (Running,
Paused, Tty, OpenStdin), attach (``101``), stream until the container ends it, exit with the
wait's status. ctrl-p ctrl-q (or ``--detach-keys``) detaches with ``read escape sequence``.
"""

from __future__ import annotations

from berth.cli.commands.run import parse_detach_keys
from berth.cli.options import Command, Flag
from berth.cli.reference import path_escape
from berth.cli.session import Session, side_client, signal_proxy
from berth.errors import Conflict, InvalidParameter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SPEC = Command(
    "attach",
    "berth attach [OPTIONS] CONTAINER",
    "Attach local standard input, output, and error streams to a running container",
    (
        Flag(("--detach-keys",), "value", "Override the key sequence for detaching a container"),
        Flag(("--no-stdin",), help="Do not attach STDIN"),
        Flag(("--sig-proxy",), help="Proxy all received signals to the process", default=True),
    ),
    min_args=1,
    max_args=1,
)


def attach(ctx: Any, argv: list[str]) -> int:
    opts, (name,) = ctx.parse(SPEC, argv)
    try:
        keys = parse_detach_keys(opts["detach_keys"])
    except InvalidParameter as exc:
        ctx.usage_error(SPEC, exc.message)
    client = ctx.client
    ref = path_escape(name)
    waiter = client.open("POST", f"/containers/{ref}/wait")
    info = client.call("GET", f"/containers/{ref}/json") or {}
    state = info.get("State") or {}
    if not state.get("Running"):
        waiter.close()
        raise Conflict("You cannot attach to a stopped container, start it first")
    if state.get("Paused"):
        waiter.close()
        raise Conflict("You cannot attach to a paused container, unpause it first")
    config = info.get("Config") or {}
    tty = bool(config.get("Tty"))
    with_stdin = bool(config.get("OpenStdin")) and not opts["no_stdin"]
    query = {"stream": "1", "stdin": "1" if with_stdin else None, "stdout": "1", "stderr": "1"}
    raw = client.hijack(f"/containers/{ref}/attach", query=query)
    session = Session(ctx, raw, tty, with_stdin, keys)
    session.begin()
    side = side_client(ctx)

    def resize(h: int, w: int) -> None:
        # docker sends size+1 then the size, to force a redraw in the container
        side.call("POST", f"/containers/{ref}/resize", query={"h": h + 1, "w": w + 1})
        side.call("POST", f"/containers/{ref}/resize", query={"h": h, "w": w})

    try:
        with signal_proxy(
            lambda sig: side.call("POST", f"/containers/{ref}/kill", query={"signal": sig}),
            opts["sig_proxy"] and not tty,
        ):
            attached = session.stream(resize)
    finally:
        side.close()
    if not attached:
        waiter.close()
        ctx.stdout.flush()
        ctx.err("read escape sequence\n")
        return 1
    body = waiter.json() or {}
    return int(body.get("StatusCode", 0))
