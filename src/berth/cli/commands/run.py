"""``berth run``: docker's exact sequence - create, attach, wait, start, stream, exit status.

1. ``POST /containers/create`` (a missing image: ``Unable to find image ...``, exit 125);
2. unless ``-d``: ``POST /containers/{id}/attach`` on its own connection, expecting ``101``;
   stdin (``-i``) starts flowing at once, or the stream is half-closed;
3. ``POST /containers/{id}/wait?condition=next-exit`` (``removed`` with ``--rm``): only the
   headers are read now, so the exit cannot be missed;
4. ``POST /containers/{id}/start``; its failure picks the exit code from the text
   (127: not found, 126: not executable, else 125);
5. output until the daemon ends the stream (demuxed unless ``-t``; ``-t`` puts the terminal in
   raw mode and follows its size); signals are forwarded as ``kill`` (not with ``-t``);
6. the wait body gives the exit status. ``-d`` prints the full id instead and drops the wait.
"""

from __future__ import annotations

from berth.cli.commands.create import create_container
from berth.cli.containerspec import RUN_SPEC, start_error_exit_code
from berth.cli.session import Session, side_client, signal_proxy
from berth.cli.terminal import fd_of, is_tty
from berth.errors import BerthError, InvalidParameter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _fail(ctx: Any, exc: BerthError, code: int = 125) -> int:
    from berth.client.status import from_daemon

    text = f"Error response from daemon: {exc.message}" if from_daemon(exc) else exc.message
    ctx.stdout.flush()
    ctx.err(f"berth: {text}\n\nRun 'berth run --help' for more information\n")
    return code


def parse_detach_keys(text: str | None) -> bytes:
    """``ctrl-p,ctrl-q`` -> b"\\x10\\x11" (docker's default when empty)."""
    if not text:
        return b"\x10\x11"
    out = bytearray()
    for part in text.split(","):
        part = part.strip()
        if part.startswith("ctrl-") and len(part) == 6:
            ch = part[5].lower()
            if "a" <= ch <= "z":
                out.append(ord(ch) - ord("a") + 1)
            elif ch in "@[\\]^_":
                out.append({"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}[ch])
            else:
                raise InvalidParameter(f"invalid detach keys ({text}) provided")
        elif len(part) == 1:
            out.append(ord(part))
        else:
            raise InvalidParameter(f"invalid detach keys ({text}) provided")
    return bytes(out)


def attach_query(body: dict[str, Any]) -> dict[str, str | None]:
    return {
        "stream": "1",
        "stdin": "1" if body.get("AttachStdin") else None,
        "stdout": "1" if body.get("AttachStdout") else None,
        "stderr": "1" if body.get("AttachStderr") else None,
    }


def run(ctx: Any, argv: list[str]) -> int:
    opts, args = ctx.parse(RUN_SPEC, argv)
    try:
        keys = parse_detach_keys(opts["detach_keys"])
        if opts["detach"] and opts["attach"]:
            raise InvalidParameter("Conflicting options: -a and -d")
    except InvalidParameter as exc:
        ctx.usage_error(RUN_SPEC, exc.message)
    if not opts["detach"] and opts["interactive"] and opts["tty"] and not is_tty(fd_of(ctx.stdin)):
        raise InvalidParameter("the input device is not a TTY")
    try:
        cid = create_container(ctx, opts, args)
    except BerthError as exc:
        return _fail(ctx, exc)
    return run_created(ctx, cid, opts, keys)


def run_created(ctx: Any, cid: str, opts: dict[str, Any], keys: bytes) -> int:
    client = ctx.client
    detach = opts["detach"]
    tty = bool(opts["tty"])
    attach = [a.lower() for a in opts["attach"]]
    with_stdin = (not detach) and (opts["interactive"] if not attach else "stdin" in attach)
    session: Session | None = None
    try:
        if not detach:
            query = {
                "stream": "1",
                "stdin": "1" if with_stdin else None,
                "stdout": "1" if (not attach or "stdout" in attach) else None,
                "stderr": "1" if (not attach or "stderr" in attach) else None,
            }
            raw = client.hijack(f"/containers/{cid}/attach", query=query)
            session = Session(ctx, raw, tty, with_stdin, keys)
            session.begin()
        condition = "removed" if opts["rm"] and not detach else "next-exit"
        waiter = client.open("POST", f"/containers/{cid}/wait", query={"condition": condition})
    except BerthError as exc:
        return _fail(ctx, exc)
    try:
        client.call("POST", f"/containers/{cid}/start")
    except BerthError as exc:
        if session is not None:
            session.raw.close()
        code = start_error_exit_code(exc.message)
        if opts["rm"] and not detach:
            _read_wait(waiter)  # the daemon removes the container; let that finish first
        else:
            waiter.close()
        return _fail(ctx, exc, code)
    if detach:
        waiter.close()
        ctx.out(cid + "\n")
        return 0
    assert session is not None
    side = side_client(ctx)
    try:
        with signal_proxy(
            lambda name: side.call("POST", f"/containers/{cid}/kill", query={"signal": name}),
            opts["sig_proxy"] and not tty,
        ):
            attached = session.stream(
                lambda h, w: side.call("POST", f"/containers/{cid}/resize", query={"h": h, "w": w})
            )
    finally:
        side.close()
    if not attached:
        waiter.close()
        ctx.stdout.flush()
        ctx.err("read escape sequence\n")
        return 0
    try:
        status, error = _read_wait(waiter)
    except BerthError as exc:
        return _fail(ctx, exc)
    if error:
        ctx.err(f"berth: Error response from daemon: {error}\n")
        return 125
    return status


def _read_wait(waiter: Any) -> tuple[int, str]:
    body = waiter.json() or {}
    err = body.get("Error") or {}
    return int(body.get("StatusCode", 0)), (err.get("Message") or "") if isinstance(err, dict) else ""
