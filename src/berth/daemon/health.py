"""Health checks: the image's ``HEALTHCHECK`` or ``--health-*``, run as dockerd runs them.

Model (moby's ``daemon/health.go``): while a container with a check runs, a monitor waits the
interval (30 s by default), then runs the probe as an exec in the container (``CMD``: the
arguments; ``CMD-SHELL``: ``/bin/sh -c``), with the container's user, working directory and
environment, and the ``exec_create``/``exec_start``/``exec_die`` events any exec has. A probe
that exits 0 makes the container ``healthy`` and clears the failing streak; anything else (an
exit code, a probe past its timeout: exit -1, ``Health check exceeded timeout (30s)``, an exec
that cannot start: exit -1 and its error) adds one to the streak, except while the container is
still ``starting`` within its start period; ``retries`` failures in a row (3 by default) make it
``unhealthy``. Each change of status is an event ``health_status: <status>``. The last five
results are kept with at most 4096 bytes of output each. At start the status is ``starting`` and
the streak 0 (the log is kept); when the container stops the status becomes ``unhealthy``, as
dockerd marks it. A probe past its timeout is killed (dockerd 20.10 leaves it running).

    Healthcheck: {"Test": ["CMD-SHELL", "curl -f localhost"], "Interval": 1e9, "Retries": 2}
    State.Health: {"Status": "healthy", "FailingStreak": 0, "Log": [{"Start", "End", "ExitCode", "Output"}]}
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal as signals
from typing import TYPE_CHECKING, Any

from berth.container.record import Container, now_rfc3339, parse_rfc3339
from berth.errors import BerthError

if TYPE_CHECKING:
    from berth.daemon.daemon import Daemon

log = logging.getLogger("berth.daemon")
DEFAULT_INTERVAL = 30_000_000_000  # ns
DEFAULT_TIMEOUT = 30_000_000_000
DEFAULT_RETRIES = 3
MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096
STATUSES = ("starting", "healthy", "unhealthy", "none")


def probe_command(c: Container) -> list[str] | None:
    """The probe's argv, or None when the container has no check (none, NONE, an unknown type)."""
    check = c.config.get("Healthcheck") or {}
    test = list(check.get("Test") or [])
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD" and len(test) > 1:
        return test[1:]
    if test[0] == "CMD-SHELL" and len(test) > 1:
        return [*(c.config.get("Shell") or ["/bin/sh", "-c"]), " ".join(test[1:])]
    return None


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String()`` for the durations a check takes (``30s``, ``500ms``, ``1m30s``)."""
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return f"{ns / size:.9f}".rstrip("0").rstrip(".") + unit
    total = ns / 1e9
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    if minutes:
        return f"{int(minutes)}m{text}"
    return text


def _setting(c: Container, key: str, default: int) -> int:
    value = int((c.config.get("Healthcheck") or {}).get(key) or 0)
    return value if value > 0 else default


def start_monitor(d: Daemon, c: Container) -> None:
    """At each start (and after a daemon restart, for a container still running)."""
    stop_monitor(d, c, mark=False)
    cmd = probe_command(c)
    if cmd is None:
        return
    health = c.state.health or {"Log": []}
    health.update(Status="starting", FailingStreak=0)
    health.setdefault("Log", [])
    c.state.health = health
    lc = d.live.any(c.id)
    if lc is not None:
        lc.health = d.spawn(_monitor(d, c, cmd, c.state.started_at), f"health check {c.id[:12]}")


def stop_monitor(d: Daemon, c: Container, mark: bool = True) -> None:
    """At exit: the monitor stops and the status becomes ``unhealthy`` (dockerd's compatibility rule)."""
    lc = d.live.any(c.id)
    task = lc.health if lc is not None else None
    if lc is not None:
        lc.health = None
    if task is not None and not task.done():
        task.cancel()
    if mark and c.state.health is not None and task is not None:
        c.state.health["Status"] = "unhealthy"


async def _monitor(d: Daemon, c: Container, cmd: list[str], run: str) -> None:
    interval = _setting(c, "Interval", DEFAULT_INTERVAL) / 1e9
    while True:
        await asyncio.sleep(interval)
        if c.id not in d.live or not c.state.running or c.state.started_at != run:
            return
        result = await _probe(d, c, cmd, _setting(c, "Timeout", DEFAULT_TIMEOUT))
        if c.state.started_at != run or not c.state.running:
            return  # the run this probe was for has ended meanwhile
        await _record(d, c, result)


async def _probe(d: Daemon, c: Container, cmd: list[str], timeout_ns: int) -> dict[str, Any]:
    from berth.daemon.execs import exec_action, exec_process

    start = now_rfc3339()
    eid = secrets.token_hex(32)
    shown = exec_action(cmd)
    d.publish(c, "exec_create: " + shown, {"execID": eid})
    session = d.session(c.id)
    handle = session.handle if session is not None else None
    try:
        if handle is None:
            raise BerthError(f"Container {c.id} is not running")
        process = await exec_process(d, c, {"Cmd": cmd, "Env": []})
        probe = await handle.exec(process, open_stdin=False)
    except BerthError as exc:
        return {"Start": start, "End": now_rfc3339(), "ExitCode": -1, "Output": exc.message}
    d.publish(c, "exec_start: " + shown, {"execID": eid})
    output = bytearray()

    async def collect() -> int:
        stream = probe.output()
        try:
            async for _fd, data in stream:
                if len(output) < MAX_OUTPUT:
                    output.extend(data[: MAX_OUTPUT - len(output)])
        finally:
            stream.close()
        code: int = await probe.wait()
        return code

    task = asyncio.ensure_future(collect())
    try:
        code = await asyncio.wait_for(asyncio.shield(task), timeout_ns / 1e9)
    except TimeoutError:
        try:
            await probe.signal(signals.SIGKILL)
        except BerthError:
            pass  # it ended meanwhile
        code = await task
        d.publish(c, "exec_die", {"execID": eid, "exitCode": str(code)})
        return {"Start": start, "End": now_rfc3339(), "ExitCode": -1,
                "Output": f"Health check exceeded timeout ({go_duration(timeout_ns)})"}
    d.publish(c, "exec_die", {"execID": eid, "exitCode": str(code)})
    return {"Start": start, "End": now_rfc3339(), "ExitCode": code,
            "Output": output.decode("utf-8", "replace")}


async def _record(d: Daemon, c: Container, result: dict[str, Any]) -> None:
    health = c.state.health
    if health is None:
        return
    before = health.get("Status")
    health["Log"] = [*health.get("Log", []), result][-MAX_LOG_ENTRIES:]
    if result["ExitCode"] == 0:
        health["FailingStreak"] = 0
        health["Status"] = "healthy"
    else:
        counts = True
        if before == "starting":
            start_period = _setting(c, "StartPeriod", 0) / 1e9
            if parse_rfc3339(result["Start"]) - parse_rfc3339(c.state.started_at) < start_period:
                counts = False  # still within the start period
        if counts:
            health["FailingStreak"] = int(health.get("FailingStreak") or 0) + 1
            if health["FailingStreak"] >= _setting(c, "Retries", DEFAULT_RETRIES):
                health["Status"] = "unhealthy"
    await d.persist(c)
    if health["Status"] != before:
        d.publish(c, "health_status: " + health["Status"])


def status_of(c: Container) -> str:
    """What ``ps --filter health=`` compares: the status, or ``none`` without a check."""
    if c.state.health is None or probe_command(c) is None:
        return "none"
    return str(c.state.health.get("Status") or "none")
