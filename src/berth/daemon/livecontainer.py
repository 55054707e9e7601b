"""One live object per container: its record, monitor session, lock, waiters, execs and the
daemon's background work for it, with the record's state moves as methods that refuse illegal
ones. The daemon keeps them in one :class:`LiveTable`; removing a container is one call
(:meth:`LiveTable.remove`) that cannot forget a piece.

A container's life as the daemon sees it::

    creating ──store──▶ created ──start──▶ running ⇄ paused
                          ▲                   │
                          └─── exited ◀───────┘ (exit settled; restarting while a policy's start is due)
    any of these ──rm──▶ removing ──files and record gone──▶ (forgotten)
                              └── a removal that failed ──▶ dead (rm may be tried again)

``creating`` is a create under way: its name is taken, its volumes are claimed, but nothing
lists or finds it until its record is stored. ``gone`` is a removal whose record is deleted:
it is invisible while the removal finishes (its anonymous volumes, its waiters).

    lc = d.live.find("web")               # the LiveContainer (NotFound: Docker's 404 text)
    async with lc.lock: ...               # start and exit settlement, one at a time
    fut = lc.wait_for("next-exit")        # resolved by lc.settled(code)
    d.live.remove(lc.id)                  # the end: health check, restart, execs, waiters
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Iterator, MutableMapping, MutableSet
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from berth.container.record import Container, State
from berth.daemon.live import Session
from berth.errors import Conflict, NotFound

if TYPE_CHECKING:
    from berth.daemon.execs import ExecInstance
    from berth.daemon.restarts import Backoff


class Phase(enum.Enum):
    CREATING = "creating"  # the create is under way: name and volumes reserved, no record yet
    STORED = "stored"  # the record is in the store: the container exists
    GONE = "gone"  # its record was deleted by a removal that is finishing


class LiveContainer:
    """A container while the daemon knows it."""

    def __init__(self, record: Container, phase: Phase = Phase.STORED) -> None:
        self.record = record
        self.phase = phase
        self.lock = asyncio.Lock()  # start and exit settlement, one at a time
        self.session = Session()  # attached streams and the monitor handle of the current run
        self.waiters: list[tuple[str, asyncio.Future[int]]] = []  # (condition, future) of wait jobs
        self.execs: dict[str, ExecInstance] = {}  # exec instances of the current run
        self.removal: asyncio.Future[None] | None = None  # done when the removal under way ends
        self.restart: Backoff | None = None  # the restart policy's back-off (daemon/restarts.py)
        self.health: asyncio.Task[object] | None = None  # the health check's monitor (daemon/health.py)
        self.unsaved = False  # its last change is not stored yet (the database refused it)
        self.claims: set[str] = set()  # volumes a create under way will mount

    def __repr__(self) -> str:
        return f"<LiveContainer {self.id[:12]} {self.name!r} {self.record.state.status} {self.phase.value}>"

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def state(self) -> State:
        return self.record.state

    @property
    def visible(self) -> bool:
        return self.phase is Phase.STORED

    # -- state moves (each refuses an illegal one with a Conflict) ----------------------------
    def to_running(self, pid: int) -> None:
        self._refuse_if_removed("start")
        self.state.to_running(pid)

    def to_paused(self) -> None:
        self.state.to_paused()

    def to_unpaused(self) -> None:
        self.state.to_unpaused()

    def to_exited(self, exit_code: int, oom_killed: bool = False, finished_at: str = "", error: str = "") -> None:
        if self.state.status not in ("running", "paused"):
            raise Conflict(f"container {self.id[:12]}: an exit of a container that is {self.state.status}")
        self.state.to_exited(exit_code, oom_killed=oom_killed, finished_at=finished_at, error=error)

    def to_restarting(self) -> None:
        self._refuse_if_removed("restart")
        self.state.to_restarting()

    def start_failed(self, exit_code: int, error: str) -> None:
        self.state.start_failed(exit_code, error)

    def begin_removal(self) -> asyncio.Future[None]:
        """``removing``: start refuses it, ps shows it (in memory only); the future is done when
        the removal ends, whatever its outcome."""
        if self.removal is not None:
            raise Conflict(f"removal of container {self.id} is already in progress")
        if self.state.running:
            raise Conflict(f"cannot remove container {self.id}: it is running")
        self.state.status = "removing"
        self.removal = asyncio.get_running_loop().create_future()
        return self.removal

    def end_removal(self, failed: bool) -> None:
        """A removal ended: ``dead`` if it failed (as dockerd; rm may be tried again)."""
        if failed:
            self.state.status = "dead"
        done, self.removal = self.removal, None
        if done is not None and not done.done():
            done.set_result(None)

    def mark_dead(self) -> None:
        """A record whose removal the daemon's death interrupted (finished at start-up)."""
        self.state.status = "dead"

    def _refuse_if_removed(self, what: str) -> None:
        if self.state.status in ("removing", "dead") or self.phase is Phase.GONE:
            raise Conflict(f"cannot {what} container {self.id}: it is {self.state.status}")

    # -- waiters -----------------------------------------------------------------------------
    def wait_for(self, condition: str) -> asyncio.Future[int]:
        """A future for ``next-exit``, ``not-running`` or ``removed``: the exit code."""
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.waiters.append((condition, fut))
        return fut

    def forget_waiter(self, fut: asyncio.Future[int]) -> None:
        if not fut.done():
            fut.cancel()
        self.waiters = [(cond, f) for cond, f in self.waiters if f is not fut]

    def settled(self, code: int, conditions: tuple[str, ...] = ("next-exit", "not-running")) -> None:
        """An exit is visible: the waiters for ``conditions`` get its code."""
        keep = []
        for cond, fut in self.waiters:
            if cond in conditions:
                if not fut.done():
                    fut.set_result(code)
            else:
                keep.append((cond, fut))
        self.waiters = keep

    # -- the end -----------------------------------------------------------------------------
    def close(self) -> None:
        """Everything the daemon holds for the container goes: its health check and pending
        restart stop, its execs are dropped, its session stops pumping, and every waiter gets
        the last exit code."""
        if self.health is not None and not self.health.done():
            self.health.cancel()
        self.health = None
        if self.restart is not None and self.restart.task is not None and not self.restart.task.done():
            self.restart.task.cancel()
        self.restart = None
        self.execs.clear()
        self.session.detach()
        self.unsaved = False
        self.claims.clear()
        self.settled(self.state.exit_code, ("next-exit", "not-running", "removed"))


class LiveTable:
    """Every container the daemon knows, by id."""

    def __init__(self) -> None:
        self._by_id: dict[str, LiveContainer] = {}

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __iter__(self) -> Iterator[LiveContainer]:
        """The containers that exist (stored, not being forgotten)."""
        return (lc for lc in list(self._by_id.values()) if lc.visible)

    def __contains__(self, cid: object) -> bool:
        lc = self._by_id.get(cid) if isinstance(cid, str) else None
        return lc is not None and lc.visible

    def get(self, cid: str) -> LiveContainer | None:
        """A visible container by its full id."""
        lc = self._by_id.get(cid)
        return lc if lc is not None and lc.visible else None

    def any(self, cid: str) -> LiveContainer | None:
        """By full id, whatever its phase (a create or a removal under way too)."""
        return self._by_id.get(cid)

    def records(self) -> list[Container]:
        """The records of the containers that exist."""
        return [lc.record for lc in self]

    def record(self, cid: str) -> Container | None:
        lc = self.get(cid)
        return lc.record if lc is not None else None

    def everything(self) -> list[LiveContainer]:
        return list(self._by_id.values())

    def add(self, lc: LiveContainer) -> LiveContainer:
        if lc.id in self._by_id:
            raise Conflict(f"container {lc.id} is already known")
        self._by_id[lc.id] = lc
        return lc

    def reserve(self, record: Container) -> LiveContainer:
        """A create under way: its name is taken (:meth:`names`) but nothing lists it yet."""
        return self.add(LiveContainer(record, Phase.CREATING))

    def discard(self, cid: str) -> None:
        """A create that failed: it never existed."""
        lc = self._by_id.get(cid)
        if lc is not None and lc.phase is Phase.CREATING:
            del self._by_id[cid]
            lc.close()

    def remove(self, cid: str) -> LiveContainer | None:
        """The end of a container: out of the table, and every piece of it closed."""
        lc = self._by_id.pop(cid, None)
        if lc is not None:
            lc.phase = Phase.GONE
            lc.close()
        return lc

    def names(self) -> dict[str, str]:
        """name -> id of every container, those being created too."""
        return {lc.name: lc.id for lc in self._by_id.values() if lc.phase is not Phase.GONE}

    def find(self, ref: str) -> LiveContainer:
        """By full id, name (with or without ``/``) or unique id prefix; Docker's 404 text."""
        lc = self.get(ref)
        if lc is not None:
            return lc
        name = ref.lstrip("/")
        for lc in self:
            if lc.name == name:
                return lc
        if ref:
            matches = [lc for lc in self if lc.id.startswith(ref)]
            if len(matches) == 1:
                return matches[0]
        raise NotFound(f"No such container: {ref}")

    def exec(self, eid: str) -> ExecInstance | None:
        for lc in self._by_id.values():
            ex = lc.execs.get(eid)
            if ex is not None:
                return ex
        return None


# -- views: the Daemon's former dicts, over the table (kept while callers move to the table) --

V = TypeVar("V")


class Records(MutableMapping[str, Container]):
    """``d.containers``: id -> record of every container that exists."""

    def __init__(self, table: LiveTable) -> None:
        self.table = table

    def __getitem__(self, cid: str) -> Container:
        lc = self.table.get(cid)
        if lc is None:
            raise KeyError(cid)
        return lc.record

    def __setitem__(self, cid: str, record: Container) -> None:
        lc = self.table.any(cid)
        if lc is None:
            self.table.add(LiveContainer(record))
        else:
            lc.record, lc.phase = record, Phase.STORED

    def __delitem__(self, cid: str) -> None:
        if self.table.remove(cid) is None:
            raise KeyError(cid)

    def __iter__(self) -> Iterator[str]:
        return (lc.id for lc in self.table)

    def __len__(self) -> int:
        return len(self.table)


class AttrView(MutableMapping[str, V], Generic[V]):
    """id -> one attribute of each container's LiveContainer. An id the table does not know
    reads as absent and takes writes without keeping them (the container went meanwhile)."""

    def __init__(
        self, table: LiveTable, attr: str, empty: Callable[[], Any], present: Callable[[Any], bool] = bool
    ) -> None:
        self.table, self.attr, self.empty, self.present = table, attr, empty, present

    def __getitem__(self, cid: str) -> V:
        lc = self.table.any(cid)
        if lc is None:
            raise KeyError(cid)
        value = getattr(lc, self.attr)
        if not self.present(value):
            raise KeyError(cid)
        return value  # type: ignore[no-any-return]

    def __setitem__(self, cid: str, value: V) -> None:
        lc = self.table.any(cid)
        if lc is not None:
            setattr(lc, self.attr, value)

    def __delitem__(self, cid: str) -> None:
        lc = self.table.any(cid)
        if lc is None or not self.present(getattr(lc, self.attr)):
            raise KeyError(cid)
        setattr(lc, self.attr, self.empty())

    def __iter__(self) -> Iterator[str]:
        return (lc.id for lc in self.table.everything() if self.present(getattr(lc, self.attr)))

    def __len__(self) -> int:
        return sum(1 for _ in self)


class Unsaved(MutableSet[str]):
    """``d.unsaved``: ids whose last change the database refused."""

    def __init__(self, table: LiveTable) -> None:
        self.table = table

    def __contains__(self, cid: object) -> bool:
        lc = self.table.any(cid) if isinstance(cid, str) else None
        return lc is not None and lc.unsaved

    def __iter__(self) -> Iterator[str]:
        return (lc.id for lc in self.table.everything() if lc.unsaved)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def add(self, cid: str) -> None:
        lc = self.table.any(cid)
        if lc is not None:
            lc.unsaved = True

    def discard(self, cid: str) -> None:
        lc = self.table.any(cid)
        if lc is not None:
            lc.unsaved = False


class Execs(MutableMapping[str, "ExecInstance"]):
    """``d.execs``: exec id -> instance, over every container's own execs."""

    def __init__(self, table: LiveTable) -> None:
        self.table = table

    def __getitem__(self, eid: str) -> ExecInstance:
        ex = self.table.exec(eid)
        if ex is None:
            raise KeyError(eid)
        return ex

    def __setitem__(self, eid: str, ex: ExecInstance) -> None:
        lc = self.table.any(ex.container_id)
        if lc is not None:
            lc.execs[eid] = ex

    def __delitem__(self, eid: str) -> None:
        for lc in self.table.everything():
            if eid in lc.execs:
                del lc.execs[eid]
                return
        raise KeyError(eid)

    def __iter__(self) -> Iterator[str]:
        return (eid for lc in self.table.everything() for eid in list(lc.execs))

    def __len__(self) -> int:
        return sum(len(lc.execs) for lc in self.table.everything())
