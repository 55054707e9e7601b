"""Exec jobs: create, start (attached or detached), inspect, resize.

An exec runs through the container's monitor, which forks a process into the container's
namespaces and cgroup. Its process object is the container's own (``config.json``, written at
start) with the exec's command, env, cwd, terminal and ``-u`` user (moby's way), so it gets the
init's capabilities, no_new_privileges, rlimits and groups; ``--privileged`` adds every
capability, as with Docker. The exit code is recorded *before* the hijacked stream closes: the
CLI reads ``GET /exec/{id}/json`` right after EOF and does not poll. A start error (missing
binary, bad workdir) travels inside the stream as a stdout frame, with ExitCode 126, as dockerd
does.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from berth.container.escape import DEFAULT_DETACH_KEYS
from berth.daemon.attach import StdinEnd, detach_keys, pump_stdin
from berth.daemon.createconfig import merge_env
from berth.daemon.handlers import HandlerTable
from berth.daemon.live import frame
from berth.daemon.users import resolve_user
from berth.drivers.exec.spec import build_env, exec_process_spec
from berth.engine import ByteSink, Duplex, Job
from berth.errors import Conflict, ContainerStartError, InvalidParameter, NotFound
from berth.jobs import execs as jobs
from berth.jobs.results import IdOnly, JSONObject
from berth.jsondoc import go_fields

if TYPE_CHECKING:
    from berth.container.record import Container
    from berth.daemon.daemon import Daemon
    from berth.drivers.exec.driver import ExecProcess, Output

handlers = HandlerTable()


@dataclass
class ExecInstance:
    id: str
    container_id: str
    config: dict[str, Any]
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    pid: int = 0
    handle: ExecProcess | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    detach_keys: bytes = b""  # as given at create; empty: the default sequence

    def inspect(self) -> dict[str, Any]:
        cmd = list(self.config.get("Cmd") or [])
        return {
            "ID": self.id,
            "Running": self.running,
            "ExitCode": self.exit_code,
            "ProcessConfig": {
                "tty": bool(self.config.get("Tty")),
                "entrypoint": cmd[0] if cmd else "",
                "arguments": cmd[1:],
                "privileged": bool(self.config.get("Privileged")),
                **({"user": self.config["User"]} if self.config.get("User") else {}),
            },
            "OpenStdin": bool(self.config.get("AttachStdin")),
            "OpenStderr": bool(self.config.get("AttachStderr")),
            "OpenStdout": bool(self.config.get("AttachStdout")),
            "CanRemove": False,
            "ContainerID": self.container_id,
            "DetachKeys": base64.b64encode(self.detach_keys).decode(),  # Go marshals []byte as base64
            "Pid": self.pid,
        }


def _running_container(d: Daemon, ref: str) -> Container:
    c = d.find(ref)
    if c.state.status == "paused":
        raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
    if not c.state.running or d.session(c.id).handle is None:
        raise Conflict(f"Container {c.id} is not running")
    return c


# Docker's ExecConfig (a body's keys match them case-insensitively, as Go decodes it)
EXEC_FIELDS = ("User", "Privileged", "Tty", "ConsoleSize", "AttachStdin", "AttachStderr", "AttachStdout", "Detach",
               "DetachKeys", "Env", "WorkingDir", "Cmd")


@handlers.on(jobs.ExecCreate)
async def create(d: Daemon, req: jobs.ExecCreate, job: Job) -> IdOnly:
    c = _running_container(d, req.id)
    config = go_fields(req.config, EXEC_FIELDS)
    cmd = config.get("Cmd")
    if isinstance(cmd, str):
        cmd = [cmd]
    if not cmd or not isinstance(cmd, list):
        raise InvalidParameter("No exec command specified")
    for key in ("Env", "Cmd"):
        if config.get(key) is not None and not all(isinstance(x, str) for x in config[key]):
            raise InvalidParameter(f"json: cannot unmarshal into field {key} of type []string")
    config = dict(config, Cmd=[str(x) for x in cmd])
    raw_keys = config.get("DetachKeys") or ""
    if not isinstance(raw_keys, str):
        raise InvalidParameter("json: cannot unmarshal into field DetachKeys of type string")
    keys = detach_keys(raw_keys, "escape") if raw_keys else b""
    ex = ExecInstance(id=secrets.token_hex(32), container_id=c.id, config=config, detach_keys=keys)
    d.live.find(c.id).execs[ex.id] = ex
    c.exec_ids.append(ex.id)
    d.publish(c, "exec_create: " + exec_action(config["Cmd"]), {"execID": ex.id})
    return {"Id": ex.id}


def exec_action(cmd: list[str]) -> str:
    """How dockerd names an exec in its events: the entrypoint, a space, the arguments."""
    return cmd[0] + " " + " ".join(cmd[1:])


def _find(d: Daemon, eid: str) -> ExecInstance:
    ex = d.live.exec(eid)
    if ex is None:
        raise NotFound(f"No such exec instance: {eid}")
    return ex


async def _process(d: Daemon, c: Container, cfg: dict[str, Any]) -> dict[str, Any]:
    """The exec's OCI process: the container's own (its walls, as the init got them) with the
    exec's command, environment, cwd, terminal and, with ``-u``, user."""
    container = await asyncio.to_thread(_container_process, c)
    user = None
    if cfg.get("User"):
        user = await asyncio.to_thread(resolve_user, d.graph, c, cfg["User"])
    # moby's CreateDaemonEnvironment: PATH, HOSTNAME (and TERM with a tty) unless the
    # container's or the exec's own environment sets them
    env = build_env(tuple(merge_env(list(c.config.get("Env") or []), list(cfg.get("Env") or []))),
                    str(c.config.get("Hostname") or ""), bool(cfg.get("Tty")))
    process = exec_process_spec(
        container,
        list(cfg["Cmd"]),
        env,
        cfg.get("WorkingDir") or c.config.get("WorkingDir") or "/",
        bool(cfg.get("Tty")),
        user=user,
        privileged=bool(cfg.get("Privileged")),
        container_privileged=bool(c.host_config.get("Privileged")),
    )
    size = cfg.get("ConsoleSize") or [0, 0]
    if cfg.get("Tty") and len(size) == 2 and size[0] and size[1]:
        # the terminal's size from the start (API 1.42+ clients send it at create): an OCI
        # runtime sets it on the pty before the process runs, as runc does for dockerd
        process["consoleSize"] = {"height": int(size[0]), "width": int(size[1])}
    return process


exec_process = _process  # for the health checks' probes (daemon/health.py)


def _container_process(c: Container) -> dict[str, Any]:
    """The process object of the running container's config.json (written at its start)."""
    path = Path(c.dir) / "config.json"
    try:
        process = json.loads(path.read_text()).get("process")
    except (OSError, ValueError) as exc:
        raise ContainerStartError(f"exec in container {c.id}: read its spec '{path}': {exc}", 126) from exc
    if not isinstance(process, dict):
        raise ContainerStartError(f"exec in container {c.id}: its spec '{path}' has no process", 126)
    return process


@handlers.on(jobs.ExecStart)
async def start(d: Daemon, req: jobs.ExecStart, job: Job) -> None:
    ex = _find(d, req.id)
    if ex.started:
        raise Conflict(f"Exec command {ex.id} is already running" if ex.running else f"Exec command {ex.id} has already run")
    c = _running_container(d, ex.container_id)
    ex.started = True
    # The start request's Tty, not the exec's, says how the stream is framed (dockerd: frames
    # whenever it is false, which docker-py relies on); a raw stream has no room for stderr.
    raw = req.tty
    conn = None if req.detach or job.stdout is None else job.duplex
    if conn is not None:
        # The 101 goes out before the process exists, as with dockerd: clients that read the
        # response headers through a buffered reader (docker-py) would otherwise swallow the
        # first output frame together with the headers.
        await conn.start()
    try:
        process = await _process(d, c, ex.config)
        run = d.session(c.id).handle
        if run is None:
            raise Conflict(f"Container {c.id} is not running")  # it exited meanwhile
        handle = await run.exec(process, open_stdin=bool(ex.config.get("AttachStdin")))
    except ContainerStartError as exc:
        ex.exit_code = 126
        ex.done.set()
        if conn is not None:
            await conn.write(exc.message.encode() + b"\r\n" if raw else frame(1, exc.message.encode() + b"\r\n"))
        return
    ex.handle, ex.pid, ex.running = handle, handle.pid, True
    d.publish(c, "exec_start: " + exec_action(ex.config["Cmd"]), {"execID": ex.id})
    if conn is None:
        d.spawn(_finish(d, ex, handle), f"exec {ex.id[:12]}")
        return
    end = await _attached(ex, conn, handle, raw)
    if end is None:
        await _finish(d, ex, handle)
        return
    # the detach keys, or the client's EOF on a TTY: the stream ends, the process goes on
    if end is StdinEnd.DETACH:
        d.publish(c, "exec_detach", {"execID": ex.id})
    d.spawn(_finish(d, ex, handle), f"exec {ex.id[:12]}")


async def _attached(ex: ExecInstance, conn: Duplex, handle: ExecProcess, raw: bool) -> StdinEnd | None:
    """Stream until the process's output ends (None) or the client leaves it running (why).

    Stdin as dockerd's exec attach: on a TTY through the escape proxy, and the client's EOF
    ends the stream there (the process keeps its terminal); without a TTY the EOF closes the
    process's stdin and the output goes on.
    """
    tty = bool(ex.config.get("Tty"))
    want = {1: ex.config.get("AttachStdout", True), 2: ex.config.get("AttachStderr", True) and not raw}
    output = handle.output()
    out_task = asyncio.ensure_future(_copy_output(output, conn, raw, want))
    waits: set[asyncio.Future[Any]] = {out_task}
    stdin_task = None
    if ex.config.get("AttachStdin"):
        keys = (ex.detach_keys or DEFAULT_DETACH_KEYS) if tty else None
        stdin_task = asyncio.ensure_future(pump_stdin(conn, handle.write_stdin, keys))
        waits.add(stdin_task)
    try:
        while True:
            finished, waits = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if out_task in finished:
                return None
            assert stdin_task is not None
            end = stdin_task.result()
            if end is StdinEnd.DETACH or (end is StdinEnd.EOF and tty):
                return end
            if end is StdinEnd.EOF:
                try:
                    await handle.close_stdin()
                except Conflict:
                    pass  # the process is gone already: its output ends the stream
    finally:
        for t in waits:
            t.cancel()
        output.close()


async def _copy_output(output: Output, out: ByteSink, raw: bool, want: dict[int, bool]) -> None:
    async for stream, data in output:
        if want.get(stream, True):
            try:
                await out.write(data if raw else frame(stream, data))
            except (ConnectionError, OSError):
                return  # the client left; the process goes on and its code is still recorded


async def _finish(d: Daemon, ex: ExecInstance, handle: ExecProcess) -> None:
    ex.exit_code = await handle.wait()
    ex.running = False
    ex.done.set()
    c = d.live.record(ex.container_id)
    if c is not None:
        d.publish(c, "exec_die", {"execID": ex.id, "exitCode": str(ex.exit_code)})


@handlers.on(jobs.ExecInspect)
async def inspect(d: Daemon, req: jobs.ExecInspect, job: Job) -> JSONObject:
    return _find(d, req.id).inspect()


@handlers.on(jobs.ExecResize)
async def resize(d: Daemon, req: jobs.ExecResize, job: Job) -> None:
    ex = _find(d, req.id)
    if ex.handle is None or not ex.running:
        raise Conflict(f"Exec {ex.id} is not running")
    await ex.handle.resize(req.h, req.w)


