"""The composition root: builds the boxes, registers every job handler, restores state.

    d = Daemon(cfg); await d.startup()     # store, graph, exec driver, handlers, live restore
    await d.engine.job("serveapi", ...)    # the server is a job like any other
    await d.shutdown()                     # containers keep running (live restore)

The Daemon object is the handlers' shared state: the live table (``live``: one
:class:`~berth.daemon.livecontainer.LiveContainer` per container, owning its record, session,
lock, waiters and execs), the stores, the graph and the drivers. Handlers live in one module
per concern (``containers.py``, ``lifecycle.py``, ``streams.py``, ``execs.py``, ``images.py``,
``volumes.py``, ``system.py`` ...), each in that module's ``handlers`` table:
``async def handler(d, request, job)``.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import shutil
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from berth.container.record import Container
from berth.daemon.config import DaemonConfig
from berth.daemon.failures import is_disk_full, translate
from berth.daemon.live import Session
from berth.daemon.livecontainer import AttrView, Execs, LiveContainer, LiveTable, Phase, Records, Unsaved
from berth.daemon.modes import PRIVATE_DIR, secure_data_root
from berth.daemon.reserve import Reserve
from berth.daemon.store import ContainerStore
from berth.daemon.volumestore import VolumeStore
from berth.engine import Engine, Job
from berth.errors import BerthError, SystemFailure
from berth.libcontainer.removetree import remove_tree

if TYPE_CHECKING:
    from berth.api.early import EarlyListener
    from berth.builder.cache import BuildCache
    from berth.daemon.eventlog import EventLog
    from berth.daemon.restarts import Backoff
    from berth.drivers.exec.driver import ExecDriver
    from berth.drivers.network.driver import NetworkDriver
    from berth.graph.graph import Graph

log = logging.getLogger("berth.daemon")
UNSAVED_RETRY = 2.0  # seconds between attempts to store records the database refused


class Daemon:
    def __init__(self, cfg: DaemonConfig) -> None:
        self.cfg = cfg
        self.engine = Engine()
        self.started = time.time()
        self.live = LiveTable()  # every container: its record, session, lock, waiters, execs
        self.eventlog: EventLog | None = None  # daemon/eventlog.py: events kept in SQLite
        self.volume_users: dict[str, set[str]] = {}  # option volume -> running containers (volumemounts.py)
        self._retry: asyncio.Task[object] | None = None
        self.tasks: set[asyncio.Task[object]] = set()
        self.removing: set[asyncio.Task[object]] = set()  # removed containers' files, being deleted
        # names of --rm containers gone from the API whose record is still being deleted
        self.freeing_names: dict[str, asyncio.Future[None]] = {}
        self.store: ContainerStore
        self.reserve = Reserve(cfg.data_root / "reserved-space")
        self.volumes: VolumeStore
        self.volume_locks: dict[str, asyncio.Lock] = {}  # volume name -> its copy-up
        self.graph: Graph
        self.driver: ExecDriver
        self.network: NetworkDriver
        self.build_cache: BuildCache | None = None  # opened at the first build (daemon/buildhost.py)
        self.storage_driver = ""
        self.early_listener: EarlyListener | None = None  # /_ping before start-up (berth.api.early)

    # -- the former per-container dicts, as views of the live table ----------------------------
    @property
    def containers(self) -> Records:
        return Records(self.live)

    @property
    def sessions(self) -> AttrView[Session]:
        return AttrView(self.live, "session", Session, lambda _s: True)

    @property
    def execs(self) -> Execs:
        return Execs(self.live)

    @property
    def waiters(self) -> AttrView[list[tuple[str, asyncio.Future[int]]]]:
        return AttrView(self.live, "waiters", list)

    @property
    def start_locks(self) -> AttrView[asyncio.Lock]:
        return AttrView(self.live, "lock", asyncio.Lock, lambda _l: True)

    @property
    def removals(self) -> AttrView[asyncio.Future[None]]:
        return AttrView(self.live, "removal", lambda: None, lambda f: f is not None)

    @property
    def restarts(self) -> AttrView[Backoff]:
        return AttrView(self.live, "restart", lambda: None, lambda b: b is not None)

    @property
    def health_monitors(self) -> AttrView[asyncio.Task[object]]:
        return AttrView(self.live, "health", lambda: None, lambda t: t is not None)

    @property
    def unsaved(self) -> Unsaved:
        return Unsaved(self.live)

    # -- start-up and shutdown -------------------------------------------------------------
    async def startup(self) -> None:
        """Everything slow (imports, the data root, the stores and the graph with their start-up
        probes and garbage collection) runs in worker threads: the loop stays free from the
        first moment, and the fork server boots meanwhile."""
        cfg = self.cfg
        # The fork server (a second interpreter) boots while we import the API server's
        # aiohttp in a worker thread and open the stores: start-up is the longer of the two.
        self.driver = await asyncio.to_thread(_new_exec_driver, cfg)
        forkserver = asyncio.ensure_future(self.driver.startup())
        # One worker thread for the rest: imports are CPU-bound under the GIL, so more threads
        # would only contend with each other and with the loop.
        modules = await asyncio.to_thread(self._prepare)
        await self.network.startup()
        await forkserver
        self._register(modules)
        await self._restore()
        await self.network.reconcile(
            {c.id: {n.get("NetworkID") or name for name, n in c.networks.items()} for c in self.live.records() if c.state.running}
        )
        from berth.daemon import volumemounts
        from berth.daemon.restarts import at_startup

        await asyncio.to_thread(volumemounts.reconcile, self)
        await at_startup(self)
        self.driver.hurry()  # the fork server's warm-ups yielded to ours until now

    def _prepare(self) -> list[ModuleType]:
        """Start-up's blocking part: the data root, the stores and the graph (their probes and
        garbage collection), the event log, the network driver, and the imports the API server
        and the handlers need. Returns the handler modules."""
        cfg = self.cfg
        self._prepare_data_root()
        self._open_stores()
        try:
            self.eventlog = _open_eventlog(cfg.data_root / "events.db")
            self.engine.events.sinks.append(self.eventlog.append)
        except SystemFailure as exc:
            log.error("%s: events are kept in memory only", exc)
        _prune_partials(cfg.data_root)
        self.network = new_network_driver(cfg)
        importlib.import_module("berth.api.server")
        return _handler_modules()

    def _prepare_data_root(self) -> None:
        cfg = self.cfg
        shutil.rmtree(cfg.data_root / "tmp", ignore_errors=True)
        for sub in ("containers", "tmp"):
            (cfg.data_root / sub).mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        secure_data_root(cfg.data_root)  # before the database opens: it must be created 0600
        self.reserve.take()

    def _open_stores(self) -> None:
        from berth.drivers.graph import new_driver
        from berth.graph.budget import DEFAULT_MAX_IMPORT_SIZE
        from berth.graph.graph import Graph

        cfg = self.cfg

        def open_stores() -> None:
            self.store = ContainerStore(cfg.data_root / "berth.db")
            self.volumes = VolumeStore(cfg.data_root)
            gdriver = new_driver(cfg.storage_driver, cfg.data_root)
            self.storage_driver = getattr(gdriver, "name", cfg.storage_driver or "overlay2")
            limit = DEFAULT_MAX_IMPORT_SIZE if cfg.max_import_size is None else cfg.max_import_size
            self.graph = Graph(cfg.data_root, cfg.data_root / "berth.db", gdriver, limit)

        try:
            open_stores()
        except (BerthError, OSError, sqlite3.Error) as exc:
            # SQLite in WAL mode needs new space for its -shm file when it opens: on a full
            # data root, the reserve is what makes that room
            if not self.reserve.release():
                raise
            log.warning("open the stores: %s; trying again in the reserved space", exc)
            open_stores()

    async def shutdown(self) -> None:
        await self._flush_unsaved()
        await self.removed_files()
        for lc in self.live.everything():
            lc.session.detach()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.driver.shutdown()
        await self.network.shutdown()
        self.store.close()
        self.volumes.close()
        if self.eventlog is not None:
            await asyncio.to_thread(self.eventlog.close)
        if self.build_cache is not None:
            self.build_cache.close()

    async def _restore(self) -> None:
        """Reconnect to containers that kept running while we were away; settle the rest.

        Each container is restored on its own: one that cannot be (its exit cannot be
        recorded on a full disk, its files are damaged) is logged and left as it is, and the
        daemon starts anyway. ``--rm`` containers that are not running any more are removed,
        as dockerd does at start-up: the exited ones, and those whose start was lost with the
        daemon (created, never started).
        """
        known = {c.id: c for c in await asyncio.to_thread(self.store.all)}
        for c in known.values():
            self.live.add(LiveContainer(c))
        # Containers whose create was interrupted before the record was written, and the
        # ``--rm`` ones whose files were still being deleted after their record went
        # (containers.remove_container): the container's directory goes last.
        for path in await asyncio.to_thread(lambda: list((self.cfg.data_root / "containers").iterdir())):
            if path.name not in known:
                log.warning("removing leftovers of an unfinished create or removal: %s", path.name)
                try:
                    await self.driver.cleanup(path.name)
                    await asyncio.to_thread(self.graph.remove_rw, path.name)
                except (BerthError, OSError, sqlite3.Error) as exc:
                    log.error("remove the layer of unfinished create %s: %s", path.name[:12], exc)
                    continue
                await asyncio.to_thread(remove_tree, path)
        for c in list(known.values()):  # settling may remove containers from self.containers
            try:
                await self._restore_one(c)
            except (BerthError, OSError, sqlite3.Error) as exc:
                log.error("restore container %s: %s", c.id[:12], exc)
        await self.removed_files()  # the --rm containers removed here leave nothing behind either

    async def _restore_one(self, c: Container) -> None:
        from berth.daemon.containers import remove_container
        from berth.daemon.lifecycle import attach_live, settle_exit
        from berth.drivers.exec.model import ExitStatus

        interrupted = c.state.status in ("removing", "dead") or not await asyncio.to_thread(
            lambda: Path(c.dir).exists() and self.graph.has_rw(c.id)
        )
        if interrupted:
            # a removal deletes the layer and the files first and the record last: finish the
            # one that the daemon's death interrupted (dockerd leaves it "dead" for the user)
            log.warning("finishing the interrupted removal of container %s", c.id[:12])
            self.live.find(c.id).mark_dead()
            await remove_container(self, c, force=True)
            return
        if c.state.status in ("running", "paused", "restarting"):
            result = await self.driver.reconnect(c.id)
            if isinstance(result, ExitStatus):
                await settle_exit(self, c, result)  # removes a --rm container
            else:
                attach_live(self, c, result)
            return
        if c.host_config.get("AutoRemove"):
            await remove_container(self, c, force=True, remove_volumes=True)
            return
        if self.driver.exec_dir(c.id).exists():
            # a start lost with the daemon leaves its monitor's directory (exit.json) behind
            await self.driver.cleanup(c.id)

    def register_early(self) -> None:
        """The handlers the API server needs before start-up is done: itself and ``/_ping``
        (every other job waits for the engine's release, at the end of start-up)."""
        from berth.daemon import system
        from berth.jobs.system import ServeAPI, SystemPing

        for kind, handler in system.handlers.items():
            if kind in (ServeAPI, SystemPing):
                self.engine.handle(kind, self._translating(kind.JOB, functools.partial(handler, self)))

    def _register(self, modules: list[ModuleType]) -> None:
        for module in modules:
            table = getattr(module, "handlers", None)
            if table is not None:
                for kind, handler in table.items():
                    if kind.JOB not in self.engine.handlers:  # ping and serveapi came early
                        self.engine.handle(kind, self._translating(kind.JOB, functools.partial(handler, self)))
            for name, fn in getattr(module, "HANDLERS", {}).items():  # handlers of the older style
                self.engine.register(name, self._translating(name, functools.partial(fn, self)))

    def _translating(self, name: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        """The one boundary where a handler's raw OSError or sqlite3.Error becomes a berth
        error with Docker's kind of text (``write .../berth.db: no space left on device``)."""
        db = self.cfg.data_root / "berth.db"

        async def run(*args: Any) -> Any:
            try:
                return await fn(*args)
            except ConnectionError:
                raise  # a client that went away: the server knows what to do
            except (OSError, sqlite3.Error) as exc:
                raise translate(name, exc, db) from exc

        return run

    # -- helpers for the handlers ---------------------------------------------------------
    def find(self, ref: str) -> Container:
        """By full id, name (with or without ``/``) or unique id prefix; Docker's 404 text."""
        return self.live.find(ref).record

    def session(self, cid: str) -> Session:
        """The container's session; a detached one for a container that is gone."""
        lc = self.live.any(cid)
        return lc.session if lc is not None else Session()

    async def save(self, c: Container, new: bool = False) -> None:
        """Store the record in one transaction (on the store's writer thread); SystemFailure
        when the database refuses."""
        await self.store.aput(c, new=new)
        self.stored(c)

    def stored(self, c: Container) -> None:
        """The live side of ``save``, once the record is in the store."""
        lc = self.live.any(c.id)
        if lc is None:
            lc = self.live.add(LiveContainer(c))
        lc.record = c
        lc.phase = Phase.STORED
        lc.unsaved = False

    async def with_room(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a worker thread; when it finds the disk full, once more after the
        data root's reserve was released (removals use it: they are how space is freed)."""
        try:
            return await asyncio.to_thread(fn, *args)
        except (OSError, sqlite3.Error, SystemFailure) as exc:
            cause = exc.__cause__ if isinstance(exc, SystemFailure) else exc
            if cause is None or not is_disk_full(cause) or not await asyncio.to_thread(self.reserve.release):
                raise
        return await asyncio.to_thread(fn, *args)

    async def persist(self, c: Container) -> None:
        """Store a change that has happened whatever the database says (an exit, a failed
        start). When it refuses (a full disk), the change stays in memory, is logged, and
        is written in the background as soon as the database takes it again."""
        try:
            await self.save(c)
        except SystemFailure as exc:
            log.error("%s (kept in memory; retrying)", exc)
            lc = self.live.any(c.id)
            if lc is not None:
                lc.unsaved = True
            if self._retry is None or self._retry.done():
                self._retry = self.spawn(self._retry_unsaved(), "write records the database refused")

    async def _retry_unsaved(self) -> None:
        while any(lc.unsaved for lc in self.live.everything()):
            await asyncio.sleep(UNSAVED_RETRY)
            await self._flush_unsaved()

    async def _flush_unsaved(self) -> None:
        for lc in self.live.everything():
            if not lc.unsaved or not lc.visible:
                continue
            try:
                await self.save(lc.record)
            except SystemFailure:
                return  # still refused: try again later
            log.info("stored the record of container %s that the database had refused", lc.id[:12])

    def remove_later(self, coro: Awaitable[object], what: str) -> None:
        """Delete a removed container's files in the background (:func:`removed_files` waits)."""
        task = self.spawn(coro, what)
        self.removing.add(task)
        task.add_done_callback(self.removing.discard)

    async def name_freed(self, name: str) -> None:
        """Before a record takes ``name`` in the store: wait until a removed ``--rm`` container's
        record with that name is deleted (``containers.remove_container``, ``files_after``: the
        name is free in the API before its record is gone from the database)."""
        while (pending := self.freeing_names.get(name)) is not None:
            await asyncio.wait([pending])

    async def removed_files(self) -> None:
        """Wait until the files of removed containers are deleted: an image removal, whose layers
        a container's layer may still hold, and the shutdown."""
        while self.removing:
            await asyncio.gather(*list(self.removing), return_exceptions=True)

    def spawn(self, coro: Awaitable[object], what: str) -> asyncio.Task[object]:
        """Background work belongs to the daemon's task set; failures are logged, not lost."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)

        def done(t: asyncio.Task[object]) -> None:
            self.tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("%s failed", what, exc_info=t.exception())

        task.add_done_callback(done)
        return task

    def publish(self, c: Container, action: str, extra: dict[str, str] | None = None) -> None:
        attrs = {"image": c.image, "name": c.name, **c.labels(), **(extra or {})}
        self.engine.events.publish("container", action, c.id, attrs)

    def container_dir(self, cid: str) -> Path:
        return self.cfg.data_root / "containers" / cid


HANDLER_MODULES = (
    "containers", "lifecycle", "attach", "streams", "stats", "execs", "images", "registry", "archives", "copies",
    "volumes", "system", "update", "networks", "swarm", "build", "diskusage",
)


def _handler_modules() -> list[ModuleType]:
    """The modules with job handlers, imported (in a worker thread at start-up: importing is slow)."""
    return [importlib.import_module(f"berth.daemon.{name}") for name in HANDLER_MODULES]


def _open_eventlog(path: Path) -> EventLog:
    from berth.daemon.eventlog import EventLog

    return EventLog(path)


def _prune_partials(data_root: Path) -> None:
    from berth.daemon.registry import prune_partials

    prune_partials(data_root)


def _new_exec_driver(cfg: DaemonConfig) -> ExecDriver:
    from berth.drivers.exec.native import NativeDriver

    return NativeDriver(cfg.exec_root, cfg.cgroup_parent)


def new_network_driver(cfg: DaemonConfig) -> NetworkDriver:
    from berth.drivers.network.config import NetworkConfig, daemon_tag
    from berth.drivers.network.driver import NetworkDriver
    from berth.drivers.network.subnets import parse_pools

    ncfg = NetworkConfig(
        tag=daemon_tag(cfg.data_root), exec_root=cfg.exec_root, bridge=cfg.bridge, bip=cfg.bip,
        fixed_cidr=cfg.fixed_cidr, mtu=cfg.mtu, pools=parse_pools(cfg.default_address_pools),
        ip_forward=cfg.ip_forward, ip_masq=cfg.ip_masq, icc=cfg.icc, dns=tuple(cfg.dns),
        dns_search=tuple(cfg.dns_search), dns_options=tuple(cfg.dns_opts), host_ip=cfg.ip,
    )  # fmt: skip
    return NetworkDriver(ncfg, cfg.data_root / "berth.db")


HandlerFn = Callable[[Daemon, Job], Awaitable[Any]]
