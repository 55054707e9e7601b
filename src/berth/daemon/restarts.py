"""Restart policies: ``--restart no | on-failure[:N] | always | unless-stopped``, as dockerd applies them.

The model is moby's restart manager, one per container, in memory:

- at each exit of a container with a policy, the back-off grows: 100 ms the first time, doubled
  each time after, at most one minute; a run that lasted 10 s or more starts it again at 100 ms;
- ``always`` restarts, ``unless-stopped`` restarts unless a user stopped or killed the container,
  ``on-failure`` restarts after a non-zero exit while ``RestartCount`` is below ``N`` (0: no limit);
- a restart makes the container ``restarting`` (inspect: ``Running`` and ``Restarting`` true, ps:
  ``Restarting (1) 2 seconds ago``), adds one to ``RestartCount`` and starts it after the back-off;
  the exit is published (``die``) and ``wait`` returns for it as for any other;
- ``docker stop`` and ``docker kill`` (with SIGKILL or the container's stop signal, or any signal when
  the container names none) tell the container to stay down ("exit on next"): no restart for that exit,
  and a pending one is cancelled; both also mark it stopped by hand (``unless-stopped`` stays down);
- a user's ``docker start`` or ``docker restart`` starts afresh: ``RestartCount`` 0, no back-off, not
  stopped by hand;
- when berthd starts, every container that is not running and whose policy says so is started
  (``always`` even when stopped by hand, as dockerd does; ``unless-stopped`` only if not).

A start that fails (the command cannot be run) ends the policy's restarts, as with dockerd.

    should_restart({"Name": "on-failure", "MaximumRetryCount": 3}, exit_code=1,
                   manually_stopped=False, restart_count=2)      # True: the third restart
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from berth.container.record import Container, parse_rfc3339
from berth.errors import BerthError, NotModified

if TYPE_CHECKING:
    from berth.daemon.daemon import Daemon
    from berth.drivers.exec.model import ExitStatus

log = logging.getLogger("berth.daemon")
FIRST_DELAY = 0.1  # seconds
MAX_DELAY = 60.0
RESET_AFTER = 10.0  # a run this long starts the back-off again


@dataclass
class Backoff:
    delay: float = 0.0
    exit_on_next: bool = False  # a stop or kill: the next exit is not restarted
    task: asyncio.Task[Any] | None = None


def next_delay(previous: float, ran_for: float) -> float:
    """The back-off before the next restart (moby's restartmanager)."""
    if ran_for >= RESET_AFTER or previous == 0:
        return FIRST_DELAY
    return min(previous * 2, MAX_DELAY)


def policy_of(c: Container) -> tuple[str, int]:
    policy = c.host_config.get("RestartPolicy") or {}
    return str(policy.get("Name") or "no"), int(policy.get("MaximumRetryCount") or 0)


def should_restart(name: str, max_retries: int, exit_code: int, manually_stopped: bool, restart_count: int) -> bool:
    if name == "always":
        return True
    if name == "unless-stopped":
        return not manually_stopped
    if name == "on-failure":
        return exit_code != 0 and (max_retries == 0 or restart_count < max_retries)
    return False


def _backoff(d: Daemon, cid: str) -> Backoff:
    lc = d.live.any(cid)
    if lc is None:
        return Backoff()  # the container went meanwhile: nothing keeps this one
    if lc.restart is None:
        lc.restart = Backoff()
    return lc.restart


def after_exit(d: Daemon, c: Container, status: ExitStatus) -> bool:
    """With the start lock held, right after an exit was recorded: make the container
    ``restarting`` and schedule its start if its policy says so."""
    name, max_retries = policy_of(c)
    if name == "no":
        return False
    b = _backoff(d, c.id)
    if b.exit_on_next or bool(getattr(status, "error", "")):
        return False  # stopped on purpose, or a start that failed
    ran_for = parse_rfc3339(c.state.finished_at) - parse_rfc3339(c.state.started_at)
    b.delay = next_delay(b.delay, ran_for)
    if not should_restart(name, max_retries, c.state.exit_code, c.manually_stopped, c.restart_count):
        return False
    c.restart_count += 1
    c.state.to_restarting()
    b.task = d.spawn(_start_after(d, c, b.delay), f"restart container {c.id[:12]}")
    return True


async def _start_after(d: Daemon, c: Container, delay: float) -> None:
    from berth.daemon.lifecycle import start_container, start_lock

    await asyncio.sleep(delay)
    if c.id not in d.live or c.state.status != "restarting":
        return
    try:
        await start_container(d, c)
    except NotModified:
        return
    except BerthError as exc:
        log.warning("restart container %s (policy %s): %s", c.id[:12], policy_of(c)[0], exc.message)
        async with start_lock(d, c.id):
            if c.state.status == "restarting":
                c.state.status = "exited"
                await d.persist(c)


async def stay_down(d: Daemon, c: Container, by_hand: bool = True) -> bool:
    """A stop or kill: no restart for the coming exit, a pending one cancelled (True if one
    was), and with ``by_hand`` the container counts as stopped by a user."""
    b = _backoff(d, c.id)
    b.exit_on_next = True
    if by_hand:
        c.manually_stopped = True
    cancelled = False
    if b.task is not None and not b.task.done():
        b.task.cancel()
        cancelled = True
    if c.state.status == "restarting":
        c.state.status = "exited"
        cancelled = True
    if by_hand or cancelled:
        await d.persist(c)
    return cancelled


def fresh_start(d: Daemon, c: Container) -> None:
    """A user's start or restart: no back-off, RestartCount 0, not stopped by hand."""
    forget(d, c.id)
    c.restart_count = 0
    c.manually_stopped = False


def forget(d: Daemon, cid: str) -> None:
    lc = d.live.any(cid)
    old = lc.restart if lc is not None else None
    if lc is not None:
        lc.restart = None
    if old is not None and old.task is not None and not old.task.done():
        old.task.cancel()


async def at_startup(d: Daemon) -> None:
    """berthd starts: containers whose policy says so are started again (in the background),
    as dockerd does for its containers at start-up."""
    from berth.daemon.lifecycle import start_container

    for c in d.live.records():
        if c.state.status == "restarting":
            c.state.status = "exited"  # its pending start went with the daemon
            await d.persist(c)
        if c.state.status not in ("exited", "created"):
            continue
        name, max_retries = policy_of(c)
        if not should_restart(name, max_retries, c.state.exit_code, c.manually_stopped, c.restart_count):
            continue
        fresh_start(d, c)

        async def start(c: Container = c) -> None:
            try:
                await start_container(d, c)
            except BerthError as exc:
                log.warning("start container %s at daemon start (policy %s): %s", c.id[:12], policy_of(c)[0], exc.message)

        d.spawn(start(), f"start container {c.id[:12]} (restart policy)")
