"""``berthd``: start the daemon, serve until SIGTERM/SIGINT, shut down cleanly.

One daemon per data root: an exclusive ``flock`` on ``<data_root>/berth.lock`` is held for the
daemon's life, so a second berthd on the same root refuses to start and says which pid holds it.
Containers keep running across a daemon restart (live restore).
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
from typing import TYPE_CHECKING

from berth.api.early import EarlyListener, check_host
from berth.daemon.config import DaemonConfig, parse_args
from berth.daemon.faults import startup_pause
from berth.daemon.modes import private_root, secure_exec_root
from berth.errors import BerthError

if TYPE_CHECKING:
    import asyncio
    import logging

# asyncio and logging (~55 ms of imports) come after the unix listeners are bound: /_ping
# answers from the first moment (berth.api.early)


def _log() -> logging.Logger:
    import logging

    return logging.getLogger("berth.daemon")


class AlreadyRunning(BerthError):
    pass


def lock_data_root(cfg: DaemonConfig) -> int:
    private_root(cfg.data_root)
    path = cfg.data_root / "berth.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise AlreadyRunning(
            f"another berthd (pid {holder}) is using the data root {cfg.data_root}; "
            "stop it, or give this daemon its own --data-root"
        ) from None
    pid = f"{os.getpid()}\n".encode()
    try:
        # write over the old pid, then cut: rewriting the block the file has needs no new space
        os.pwrite(fd, pid, 0)
        os.ftruncate(fd, len(pid))
    except OSError as exc:  # a full data root: the pid is only for the message above
        _log().warning("write the pid into %s: %s", path, exc.strerror)
    return fd


IDMAP_ENV = "BERTH_USERNS_IDMAP"  # "0": chowned layer copies even where id-mapped layers work
IDMAP_REASON: list[str] = []  # why id-mapped layers are not used, for the log once it is set up


def probe_idmapped_layers(cfg: DaemonConfig) -> None:
    """With --userns-remap: whether overlays over id-mapped layers work here (a forked probe,
    while berthd has no thread yet); if not, layers are copied and chowned per mapping."""
    import shutil
    import tempfile

    from berth.libcontainer.idmapped import probe

    if os.environ.get(IDMAP_ENV, "") == "0":
        cfg.idmap_layers = False
        IDMAP_REASON.append(f"{IDMAP_ENV}=0")
        return
    work = tempfile.mkdtemp(prefix="idmap-probe-", dir=cfg.data_root)
    try:
        reason = probe(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if reason is not None:
        cfg.idmap_layers = False
        IDMAP_REASON.append(reason)


SLOW_CALLBACK_ENV = "BERTH_SLOW_CALLBACK_MS"


def watch_slow_callbacks(loop: asyncio.AbstractEventLoop) -> None:
    """``BERTH_SLOW_CALLBACK_MS=50``: asyncio's debug mode, which logs every callback that holds
    the loop longer than that (``Executing <...> took 0.081 seconds``); what the slow-callback
    test and a developer looking for blocking work use. Off by default: debug mode costs time."""
    raw = os.environ.get(SLOW_CALLBACK_ENV, "")
    if not raw:
        return
    try:
        threshold = float(raw) / 1000.0
    except ValueError:
        _log().warning("%s=%r is not a number of milliseconds: ignored", SLOW_CALLBACK_ENV, raw)
        return
    loop.set_debug(True)
    loop.slow_callback_duration = threshold
    from berth.daemon.loopwatch import LoopWatch

    LoopWatch(loop, threshold).start()
    _log().info("asyncio debug mode: callbacks slower than %g ms are logged", threshold * 1000)


def listen_early(cfg: DaemonConfig) -> EarlyListener | None:
    """Check every -H address, then bind the unix ones and answer ``/_ping`` on them at once
    (:mod:`berth.api.early`), before the heavy imports of the server and the handlers."""
    for host in cfg.hosts:
        check_host(host, bool(cfg.tls and cfg.tlscert and cfg.tlskey), cfg.insecure_tcp)
    paths = [h[len("unix://") :] for h in cfg.hosts if h.startswith("unix://")]
    return EarlyListener.bind(paths) if paths else None


async def run(cfg: DaemonConfig, early: EarlyListener | None = None) -> None:
    """Listen first, then start: ``/_ping`` answers while the stores open, the network comes up
    and the containers are restored; every other request waits for that (the engine holds its
    jobs until the start-up releases it). A start-up that fails stops the server again."""
    import asyncio

    from berth.daemon.daemon import Daemon
    from berth.jobs.system import ServeAPI

    log = _log()
    if cfg.remap is not None:
        uid, gid = cfg.remap.root
        log.info("userns-remap: containers' root is %d:%d (%s); image layers %s", uid, gid, cfg.remap.user,
                 "id-mapped at mount" if cfg.idmap_layers else f"copied and chowned per mapping ({IDMAP_REASON[0]})")
    loop = asyncio.get_running_loop()
    watch_slow_callbacks(loop)
    daemon = Daemon(cfg)
    daemon.early_listener = early  # the API server takes its listeners and held connections over
    daemon.engine.hold()
    daemon.register_early()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if _STOP_ASKED:
        stop.set()  # a SIGTERM came while we were importing: start, then stop at once
    ready = asyncio.Event()
    server = asyncio.ensure_future(daemon.engine.job(ServeAPI(stop=stop, ready=ready)))
    waiter = asyncio.ensure_future(ready.wait())
    await asyncio.wait([server, waiter], return_when=asyncio.FIRST_COMPLETED)
    if server.done():
        waiter.cancel()
        server.result()  # raises the listener error
        return
    try:
        await startup_pause()
        await daemon.startup()
        daemon.engine.release()
    except BaseException:
        stop.set()
        await asyncio.gather(server, return_exceptions=True)  # the listeners close, the socket goes
        daemon.engine.release(check=False)  # requests that waited fail now rather than hang
        raise
    log.info("berthd %d listening on %s", os.getpid(), ", ".join(cfg.hosts))
    try:
        await server
    finally:
        await daemon.shutdown()
    log.info("berthd stopped")


_STOP_ASKED: list[int] = []  # signals that came before the event loop handled them


def _remember_stop(signum: int, _frame: object) -> None:
    _STOP_ASKED.append(signum)


def write_pidfile(cfg: DaemonConfig) -> None:
    """Written as the daemon starts (as dockerd's): it is there once ``/_ping`` answers."""
    assert cfg.pidfile is not None
    cfg.pidfile.parent.mkdir(parents=True, exist_ok=True)
    tmp = cfg.pidfile.with_suffix(".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    tmp.replace(cfg.pidfile)


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = parse_args(sys.argv[1:] if argv is None else argv)
    except BerthError as exc:
        print(f"berthd: {exc}", file=sys.stderr)
        return 1
    if os.geteuid() != 0:
        print("berthd: must run as root (it creates namespaces, mounts and cgroups)", file=sys.stderr)
        return 1
    # dockerd's umask: files a container sees get the modes Docker gives them; what is private
    # gets 0700/0600 explicitly (berth.daemon.modes)
    os.umask(0o022)
    try:
        if cfg.userns_remap:
            from berth.daemon import modes
            from berth.daemon.remap import Remap, remapped_data_root

            cfg.remap = Remap.configure(cfg.userns_remap)
            cfg.data_root = remapped_data_root(cfg.data_root, cfg.remap)
            modes.remapped(cfg.remap.root)
        lock_fd = lock_data_root(cfg)
        if cfg.remap is not None:
            probe_idmapped_layers(cfg)
        secure_exec_root(cfg.exec_root)
        # /_ping answers from here on: a SIGTERM from now is a stop, whenever it comes
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _remember_stop)
        early = listen_early(cfg)
        write_pidfile(cfg)
        import asyncio
        import logging

        logging.basicConfig(
            level=logging.DEBUG if cfg.debug else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        try:
            asyncio.run(run(cfg, early))
        finally:
            if early is not None:
                early.close()  # what the server did not take over (it did not get that far)
            assert cfg.pidfile is not None
            cfg.pidfile.unlink(missing_ok=True)
    except BerthError as exc:
        print(f"berthd: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"berthd: {exc}", file=sys.stderr)
        return 1
    os.close(lock_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())

