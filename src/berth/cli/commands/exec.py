"""``berth exec``: run a process in a running container.

GET /containers/{name}/json (existence check, as docker does), POST /containers/{name}/exec,
then ``-d``: POST /exec/{id}/start ``{"Detach":true}``; otherwise the start is a hijack
(``101``), output until the daemon closes, and GET /exec/{id}/json gives the ExitCode
(126 when the process could not start).
"""

from __future__ import annotations

import time

from berth.cli.commands.run import parse_detach_keys
from berth.cli.flagvalues import read_kv_file, resolve_env
from berth.cli.options import Command, Flag
from berth.cli.reference import path_escape
from berth.cli.session import Session, side_client
from berth.cli.terminal import fd_of, is_tty, size
from berth.errors import InvalidParameter, SystemFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SPEC = Command(
    "exec",
    "berth exec [OPTIONS] CONTAINER COMMAND [ARG...]",
    "Execute a command in a running container",
    (
        Flag(("-d", "--detach"), help="Detached mode: run command in the background"),
        Flag(("--detach-keys",), "value", "Override the key sequence for detaching a container"),
        Flag(("-e", "--env"), "list", "Set environment variables"),
        Flag(("--env-file",), "list", "Read in a file of environment variables"),
        Flag(("-i", "--interactive"), help="Keep STDIN open even if not attached"),
        Flag(("--privileged",), help="Give extended privileges to the command"),
        Flag(("-t", "--tty"), help="Allocate a pseudo-TTY"),
        Flag(("-u", "--user"), "value", "Username or UID (format: <name|uid>[:<group|gid>])"),
        Flag(("-w", "--workdir"), "value", "Working directory inside the container"),
    ),
    interspersed=False,
    min_args=2,
)


def exec_body(
    opts: dict[str, Any], cmd: list[str], environ: dict[str, str], console: tuple[int, int] | None
) -> dict[str, Any]:
    env_items: list[str] = []
    for path in opts["env_file"]:
        env_items += read_kv_file(path, "env file")
    env = resolve_env(env_items + opts["env"], environ)
    detach = bool(opts["detach"])
    body: dict[str, Any] = {
        "User": opts["user"] or "",
        "Privileged": bool(opts["privileged"]),
        "Tty": bool(opts["tty"]),
    }
    if console:
        body["ConsoleSize"] = list(console)
    body.update(
        {
            "AttachStdin": bool(opts["interactive"]) and not detach,
            "AttachStderr": not detach,
            "AttachStdout": not detach,
            "Detach": detach,
            "DetachKeys": opts["detach_keys"] or "",
            "Env": env or None,
            "WorkingDir": opts["workdir"] or "",
            "Cmd": cmd,
        }
    )
    return body


def exec_(ctx: Any, argv: list[str]) -> int:
    opts, args = ctx.parse(SPEC, argv)
    name, cmd = args[0], args[1:]
    try:
        keys = parse_detach_keys(opts["detach_keys"])
    except InvalidParameter as exc:
        ctx.usage_error(SPEC, exc.message)
    if not opts["detach"] and opts["interactive"] and opts["tty"] and not is_tty(fd_of(ctx.stdin)):
        raise InvalidParameter("the input device is not a TTY")
    client = ctx.client
    client.call("GET", f"/containers/{path_escape(name)}/json")
    console = None
    if opts["tty"] and is_tty(fd_of(ctx.stdout)) and client.version_at_least("1.42"):
        console = size(fd_of(ctx.stdout))
    body = exec_body(opts, cmd, ctx.env, console)
    created = client.call("POST", f"/containers/{path_escape(name)}/exec", json_body=body) or {}
    exec_id = created.get("Id")
    if not exec_id:
        raise SystemFailure(f"create exec in {name}: the daemon answered without an Id")
    tty = bool(opts["tty"])
    if opts["detach"]:
        client.call("POST", f"/exec/{exec_id}/start", json_body={"Detach": True, "Tty": tty})
        return 0
    raw = client.hijack(f"/exec/{exec_id}/start", json_body={"Detach": False, "Tty": tty})
    session = Session(ctx, raw, tty, bool(opts["interactive"]), keys)
    session.begin()
    side = side_client(ctx)
    try:
        attached = session.stream(
            lambda h, w: side.call("POST", f"/exec/{exec_id}/resize", query={"h": h, "w": w})
        )
    finally:
        side.close()
    if not attached:
        ctx.stdout.flush()
        ctx.err("read escape sequence\n")
        return 0
    return exec_exit_code(client, exec_id)


def exec_exit_code(client: Any, exec_id: str, patience: float = 2.0) -> int:
    """ExitCode from exec inspect; the daemon stores it before closing the stream, but if it
    is still null (a daemon that closes first), ask again for a short while."""
    deadline = time.monotonic() + patience
    while True:
        info = client.call("GET", f"/exec/{exec_id}/json") or {}
        code = info.get("ExitCode")
        if code is not None and not info.get("Running"):
            return int(code)
        if time.monotonic() >= deadline:
            return int(code) if code is not None else 126
        time.sleep(0.02)
