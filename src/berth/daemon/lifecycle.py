"""Container lifecycle jobs: start, stop, kill, restart, pause, unpause, resize.

Start builds the OCI spec from the record (``berth.drivers.exec.spec``), asks the graph for
the rootfs mount plan, and has the exec driver create the container through its monitor; the
process runs only after the attached streams are bound (``Session.started``), so no early
output is lost. One watcher task per run waits for the exit and settles it (state, waiters,
events, ``--rm``).

Settling an exit holds the container's start lock and tears the run down (the monitor's
directory and cgroup) *before* the exit is visible: a ``restart`` or a ``kill`` that waits for
the exit finds the old run gone, and a new start cannot lose its files to the old run's
cleanup. A start whose process cannot be exec'd after the init's barrier (a missing
interpreter, a binary for another architecture) is settled as an exit with the runtime's
127/126 and text, so ``wait`` returns and ``--rm`` removes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal as signals
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from berth.container.logs import LogSettings, log_settings
from berth.container.record import Container, now_rfc3339
from berth.daemon import health, namespaces, netsettings, remap, restarts, volumemounts
from berth.daemon.devices import apply as apply_devices
from berth.daemon.devices import reads_host
from berth.daemon.faults import crash_point
from berth.daemon.handlers import HandlerTable
from berth.daemon.propagation import check_sources as check_propagation
from berth.daemon.users import resolve_user
from berth.daemon.volumes import make_bind_sources, publish_mounts, subpath_sources
from berth.engine import Job
from berth.errors import (
    BerthError,
    Conflict,
    ContainerStartError,
    InvalidParameter,
    NotFound,
    NotModified,
    SystemFailure,
)
from berth.jobs import containers as jobs
from berth.steptrace import mark

if TYPE_CHECKING:
    from berth.daemon.daemon import Daemon
    from berth.drivers.exec.driver import ContainerHandle
    from berth.drivers.exec.model import ExitStatus, OciRuntime
    from berth.libcontainer import Mount

log = logging.getLogger("berth.daemon")
handlers = HandlerTable()
KILL_SETTLE_TIMEOUT = 10.0  # seconds a SIGKILL waits for the exit to be settled
START_EXIT_TIMEOUT = 10.0  # seconds to wait for the exit of an init whose exec failed


def parse_signal(text: str, default: int = signals.SIGKILL) -> int:
    if not text:
        return default
    t = text.upper()
    if t.isdigit():
        num = int(t)
        if 0 < num < 65:
            return num
    else:
        name = t if t.startswith("SIG") else "SIG" + t
        if name in signals.Signals.__members__:
            return int(signals.Signals[name])
    raise InvalidParameter(f"Invalid signal: {text}")


async def _spawn(d: Daemon, c: Container, attached_: Callable[[], None] = lambda: None) -> ContainerHandle:
    # The network namespace is made (and wired) by the network driver before the container:
    # the spec joins it by path. What the start reads and makes on the host (the root's mount
    # plan, the user, bind sources) is prepared in a thread meanwhile (beside the attach's own
    # thread work, in the same thread when that is all the attach does: --network none): neither
    # waits for the other. Whatever fails after the attach releases it again.
    attached = await d.network.attach(netsettings.attach_request(c, d), beside=lambda: _host_side(d, c))
    crash_point("start.after-network")
    mark("d:network")
    attached_()  # the network is there: the run may be recorded
    try:
        host = attached.beside
        if isinstance(host, BaseException):
            raise host
        assert isinstance(host, _HostSide)
        return await _spawn_in(d, c, attached.netns, host)
    except BaseException:
        await d.network.release(c.id)
        raise


@dataclasses.dataclass(frozen=True)
class _HostSide:
    """What :func:`_host_side` found and made for a start."""

    rootfs: Path
    mounts: list[Mount]
    user: tuple[int, int, list[int]]
    devices: list[dict[str, Any]]
    sources: dict[str, str]


def _host_side(d: Daemon, c: Container) -> _HostSide:
    """In a thread, all at once (each hop to a thread costs the loop a wake-up, 0.3-1 ms on a
    loaded machine): the root's mount point and mount plan, missing bind sources, their
    propagation checked, a remapped container's own files chowned, the user resolved in the
    image, the host's devices for --privileged, volume subpaths."""
    rootfs = Path(c.dir) / "rootfs"
    rootfs.mkdir(exist_ok=True)
    make_bind_sources(c)
    check_propagation(c.mounts, str(d.cfg.data_root))
    mounts = d.graph.rootfs_mounts(c.id, str(rootfs))
    if c.userns:
        remap.own_container_files(c, mounts)
        if not d.cfg.idmap_layers:  # a kernel without id-mapped layers: dockerd's chowned copies
            from berth.drivers.graph.remapcopy import premapped

            mounts = premapped(mounts, c.userns)
    user = resolve_user(d.graph, c, c.config.get("User") or "")
    devices: list[dict[str, Any]] = []
    if c.host_config.get("Privileged"):
        from berth.libcontainer.hostdevices import host_devices

        devices = host_devices()
    return _HostSide(rootfs, mounts, user, devices, subpath_sources(c))


async def _spawn_in(d: Daemon, c: Container, netns: str, host: _HostSide) -> ContainerHandle:
    from berth.daemon.specconv import spec_input
    from berth.drivers.exec.model import CreateRequest
    from berth.drivers.exec.spec import build_spec

    cdir = Path(c.dir)
    if c.userns:  # the network driver has written them by now
        await asyncio.to_thread(remap.own_container_files, c, None)
    rootfs, mounts = host.rootfs, host.mounts
    (uid, gid, groups), devices, sources = host.user, host.devices, host.sources
    from berth.daemon import initbinary

    init = None
    if initbinary.wanted(c.host_config, d.cfg.init):
        init = initbinary.init_path(d.cfg.init_path)
        if init is None:
            raise ContainerStartError("--init: no init binary: install berth-init (scripts/setup.sh) or set --init-path")
    try:
        joined, shm = namespaces.resolve(d, c)
        joined = remap.with_network_userns(d, c, netns, joined)
        volume_idmap = remap.container_volume_maps(d, c)
        inp = spec_input(
            c, str(rootfs), (uid, gid, groups), d.cfg.cgroup_parent, tuple(devices), sources, init, netns, joined, shm,
            volume_idmap,
        )
        spec = build_spec(inp)
        if reads_host(c.host_config):
            spec = await asyncio.to_thread(apply_devices, c.host_config, spec, d.cfg.cdi_spec_dirs)
        else:
            spec = apply_devices(c.host_config, spec, d.cfg.cdi_spec_dirs)
        mark("d:spec")
    except ContainerStartError:
        raise
    except InvalidParameter as exc:
        # a record the spec cannot be built from (a bad seccomp profile, an unknown capability):
        # a failed start like any other, so `run --rm` removes the container (as dockerd does)
        raise ContainerStartError(exc.message) from exc
    log_config = c.host_config.get("LogConfig") or {}
    if c.log_driver == "local":
        await asyncio.to_thread((cdir / "local-logs").mkdir, mode=0o700, exist_ok=True)
    logging = log_settings(log_config.get("Type") or "json-file", log_config.get("Config") or {}) if c.logs_kept \
        else LogSettings()
    request = CreateRequest(
        id=c.id,
        bundle=cdir,
        spec=spec,
        rootfs_mounts=list(mounts),
        tty=c.tty,
        open_stdin=bool(c.config.get("OpenStdin")),
        log_path=Path(c.log_path) if c.logs_kept else None,
        log_max_size=logging.max_size,
        log_max_files=logging.max_files,
        log_compress=logging.compress,
        runtime=_oci_runtime(d, c),
    )
    return await d.driver.create(request)


def _oci_runtime(d: Daemon, c: Container) -> OciRuntime | None:
    """The OCI runtime binary the container's recorded runtime names; None for berth's native one."""
    from berth.drivers.exec.model import OciRuntime

    try:
        binary = d.cfg.runtime_table.binary(c.host_config.get("Runtime"))
    except InvalidParameter as exc:  # configured when it was created, not any more
        raise ContainerStartError(exc.message) from exc
    return None if binary is None else OciRuntime(binary.name, binary.path, binary.args)


async def _record_exit(d: Daemon, c: Container, code: int, oom: bool, finished: str, error: str) -> None:
    """Store the record as it will be after the exit (the record in memory changes later)."""
    after = dataclasses.replace(c, state=dataclasses.replace(c.state))
    after.state.to_exited(code, oom_killed=oom, finished_at=finished, error=error)
    try:
        await d.store.aput(after)
    except SystemFailure as exc:
        log.error("%s (the exit is stored once the teardown is done)", exc)


def start_lock(d: Daemon, cid: str) -> asyncio.Lock:
    """The container's lock for start and exit settlement (a throw-away one once it is gone)."""
    lc = d.live.any(cid)
    return lc.lock if lc is not None else asyncio.Lock()


async def start_container(d: Daemon, c: Container) -> None:
    # One start at a time per container: a second concurrent start waits, then finds the
    # container running (304) instead of spawning a second monitor for the same id.
    async with start_lock(d, c.id):
        await _start_locked(d, c)


async def _start_locked(d: Daemon, c: Container) -> None:
    mark("d:start")
    lc = d.live.get(c.id)
    if lc is None:
        raise NotFound(f"No such container: {c.id}")
    if c.state.status == "paused":
        raise Conflict("cannot start a paused container, try unpause instead")
    if c.state.running:
        raise NotModified("container already started")
    if c.state.status in ("removing", "dead"):
        raise Conflict(f"cannot start container {c.id}: it is {c.state.status}")
    session = lc.session
    # The record says "running" before the process runs (a daemon killed after the start must
    # find a run to reconnect to). It is written while the container is made (from the network's
    # attach on) rather than after (a hop to the store's thread less on the way); its pid is 0
    # (a restore takes the pid from the monitor). A start that fails writes its failure after it.
    running = dataclasses.replace(c, state=dataclasses.replace(c.state))
    running.state.to_running(0)
    saving: list[asyncio.Future[None]] = []
    try:
        await volumemounts.acquire(d, c)  # volumes with mount options (-o type=tmpfs ...)
        handle = await _spawn(d, c, lambda: saving.append(asyncio.ensure_future(d.store.aput(running))))
    except ContainerStartError as exc:
        await asyncio.gather(*saving, return_exceptions=True)
        await volumemounts.release(d, c)
        lc.start_failed(exc.exit_code, exc.message)
        await d.persist(c)
        await _fail_waiters_on_start_error(d, c, exc.exit_code)
        if exc.exit_code in (126, 127):
            raise
        # dockerd: 400 for a command that is missing or cannot run, 500 for any other failure
        raise SystemFailure(exc.message) from exc
    except BerthError as exc:
        # before the monitor (a volume subpath that escapes, a bind source that cannot be
        # made): dockerd records the error with exit code 128, and --rm removes the container
        await asyncio.gather(*saving, return_exceptions=True)
        await volumemounts.release(d, c)
        lc.start_failed(128, exc.message)
        await d.persist(c)
        await _fail_waiters_on_start_error(d, c, 128)
        raise
    except BaseException:
        if saving:
            await asyncio.gather(*saving, return_exceptions=True)
            await d.persist(c)  # not running after all
        raise
    crash_point("start.after-create")
    before = dataclasses.replace(c.state)
    lc.to_running(handle.pid)
    c.state.started_at = running.state.started_at  # as recorded
    try:
        await saving[0]
        lc.unsaved = False
    except SystemFailure:
        # the record cannot say "running" (a full disk): do not run it; before its start the
        # monitor kills the init when the daemon lets go
        c.state = before
        await handle.close()
        await d.network.release(c.id)
        raise
    mark("d:saved")
    crash_point("start.after-save")
    await session.started(handle)
    mark("d:session")
    size = c.host_config.get("ConsoleSize") or [0, 0]
    if c.tty and size[0] and size[1]:
        # API ≥ 1.42 clients send the terminal size at create; it must be set before the
        # process runs (`docker run -it ... stty size` reads it at once).
        await handle.resize(int(size[0]), int(size[1]))
    try:
        mark("d:handle-start")
        await handle.start()
    except ContainerStartError as exc:
        # The init could not exec the process after its barrier: it exits with 127/126; that
        # is this run's exit (dockerd: the runtime's text and code), then --rm removes.
        await _settle_failed_exec(d, c, handle, exc)
        await _fail_waiters_on_start_error(d, c, exc.exit_code)
        raise
    except BerthError:
        # The shim went away during the start (its request line broke): this run is over. Its
        # exit is what the shim recorded, or 255 when it recorded nothing (a SIGKILLed shim);
        # the clean-up kills whatever is left in the cgroup.
        status = await _lost_start_status(handle)
        await d.session(c.id).drained()
        await _settle_locked(d, c, status)
        await _fail_waiters_on_start_error(d, c, status.exit_code)
        raise
    mark("d:started")
    publish_mounts(d, c, "mount")
    d.publish(c, "start")
    health.start_monitor(d, c)
    d.spawn(_watch(d, c, handle), f"watch container {c.id[:12]}")


async def _settle_failed_exec(d: Daemon, c: Container, handle: ContainerHandle, exc: ContainerStartError) -> None:
    from berth.drivers.exec.model import ExitStatus

    finished = ""
    try:
        finished = (await asyncio.wait_for(handle.wait(), START_EXIT_TIMEOUT)).finished_at
    except TimeoutError:
        await handle.close()  # not started: the monitor kills the init when the daemon lets go
    await d.session(c.id).drained()
    await _settle_locked(d, c, ExitStatus(exc.exit_code, False, finished, exc.message))


async def _lost_start_status(handle: ContainerHandle) -> ExitStatus:
    try:
        return await asyncio.wait_for(handle.wait(), START_EXIT_TIMEOUT)
    except TimeoutError:
        await handle.close()  # a shim that is there but does not answer: let go (it kills the init)
        from berth.drivers.exec.model import ExitStatus

        return ExitStatus(255, False, "", f"the monitor of container {handle.id} did not answer the start")


async def _fail_waiters_on_start_error(d: Daemon, c: Container, code: int) -> None:
    # `run --rm` whose start failed: dockerd removes the container and completes the
    # removed-waiters (the CLI prints the start error and exits 125/126/127).
    if c.host_config.get("AutoRemove"):
        from berth.daemon.containers import remove_container

        await remove_container(d, c, force=True, remove_volumes=True)


def attach_live(d: Daemon, c: Container, handle: ContainerHandle) -> None:
    """After a daemon restart: bind the reconnected monitor and watch for the exit."""
    session = d.session(c.id)
    if handle.pid:
        c.state.pid = handle.pid  # the record's may be 0: written before the init existed
    d.spawn(session.started(handle), f"reattach {c.id[:12]}")
    health.start_monitor(d, c)
    d.spawn(_watch(d, c, handle), f"watch container {c.id[:12]}")


async def _watch(d: Daemon, c: Container, handle: ContainerHandle) -> None:
    status = await handle.wait()
    mark("d:exit")
    session = d.session(c.id)
    await session.drained()
    mark("d:drained")
    await settle_exit(d, c, status)


async def settle_exit(d: Daemon, c: Container, status: ExitStatus) -> None:
    """Record the exit of the container's run, then remove a ``--rm`` container.

    A ``--rm`` container's exit is not written to the database: its record goes a moment later
    (two writes fewer on the way to ``docker run --rm``'s end). A daemon killed in between finds
    it "running" at start-up, without a monitor, and removes it all the same; a removal that
    fails writes the exit after all (the container stays, ``dead``, until ``rm``).

    Nor is its run torn down before: the monitor's directory and cgroup go with its files,
    after the removal answered (``containers.remove_container``, ``files_after``)."""
    auto = bool(c.host_config.get("AutoRemove"))
    async with start_lock(d, c.id):
        await _settle_locked(d, c, status, store=not auto, teardown=not auto)
    if auto and c.id in d.live and not c.state.running:
        from berth.daemon.containers import remove_container

        try:
            await remove_container(d, c, force=True, remove_volumes=True, files_after=True)
        except BaseException:
            if c.id in d.live:
                await _teardown(d, c)
                await d.persist(c)
            raise


async def _teardown(d: Daemon, c: Container) -> None:
    try:
        await d.driver.cleanup(c.id)
    except (BerthError, OSError) as exc:
        log.error("clean up after container %s exited: %s", c.id[:12], exc)


async def _settle_locked(d: Daemon, c: Container, status: ExitStatus, store: bool = True,
                         teardown: bool = True) -> None:
    """Record the exit, tear the run down, then make the exit visible (state, stop/kill
    waiters, events, wait).

    The exit is stored before the teardown removes the monitor's directory (whose exit.json is
    the only other copy of the status): a daemon killed in between restarts with the exit code,
    not a lost status. In memory the container stays running until the teardown is done, so a
    ``restart`` or ``kill`` that waits for the exit finds the old run gone. Nothing here may
    keep the exit from being recorded: a cleanup that fails is logged, and a record the
    database refuses (a full disk) stays in memory until it can be written. Not ``store``: the
    exit stays in memory (a ``--rm`` container's, removed next: :func:`settle_exit`); not
    ``teardown``: the monitor's directory and cgroup are left for that removal, and the
    network's store rows and namespace file are released in the background."""
    lc = d.live.any(c.id)
    if lc is None or not c.state.running:
        return  # settled already (the watcher and a stop that found the monitor gone)
    code = int(status.exit_code)
    oom = bool(getattr(status, "oom_killed", False))
    finished = str(getattr(status, "finished_at", "") or "") or now_rfc3339()
    error = str(getattr(status, "error", "") or "")
    if store:
        await _record_exit(d, c, code, oom, finished, error)
    mark("d:exit-recorded")
    crash_point("exit.after-record")
    # the network is released beside the monitor's teardown (neither waits for the other);
    # without the teardown (a --rm container, removed next), below, with no task (nothing to
    # overlap), its stored lease and namespace file in the background
    released = asyncio.ensure_future(_release_network(d, c)) if teardown else None
    if teardown:
        await _teardown(d, c)
    mark("d:exit-cleanup")
    lc.to_exited(code, oom_killed=oom, finished_at=finished, error=error)
    health.stop_monitor(d, c)
    restarts.after_exit(d, c, status)  # a restart policy may make it "restarting"
    # Exec instances live as long as the run they belong to (dockerd drops them at exit too).
    for eid, ex in list(lc.execs.items()):
        if not ex.running:
            del lc.execs[eid]
    c.exec_ids = [eid for eid in c.exec_ids if eid in lc.execs]
    if store:
        await d.persist(c)
    mark("d:exit-persisted")
    crash_point("exit.after-save")
    # The network goes before anyone waiting for the stop hears of it (a stopped container has
    # no address, ports or namespace); releasing is cheap: the kernel deletes the veth later.
    await (released if released is not None else _release_network(d, c, later=True))
    mark("d:exit-released")
    await volumemounts.release(d, c)
    lc.session.finish_run()
    if c.state.oom_killed:
        d.publish(c, "oom")
    d.publish(c, "die", {"exitCode": str(status.exit_code)})
    publish_mounts(d, c, "unmount")
    lc.settled(status.exit_code)
    mark("d:settled")


async def _release_network(d: Daemon, c: Container, later: bool = False) -> None:
    try:
        await d.network.release(c.id, later=later)
    except (BerthError, OSError, sqlite3.Error) as exc:
        # e.g. a full data root: the exit still settles; the stale lease is dropped by the
        # reconciliation at the next start-up
        log.error("release the network of container %s: %s", c.id[:12], exc)


async def stop_container(d: Daemon, c: Container, timeout: int | None, sig: str, event: bool = True) -> None:
    """dockerd's stop: the stop signal, ``timeout`` seconds, then SIGKILL; each signal is a
    ``kill`` event and, with ``event``, the end a ``stop`` event (``rm -f`` has none)."""
    if await restarts.stay_down(d, c) and not c.state.running:
        return  # a pending policy restart, cancelled: the container stays exited
    if not c.state.running:
        raise NotModified("container already stopped")
    session = d.session(c.id)
    stop_signal = parse_signal(sig or c.config.get("StopSignal") or "", signals.SIGTERM)
    if timeout is None:
        timeout = int(c.config.get("StopTimeout") or 10)
    handle = session.handle
    done = session.run_done
    if handle is None:
        return
    if c.state.status == "paused":
        await handle.resume()
        c.state.to_unpaused()
    try:
        await handle.signal(stop_signal)
        d.publish(c, "kill", {"signal": str(stop_signal)})
        if stop_signal != signals.SIGKILL:
            try:
                await asyncio.wait_for(done.wait(), timeout if timeout >= 0 else None)
            except TimeoutError:
                await handle.signal(signals.SIGKILL)
                d.publish(c, "kill", {"signal": str(int(signals.SIGKILL))})
    except Conflict:
        # The monitor is already gone (the container exited while its exit was not yet
        # settled): give the watcher a moment, then settle from what the monitor recorded.
        try:
            await asyncio.wait_for(done.wait(), 2.0)
        except TimeoutError:
            await _settle_vanished(d, c)
    else:
        await done.wait()
    if event:
        d.publish(c, "stop")


async def _settle_vanished(d: Daemon, c: Container) -> None:
    from berth.drivers.exec.model import ExitStatus

    result = await d.driver.reconnect(c.id)
    if not isinstance(result, ExitStatus):
        await result.signal(signals.SIGKILL)
        result = await result.wait()
    if c.state.running:
        await settle_exit(d, c, result)


@handlers.on(jobs.ContainerStart)
async def start(d: Daemon, req: jobs.ContainerStart, job: Job) -> None:
    c = d.find(req.id)
    if c.state.status == "restarting":
        raise NotModified("container already started")  # dockerd: a restarting container runs
    restarts.fresh_start(d, c)
    await start_container(d, c)


@handlers.on(jobs.ContainerStop)
async def stop(d: Daemon, req: jobs.ContainerStop, job: Job) -> None:
    await stop_container(d, d.find(req.id), req.timeout, req.signal)


@handlers.on(jobs.ContainerRestart)
async def restart(d: Daemon, req: jobs.ContainerRestart, job: Job) -> None:
    c = d.find(req.id)
    try:
        await stop_container(d, c, req.timeout, req.signal)
    except NotModified:
        pass
    restarts.fresh_start(d, c)
    await start_container(d, c)
    d.publish(c, "restart")


@handlers.on(jobs.ContainerKill)
async def kill(d: Daemon, req: jobs.ContainerKill, job: Job) -> None:
    c = d.find(req.id)
    sig = parse_signal(req.signal)
    session = d.session(c.id)
    if c.state.status == "restarting":
        await restarts.stay_down(d, c)  # dockerd: killing a restarting container cancels its restart
        return
    if not c.state.running or session.handle is None:
        raise Conflict(f"Cannot kill container: {req.id}: Container {c.id} is not running")
    done = session.run_done
    # SIGKILL or the stop signal (any signal when the container names none) keeps a restart
    # policy from restarting it, as dockerd's ExitOnNext; any kill counts as a stop by hand
    stop_signal = c.config.get("StopSignal") or ""
    if sig == signals.SIGKILL or not stop_signal or parse_signal(stop_signal) == sig:
        await restarts.stay_down(d, c)
    else:
        c.manually_stopped = True
        await d.persist(c)
    await session.handle.signal(sig)
    d.publish(c, "kill", {"signal": str(sig)})
    if sig == signals.SIGKILL:
        # dockerd's kill with SIGKILL returns once the container is dead (State.Running false)
        try:
            await asyncio.wait_for(done.wait(), KILL_SETTLE_TIMEOUT)
        except TimeoutError:
            log.warning("kill container %s: no exit within %g s of SIGKILL", c.id[:12], KILL_SETTLE_TIMEOUT)


def _monitor_of(d: Daemon, c: Container) -> ContainerHandle:
    """The running container's monitor handle; a 409 when its monitor is gone (its exit not
    settled yet), not an AttributeError."""
    handle = d.session(c.id).handle
    if handle is None:
        raise Conflict(f"Container {c.id} is not running: its monitor is gone")
    return handle


@handlers.on(jobs.ContainerPause)
async def pause(d: Daemon, req: jobs.ContainerPause, job: Job) -> None:
    c = d.find(req.id)
    if c.state.status == "paused":
        raise Conflict(f"Container {c.id} is already paused")
    if c.state.status != "running":
        raise Conflict(f"Container {c.id} is not running")
    await _monitor_of(d, c).pause()
    c.state.to_paused()
    await d.save(c)
    d.publish(c, "pause")


@handlers.on(jobs.ContainerUnpause)
async def unpause(d: Daemon, req: jobs.ContainerUnpause, job: Job) -> None:
    c = d.find(req.id)
    if c.state.status != "paused":
        raise Conflict(f"Container {c.id} is not paused")
    await _monitor_of(d, c).resume()
    c.state.to_unpaused()
    await d.save(c)
    d.publish(c, "unpause")


@handlers.on(jobs.ContainerResize)
async def resize(d: Daemon, req: jobs.ContainerResize, job: Job) -> None:
    c = d.find(req.id)
    session = d.session(c.id)
    handle = session.handle if session is not None else None
    if handle is None:
        raise Conflict(f"Container {c.id} is not running")
    await handle.resize(req.h, req.w)


