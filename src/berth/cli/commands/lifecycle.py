"""stop, kill, restart, pause, unpause, rename, wait, rm: one request per container.

Each command prints the name it was given for every container it handled (``wait`` prints the
exit code), reports a failure per container as ``Error response from daemon: ...`` and exits 1
if any failed, as docker does. 304 Not Modified (stop of a stopped container) counts as success.
"""

from __future__ import annotations

from collections.abc import Callable

from berth.cli.options import Command, Flag
from berth.cli.reference import path_escape
from berth.errors import BerthError, NotModified

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _spec(name: str, what: str, summary: str, flags: tuple[Flag, ...] = ()) -> Command:
    return Command(name, f"berth {name} [OPTIONS] {what}", summary, flags, min_args=1)


STOP_SPEC = _spec(
    "stop",
    "CONTAINER [CONTAINER...]",
    "Stop one or more running containers",
    (
        Flag(("-s", "--signal"), "value", "Signal to send to the container"),
        Flag(("-t", "--timeout"), "int", "Seconds to wait before killing the container"),
    ),
)
KILL_SPEC = _spec(
    "kill",
    "CONTAINER [CONTAINER...]",
    "Kill one or more running containers",
    (Flag(("-s", "--signal"), "value", "Signal to send to the container"),),
)
RESTART_SPEC = _spec(
    "restart",
    "CONTAINER [CONTAINER...]",
    "Restart one or more containers",
    (
        Flag(("-s", "--signal"), "value", "Signal to send to the container"),
        Flag(("-t", "--timeout"), "int", "Seconds to wait before killing the container"),
    ),
)
PAUSE_SPEC = _spec("pause", "CONTAINER [CONTAINER...]", "Pause all processes within one or more containers")
UNPAUSE_SPEC = _spec(
    "unpause", "CONTAINER [CONTAINER...]", "Unpause all processes within one or more containers"
)
WAIT_SPEC = _spec(
    "wait", "CONTAINER [CONTAINER...]", "Block until one or more containers stop, then print their exit codes"
)
RM_SPEC = _spec(
    "rm",
    "CONTAINER [CONTAINER...]",
    "Remove one or more containers",
    (
        Flag(("-f", "--force"), help="Force the removal of a running container (uses SIGKILL)"),
        Flag(("-l", "--link"), help="Remove the specified link"),
        Flag(("-v", "--volumes"), help="Remove anonymous volumes associated with the container"),
    ),
)
RENAME_SPEC = Command(
    "rename", "berth rename CONTAINER NEW_NAME", "Rename a container", (), min_args=2, max_args=2
)


def _each(ctx: Any, names: list[str], action: Callable[[str], str | None]) -> int:
    from berth.cli.main import report_error

    failed = False
    for name in names:
        try:
            shown = action(name)
        except NotModified:
            shown = name
        except BerthError as exc:
            report_error(ctx, exc)
            failed = True
            continue
        if shown is not None:
            ctx.out(f"{shown}\n")
            ctx.stdout.flush()
    return 1 if failed else 0


def _post(ctx: Any, name: str, verb: str, query: dict[str, Any] | None = None) -> str:
    ctx.client.call("POST", f"/containers/{path_escape(name)}/{verb}", query=query)
    return name


def stop(ctx: Any, argv: list[str]) -> int:
    opts, args = ctx.parse(STOP_SPEC, argv)
    query = {"t": opts["timeout"], "signal": opts["signal"]}
    return _each(ctx, args, lambda n: _post(ctx, n, "stop", query))


def restart(ctx: Any, argv: list[str]) -> int:
    opts, args = ctx.parse(RESTART_SPEC, argv)
    query = {"t": opts["timeout"], "signal": opts["signal"]}
    return _each(ctx, args, lambda n: _post(ctx, n, "restart", query))


def kill(ctx: Any, argv: list[str]) -> int:
    opts, args = ctx.parse(KILL_SPEC, argv)
    query = {"signal": opts["signal"]}
    return _each(ctx, args, lambda n: _post(ctx, n, "kill", query))


def pause(ctx: Any, argv: list[str]) -> int:
    _, args = ctx.parse(PAUSE_SPEC, argv)
    return _each(ctx, args, lambda n: _post(ctx, n, "pause"))


def unpause(ctx: Any, argv: list[str]) -> int:
    _, args = ctx.parse(UNPAUSE_SPEC, argv)
    return _each(ctx, args, lambda n: _post(ctx, n, "unpause"))


def rename(ctx: Any, argv: list[str]) -> int:
    _, (old, new) = ctx.parse(RENAME_SPEC, argv)
    from berth.errors import InvalidParameter

    if not new.strip():
        raise InvalidParameter("Error: Neither old nor new names may be empty")
    from berth.cli.main import report_error

    try:
        ctx.client.call("POST", f"/containers/{path_escape(old)}/rename", query={"name": new})
    except BerthError as exc:
        report_error(ctx, exc)
        ctx.err(f"Error: failed to rename container named {old}\n")
        return 1
    return 0


def wait_exit(ctx: Any, name: str, condition: str | None = None) -> int:
    """POST /wait and block for the body; the status code (125 for a wait error, like docker)."""
    body = (
        ctx.client.call(
            "POST",
            f"/containers/{path_escape(name)}/wait",
            query={"condition": condition} if condition else None,
        )
        or {}
    )
    error = body.get("Error")
    if error and error.get("Message"):
        from berth.errors import SystemFailure

        raise SystemFailure(error["Message"])
    return int(body.get("StatusCode", 0))


def wait(ctx: Any, argv: list[str]) -> int:
    _, args = ctx.parse(WAIT_SPEC, argv)
    return _each(ctx, args, lambda n: str(wait_exit(ctx, n)))


def rm(ctx: Any, argv: list[str]) -> int:
    opts, args = ctx.parse(RM_SPEC, argv)
    query = {
        "force": "1" if opts["force"] else None,
        "v": "1" if opts["volumes"] else None,
        "link": "1" if opts["link"] else None,
    }

    def remove(name: str) -> str:
        ctx.client.call("DELETE", f"/containers/{path_escape(name.strip('/'))}", query=query)
        return name

    return _each(ctx, args, remove)
