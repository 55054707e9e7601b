"""Control groups for one container: v1 (and hybrid) and pure v2, detected from ``root``.

The model: a cgroup is a name (``"berth-<tag>/<container id>"``) under a root. With v2
(``<root>/cgroup.controllers`` exists) it is one directory ``<root>/<name>``; with v1 it is one
directory per mounted hierarchy (``<root>/memory/<name>``, ``<root>/pids/<name>``, ... and
``<root>/unified/<name>`` in hybrid mode). Everything is a file write, so unit tests point
``root`` at a temp dir holding a fake tree.

    cg = Cgroup("berth-test/abc")
    cg.create(Resources(memory=64 << 20, pids_limit=100))
    cg.add(pid)            # or add(0) from the process itself
    cg.freeze(); cg.thaw(); cg.oom_killed(); cg.destroy()

Limits follow Docker: ``nano_cpus`` -> CFS quota over a 100 ms period (an OCI spec's own
``cpu_quota``/``cpu_period`` are written as given); ``cpuset_cpus``/``cpuset_mems`` narrow the
cpuset copied from the parent; ``memory`` without
``memory_swap`` means no swap (memsw = memory on v1, memory.swap.max = 0 on v2); device access
is deny-all plus Docker's default allow list (v1 ``devices.*`` files, v2 an eBPF program).
"""

from __future__ import annotations

import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from berth.errors import SystemFailure
from berth.libcontainer import devicefilter

CFS_PERIOD_US = 100_000

# Docker's default device cgroup rules (moby oci/devices_linux.go + runc's defaults).
DEFAULT_DEVICE_RULES = (
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",  # null
    "c 1:5 rwm",  # zero
    "c 1:7 rwm",  # full
    "c 1:8 rwm",  # random
    "c 1:9 rwm",  # urandom
    "c 5:0 rwm",  # tty
    "c 5:1 rwm",  # console
    "c 5:2 rwm",  # ptmx
    "c 136:* rwm",  # pts
    "c 10:200 rwm",  # tun
)
ALLOW_ALL_DEVICES = ("a *:* rwm",)

# v1 hierarchies a container joins; cpuset needs cpus/mems copied down before it accepts tasks.
V1_CONTROLLERS = (
    "memory",
    "cpu",
    "cpuacct",
    "pids",
    "freezer",
    "devices",
    "blkio",
    "cpuset",
    "systemd",
    "unified",
)


@dataclass(frozen=True)
class Resources:
    memory: int | None = None  # bytes
    nano_cpus: int | None = None  # 1e9 = one CPU
    pids_limit: int | None = None  # <= 0 means unlimited
    cpu_shares: int | None = None
    memory_swap: int | None = None  # memory + swap in bytes; None = no swap; -1 = unlimited
    device_rules: tuple[str, ...] = DEFAULT_DEVICE_RULES
    # the OCI spec's own CFS numbers, written as given (after nano_cpus, so they win):
    cpu_quota: int | None = None  # µs per period; -1 = unlimited
    cpu_period: int | None = None  # µs
    cpuset_cpus: str | None = None  # e.g. "0-1,3"
    cpuset_mems: str | None = None
    memory_reservation: int | None = None  # soft limit: memory.soft_limit_in_bytes / memory.low
    blkio_weight: int | None = None  # 10..1000: blkio.weight / io.weight (where the host has it)


@dataclass(frozen=True)
class Stats:
    """What ``docker stats`` needs from a cgroup; ``None`` where the kernel says nothing/unlimited."""

    cpu_usage_ns: int | None = None
    memory_usage: int | None = None
    memory_limit: int | None = None
    memory_stat: tuple[tuple[str, int], ...] = ()  # memory.stat, in file order
    pids_current: int | None = None
    pids_limit: int | None = None


class Cgroup:
    """One container's cgroup, in every hierarchy the host mounts under ``root``."""

    def __init__(self, name: str, root: Path = Path("/sys/fs/cgroup")) -> None:
        self.name = name.strip("/")
        if not self.name or ".." in self.name.split("/"):
            raise ValueError(f"bad cgroup name {name!r}")
        self.root = Path(root)
        self.v2 = (self.root / "cgroup.controllers").exists()
        self._layout: dict[str, Path] | None = None  # the hierarchies, found once

    def __repr__(self) -> str:
        return f"Cgroup({self.name!r}, root={str(self.root)!r}, v2={self.v2})"

    # ---- layout -------------------------------------------------------------------------
    def _hierarchies(self) -> dict[str, Path]:
        """Controller name -> hierarchy root; duplicates (cpu -> cpu,cpuacct) collapse."""
        if self._layout is None:
            self._layout = self._find_hierarchies()
        return self._layout

    def _find_hierarchies(self) -> dict[str, Path]:
        if self.v2:
            return {"": self.root}
        found: dict[str, Path] = {}
        seen: set[str] = set()
        for ctrl in V1_CONTROLLERS:
            base = self.root / ctrl
            if not (base / "cgroup.procs").exists():
                continue
            real = os.path.realpath(base)
            if real in seen:
                continue
            seen.add(real)
            found[ctrl] = base
        return found

    def _dir(self, ctrl: str) -> Path | None:
        base = self._hierarchies().get(ctrl)
        if base is None and not self.v2 and (self.root / ctrl / "cgroup.procs").exists():
            base = self.root / ctrl  # an alias of a joined hierarchy (cpuacct -> cpu,cpuacct)
        return None if base is None else base / self.name

    def paths(self) -> list[Path]:
        return [base / self.name for base in self._hierarchies().values()]

    # ---- lifecycle ----------------------------------------------------------------------
    def create(self, resources: Resources) -> None:
        """Make the directories and write the limits; a failed write removes what was made."""
        try:
            if self.v2:
                self._create_v2(resources)
            else:
                self._create_v1(resources)
        except BaseException:
            self._rmdirs()
            raise

    def _create_v1(self, r: Resources) -> None:
        for ctrl, base in self._hierarchies().items():
            _mkdirs(base, self.name, copy=("cpuset.cpus", "cpuset.mems") if ctrl == "cpuset" else ())
        mem = self._dir("memory")
        if mem is not None and r.memory is not None:
            _write(mem / "memory.limit_in_bytes", r.memory)
            swap = r.memory if r.memory_swap is None else r.memory_swap
            _write_optional(mem / "memory.memsw.limit_in_bytes", swap)  # absent without swap accounting
        cpu = self._dir("cpu")
        if cpu is not None:
            if r.nano_cpus:
                _write(cpu / "cpu.cfs_period_us", CFS_PERIOD_US)
                _write(cpu / "cpu.cfs_quota_us", r.nano_cpus * CFS_PERIOD_US // 1_000_000_000)
            if r.cpu_quota or r.cpu_period:
                _write_cfs_v1(cpu, r.cpu_quota, r.cpu_period)
            if r.cpu_shares:
                _write(cpu / "cpu.shares", r.cpu_shares)
        cpuset = self._dir("cpuset")
        if cpuset is not None:  # _mkdirs copied the parent's; narrow them (cpus first, as runc)
            if r.cpuset_cpus:
                _write(cpuset / "cpuset.cpus", r.cpuset_cpus)
            if r.cpuset_mems:
                _write(cpuset / "cpuset.mems", r.cpuset_mems)
        pids = self._dir("pids")
        if pids is not None and r.pids_limit is not None:
            _write(pids / "pids.max", "max" if r.pids_limit <= 0 else r.pids_limit)
        if mem is not None and r.memory_reservation:
            _write(mem / "memory.soft_limit_in_bytes", r.memory_reservation)
        blkio = self._dir("blkio")
        if blkio is not None and r.blkio_weight:
            _write_first((blkio / "blkio.weight", blkio / "blkio.bfq.weight"), r.blkio_weight)
        dev = self._dir("devices")
        if dev is not None and r.device_rules != ALLOW_ALL_DEVICES:
            _write(dev / "devices.deny", "a")
            for rule in r.device_rules:
                _write(dev / "devices.allow", rule)

    def _create_v2(self, r: Resources) -> None:
        wanted = []
        if r.memory is not None or r.memory_reservation:
            wanted.append("memory")
        if r.nano_cpus or r.cpu_shares or r.cpu_quota or r.cpu_period:
            wanted.append("cpu")
        if r.cpuset_cpus or r.cpuset_mems:
            wanted.append("cpuset")
        if r.pids_limit is not None:
            wanted.append("pids")
        if r.blkio_weight:
            wanted.append("io")
        parts = self.name.split("/")
        here = self.root
        for part in parts:
            available = (
                set(_read(here / "cgroup.controllers").split())
                if (here / "cgroup.controllers").exists()
                else set()
            )
            enable = [c for c in wanted if c in available]
            if enable:
                _write(here / "cgroup.subtree_control", " ".join("+" + c for c in enable))
            here = here / part
            _mkdir(here)
        leaf = here
        # v2 has no devices controller: an eBPF program on the cgroup decides (a fake tree has
        # no kernel-made cgroup.procs in the new directory, and no program is attached there)
        if r.device_rules != ALLOW_ALL_DEVICES and (leaf / "cgroup.procs").exists():
            try:
                devicefilter.attach(str(leaf), r.device_rules)
            except (OSError, ValueError) as exc:
                raise SystemFailure(f"attach device filter to cgroup '{leaf}': {exc}") from exc
        if r.memory is not None:
            _write(leaf / "memory.max", r.memory)
            swap = (
                0
                if r.memory_swap is None
                else ("max" if r.memory_swap < 0 else max(r.memory_swap - r.memory, 0))
            )
            _write_optional(leaf / "memory.swap.max", swap)  # absent without swap accounting
        if r.nano_cpus:
            _write(leaf / "cpu.max", f"{r.nano_cpus * CFS_PERIOD_US // 1_000_000_000} {CFS_PERIOD_US}")
        if r.cpu_quota or r.cpu_period:
            _write(leaf / "cpu.max", cpu_max(r.cpu_quota, r.cpu_period))
        if r.cpu_shares:
            _write(leaf / "cpu.weight", 1 + ((r.cpu_shares - 2) * 9999) // 262142)
        if r.cpuset_cpus:
            _write(leaf / "cpuset.cpus", r.cpuset_cpus)
        if r.cpuset_mems:
            _write(leaf / "cpuset.mems", r.cpuset_mems)
        if r.pids_limit is not None:
            _write(leaf / "pids.max", "max" if r.pids_limit <= 0 else r.pids_limit)
        if r.memory_reservation:
            _write(leaf / "memory.low", r.memory_reservation)
        if r.blkio_weight:  # blkio's 10..1000 onto io.weight's 1..10000, as runc
            _write_first((leaf / "io.bfq.weight", leaf / "io.weight"), 1 + (r.blkio_weight - 10) * 9999 // 990)

    def add(self, pid: int) -> None:
        """Move ``pid`` (0 = the calling process) into the cgroup in every hierarchy."""
        for path in self.paths():
            _write(path / "cgroup.procs", pid)

    def exists(self) -> bool:
        return any(p.is_dir() for p in self.paths())

    def pids(self) -> list[int]:
        found: set[int] = set()
        for path in self.paths():
            try:
                found.update(int(line) for line in _read(path / "cgroup.procs").split())
            except OSError as exc:
                if exc.errno not in _GONE:
                    raise
                continue  # removed (ENODEV: removed between open and read, by its monitor)
        return sorted(found)

    # ---- freezer ------------------------------------------------------------------------
    def freeze(self) -> None:
        self._set_frozen(True)

    def thaw(self) -> None:
        self._set_frozen(False)

    def frozen(self) -> bool:
        if self.v2:
            return _read(self.root / self.name / "cgroup.freeze").strip() == "1"
        path = self._dir("freezer")
        return path is not None and _read(path / "freezer.state").strip() == "FROZEN"

    def _set_frozen(self, frozen: bool, timeout: float = 5.0) -> None:
        # the file to poll and the line that says the change is complete
        if self.v2:
            leaf = self.root / self.name
            _write(leaf / "cgroup.freeze", 1 if frozen else 0)
            poll, want = leaf / "cgroup.events", f"frozen {1 if frozen else 0}"
            if not poll.exists():  # a fake tree: nothing to wait for
                return
        else:
            path = self._dir("freezer")
            if path is None:
                raise SystemFailure(f"freeze cgroup {self.name!r}: no freezer hierarchy under {self.root}")
            want = "FROZEN" if frozen else "THAWED"
            _write(path / "freezer.state", want)
            poll = path / "freezer.state"  # FREEZING until every task is frozen
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while want not in _read(poll).splitlines():
            if time.monotonic() > deadline:
                raise SystemFailure(f"{'freeze' if frozen else 'thaw'} cgroup {self.name!r}: timed out")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    # ---- accounting ---------------------------------------------------------------------
    def oom_killed(self) -> bool:
        """True when the kernel OOM-killed a process in this cgroup since it was made."""
        if self.v2:
            path = self.root / self.name / "memory.events"
        else:
            mem = self._dir("memory")
            if mem is None:
                return False
            path = mem / "memory.oom_control"
        try:
            text = _read(path)
        except FileNotFoundError:
            return False
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value) > 0
        return False

    def stats(self) -> Stats:
        """CPU, memory and pids accounting, read from the files (v1 or v2)."""
        if self.v2:
            leaf = self.root / self.name
            cpu = _keyed(_read_quiet(leaf / "cpu.stat")).get("usage_usec")
            return Stats(
                cpu_usage_ns=None if cpu is None else cpu * 1000,
                memory_usage=_number(_read_quiet(leaf / "memory.current")),
                memory_limit=_number(_read_quiet(leaf / "memory.max")),
                memory_stat=tuple(_keyed(_read_quiet(leaf / "memory.stat")).items()),
                pids_current=_number(_read_quiet(leaf / "pids.current")),
                pids_limit=_number(_read_quiet(leaf / "pids.max")),
            )
        mem, cpuacct, pids = self._dir("memory"), self._dir("cpuacct"), self._dir("pids")
        limit = _number(_read_quiet(mem / "memory.limit_in_bytes")) if mem else None
        return Stats(
            cpu_usage_ns=_number(_read_quiet(cpuacct / "cpuacct.usage")) if cpuacct else None,
            memory_usage=_number(_read_quiet(mem / "memory.usage_in_bytes")) if mem else None,
            memory_limit=None if limit is None or limit >= 1 << 62 else limit,  # v1's "unlimited"
            memory_stat=tuple(_keyed(_read_quiet(mem / "memory.stat")).items()) if mem else (),
            pids_current=_number(_read_quiet(pids / "pids.current")) if pids else None,
            pids_limit=_number(_read_quiet(pids / "pids.max")) if pids else None,
        )

    def destroy(self, timeout: float = 5.0) -> None:
        """Kill what is left inside, then remove the leaf directories (idempotent)."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass  # already gone: that is what we want
            if self.exists() and self._is_frozen_quietly():
                self.thaw()  # a frozen task cannot die until thawed
            if time.monotonic() > deadline:
                raise SystemFailure(f"destroy cgroup {self.name!r}: processes {pids} did not exit")
            time.sleep(0.002)
        self._rmdirs(deadline)

    def remove_if_empty(self) -> bool:
        """Remove the directories if no process and no child cgroup is left in any of them;
        True if none is left. Never kills: for a shared parent (``berth-<tag>``) whose
        containers may outlive the daemon. rmdir itself refuses a busy cgroup (EBUSY), so a
        container that moves in meanwhile keeps its parent."""
        paths = [p for p in self.paths() if p.is_dir()]
        for path in paths:
            if _read_quiet(path / "cgroup.procs").strip() or any(c.is_dir() for c in path.iterdir()):
                return False
        for path in paths:
            try:
                os.rmdir(path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                if exc.errno in (errno.EBUSY, errno.ENOTEMPTY):
                    return False
                raise SystemFailure(f"remove cgroup '{path}': {exc.strerror}") from exc
        return True

    def _is_frozen_quietly(self) -> bool:
        try:
            return self.frozen()
        except OSError as exc:
            if exc.errno not in _GONE:
                raise
            return False

    def _rmdirs(self, deadline: float | None = None) -> None:
        for path in self.paths():
            while True:
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    # EBUSY right after the last task exits: the kernel is still releasing it
                    if exc.errno == errno.EBUSY and deadline is not None and time.monotonic() < deadline:
                        time.sleep(0.002)
                        continue
                    raise SystemFailure(f"remove cgroup '{path}': {exc.strerror}") from exc


def cpu_max(quota: int | None, period: int | None) -> str:
    """v2 ``cpu.max`` for the OCI quota/period: ``"QUOTA PERIOD"``, ``max`` for no quota (or -1),
    and the period left out when not given (the kernel keeps its own), as runc writes it.

    >>> cpu_max(50000, 100000), cpu_max(-1, 20000), cpu_max(25000, None)
    ('50000 100000', 'max 20000', '25000')
    """
    value = str(quota) if quota is not None and quota > 0 else "max"
    return f"{value} {period}" if period else value


def _write_cfs_v1(cpu: Path, quota: int | None, period: int | None) -> None:
    """cpu.cfs_period_us then cpu.cfs_quota_us, as given. The kernel refuses (EINVAL) a period
    whose ratio with the current quota would exceed the parent's limit; then the quota goes
    first and the period is written after it (runc's order too)."""
    deferred = False
    if period:
        try:
            with open(cpu / "cpu.cfs_period_us", "w") as f:
                f.write(str(period))
        except OSError as exc:
            if exc.errno != errno.EINVAL or not quota:
                raise SystemFailure(
                    f"write '{period}' to '{cpu / 'cpu.cfs_period_us'}': {exc.strerror}"
                ) from exc
            deferred = True
    if quota:
        _write(cpu / "cpu.cfs_quota_us", quota)
    if deferred:
        _write(cpu / "cpu.cfs_period_us", period)


def _mkdir(path: Path) -> None:
    try:
        path.mkdir()
    except FileExistsError:
        pass  # shared parents (berth-<tag>) are made once and kept
    except OSError as exc:
        raise SystemFailure(f"create cgroup '{path}': {exc.strerror}") from exc


def _mkdirs(base: Path, name: str, copy: tuple[str, ...]) -> None:
    here = base
    for part in name.split("/"):
        parent, here = here, here / part
        _mkdir(here)
        for fname in copy:  # cpuset: an empty cpus/mems refuses tasks; inherit the parent's
            if not _read_quiet(here / fname).strip():
                value = _read_quiet(parent / fname).strip()
                if value:
                    _write(here / fname, value)


def _number(text: str) -> int | None:
    """A cgroup number file: ``"123\n"`` -> 123; ``"max"`` or nothing -> None."""
    text = text.strip()
    return int(text) if text.isdigit() else None


def _keyed(text: str) -> dict[str, int]:
    """``key value`` lines (memory.stat, cpu.stat) as a dict."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


_GONE = (errno.ENOENT, errno.ENODEV)  # a cgroup file of a cgroup that was removed


def _read(path: Path) -> str:
    with open(path) as f:
        return f.read()


def _read_quiet(path: Path) -> str:
    try:
        return _read(path)
    except FileNotFoundError:
        return ""


def _write(path: Path, value: object) -> None:
    try:
        with open(path, "w") as f:
            f.write(str(value))
    except OSError as exc:
        raise SystemFailure(f"write {str(value)!r} to '{path}': {exc.strerror}") from exc


def _write_first(paths: tuple[Path, ...], value: object) -> None:
    """Write the first of these files that exists (the kernel offers one or the other)."""
    for path in paths:
        if path.exists():
            _write(path, value)
            return


def _write_optional(path: Path, value: object) -> None:
    """Write a file the kernel may not offer (swap accounting off): a missing file is no error."""
    try:
        with open(path, "w") as f:
            f.write(str(value))
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.EPERM, errno.EACCES):
            return
        raise SystemFailure(f"write {str(value)!r} to '{path}': {exc.strerror}") from exc
