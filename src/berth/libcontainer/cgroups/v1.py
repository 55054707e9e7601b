"""cgroup v1 (and hybrid): one directory per mounted hierarchy.

``<root>/memory/<name>``, ``<root>/pids/<name>``, ... and, on a hybrid host, ``<root>/unified/<name>``
(joined for membership only: every controller is a v1 one). A pure v1 host simply has no
``unified``; a hierarchy the host does not mount is skipped, and so is every limit on it.

What goes where: memory ``memory.limit_in_bytes``, memory + swap ``memory.memsw.limit_in_bytes``
(absent without swap accounting), reservation ``memory.soft_limit_in_bytes``; cpu
``cpu.cfs_period_us``/``cpu.cfs_quota_us``/``cpu.shares``; ``cpuset.cpus``/``cpuset.mems`` (copied
from the parent at each level, else the cgroup refuses tasks); ``pids.max``; ``blkio.weight`` or
``blkio.bfq.weight``; ``devices.deny``/``devices.allow``; ``freezer.state``; OOM kills in
``memory.oom_control``.
"""

from __future__ import annotations

import errno
import os

from berth.errors import SystemFailure
from berth.libcontainer.cgroups import files
from berth.libcontainer.cgroups.files import P
from berth.libcontainer.cgroups.manager import CgroupBase
from berth.libcontainer.cgroups.resources import (
    ALLOW_ALL_DEVICES,
    CFS_PERIOD_US,
    Resources,
    ResourceUpdate,
    Stats,
    nano_cpus_quota,
    pids_max,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import ClassVar

# v1 hierarchies a container joins; cpuset needs cpus/mems copied down before it accepts tasks.
CONTROLLERS = (
    "memory",
    "cpu",
    "cpuacct",
    "pids",
    "freezer",
    "devices",
    "blkio",
    "cpuset",
    # joined where the host mounts them (as runc joins every hierarchy); only OCI limits use them
    "net_cls",
    "net_prio",
    "hugetlb",
    "perf_event",
    "rdma",
    "misc",
    "systemd",
    "unified",
)
_UNLIMITED = -1
_UNLIMITED_BYTES = 1 << 62  # what v1 reports for "no limit" is above this


class V1Cgroup(CgroupBase):
    version: ClassVar[int] = 1

    def __init__(self, name: str, root: str | os.PathLike[str] = "/sys/fs/cgroup") -> None:
        super().__init__(name, root)
        self._layout: dict[str, P] | None = None  # the hierarchies, found once

    # ---- layout -------------------------------------------------------------------------
    def _hierarchies(self) -> dict[str, P]:
        """Controller name -> hierarchy root; duplicates (cpu -> cpu,cpuacct) collapse."""
        if self._layout is None:
            found: dict[str, P] = {}
            seen: set[tuple[int, int]] = set()
            for ctrl in CONTROLLERS:
                base = self.root / ctrl
                try:
                    # one stat: the hierarchy is mounted, and which one it is (an alias such as
                    # cpuacct -> cpu,cpuacct reaches the same file)
                    st = os.stat(os.path.join(base, "cgroup.procs"))
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
                found[ctrl] = base
            self._layout = found
        return self._layout

    def hierarchies(self) -> dict[str, P]:
        """Controller (or hierarchy) name -> the root it is mounted at, one per hierarchy."""
        return dict(self._hierarchies())

    def _dir(self, ctrl: str) -> P | None:
        base = self._hierarchies().get(ctrl)
        if base is None and (self.root / ctrl / "cgroup.procs").exists():
            base = self.root / ctrl  # an alias of a joined hierarchy (cpuacct -> cpu,cpuacct)
        return None if base is None else base / self.name

    def dirs(self) -> list[P]:
        return [base / self.name for base in self._hierarchies().values()]

    def join(self, v2: bool = True) -> None:
        # "0" in a v1 hierarchy's tasks moves the calling thread -- the whole of a
        # single-threaded process -- and the kernel takes no global lock for a thread moving
        # itself; the cgroup2 hierarchy of a hybrid host has only cgroup.procs (cgroup.threads
        # refuses a move across domains)
        for ctrl, base in self._hierarchies().items():
            if ctrl != "unified":
                files.write(base / self.name / "tasks", 0)
            elif v2:
                files.write(base / self.name / "cgroup.procs", 0)

    def v2_dir(self) -> P | None:
        unified = self._hierarchies().get("unified")
        return None if unified is None else unified / self.name

    # ---- limits -------------------------------------------------------------------------
    def _create(self, r: Resources) -> None:
        for ctrl, base in self._hierarchies().items():
            _mkdirs(base, self.name, copy=("cpuset.cpus", "cpuset.mems") if ctrl == "cpuset" else ())
        mem = self._dir("memory")
        if mem is not None and r.memory is not None:
            files.write(mem / "memory.limit_in_bytes", r.memory)
            swap = r.memory if r.memory_swap is None else r.memory_swap
            files.write_optional(mem / "memory.memsw.limit_in_bytes", swap)  # absent without swap accounting
        cpu = self._dir("cpu")
        if cpu is not None:
            if r.nano_cpus:
                files.write(cpu / "cpu.cfs_period_us", CFS_PERIOD_US)
                files.write(cpu / "cpu.cfs_quota_us", nano_cpus_quota(r.nano_cpus))
            if r.cpu_quota or r.cpu_period:
                _write_cfs(cpu, r.cpu_quota, r.cpu_period)
            if r.cpu_shares:
                files.write(cpu / "cpu.shares", r.cpu_shares)
        cpuset = self._dir("cpuset")
        if cpuset is not None:  # _mkdirs copied the parent's; narrow them (cpus first, as runc)
            if r.cpuset_cpus:
                files.write(cpuset / "cpuset.cpus", r.cpuset_cpus)
            if r.cpuset_mems:
                files.write(cpuset / "cpuset.mems", r.cpuset_mems)
        pids = self._dir("pids")
        if pids is not None and r.pids_limit is not None:
            files.write(pids / "pids.max", pids_max(r.pids_limit))
        if mem is not None and r.memory_reservation:
            files.write(mem / "memory.soft_limit_in_bytes", r.memory_reservation)
        blkio = self._dir("blkio")
        if blkio is not None and r.blkio_weight:
            files.write_first((blkio / "blkio.weight", blkio / "blkio.bfq.weight"), r.blkio_weight)
        dev = self._dir("devices")
        if dev is not None and r.device_rules != ALLOW_ALL_DEVICES:
            files.write(dev / "devices.deny", "a")
            for rule in r.device_rules:
                files.write(dev / "devices.allow", rule)
        if r.has_extras:
            unified = self._hierarchies().get("unified")
            from berth.libcontainer.cgroups import extralimits  # the OCI-only limits

            extralimits.write_v1(r, self._dir, unified, self.name)

    def update(self, u: ResourceUpdate) -> None:
        mem = self._dir("memory")
        if mem is not None:
            if u.memory is not None or u.memory_swap is not None:
                _update_memory(mem, u.memory, u.memory_swap)
            if u.memory_reservation is not None:
                files.write(mem / "memory.soft_limit_in_bytes", u.memory_reservation)
        cpu = self._dir("cpu")
        if cpu is not None:
            quota, period = _cfs(u)
            if period is not None:
                files.write(cpu / "cpu.cfs_period_us", period)
            if quota is not None:
                files.write(cpu / "cpu.cfs_quota_us", quota)
            if u.cpu_shares is not None:
                files.write(cpu / "cpu.shares", u.cpu_shares)
                got = int(files.read_or_fail(cpu / "cpu.shares"))
                if got != u.cpu_shares:  # the kernel clamps instead of refusing
                    edge = "minimum" if u.cpu_shares < got else "maximum"
                    raise SystemFailure(f"the {edge} allowed cpu-shares is {got}")
        cpuset = self._dir("cpuset")
        if cpuset is not None:
            if u.cpuset_cpus is not None:
                files.write(cpuset / "cpuset.cpus", u.cpuset_cpus)
            if u.cpuset_mems is not None:
                files.write(cpuset / "cpuset.mems", u.cpuset_mems)
        pids = self._dir("pids")
        if pids is not None and u.pids_limit is not None:
            files.write(pids / "pids.max", pids_max(u.pids_limit))
        blkio = self._dir("blkio")
        if blkio is not None and u.blkio_weight:
            files.write_first((blkio / "blkio.weight", blkio / "blkio.bfq.weight"), u.blkio_weight)

    # ---- freezer ------------------------------------------------------------------------
    def frozen(self) -> bool:
        path = self._dir("freezer")
        return path is not None and files.read_quiet(path / "freezer.state").strip() == "FROZEN"

    def _request_frozen(self, frozen: bool) -> tuple[P, str]:
        path = self._dir("freezer")
        if path is None:
            raise SystemFailure(f"freeze cgroup {self.name!r}: no freezer hierarchy under {self.root}")
        want = "FROZEN" if frozen else "THAWED"
        files.write(path / "freezer.state", want)
        return path / "freezer.state", want  # FREEZING until every task is frozen

    # ---- accounting ---------------------------------------------------------------------
    def oom_killed(self) -> bool:
        # one read, without the layout's stat per controller (the shim asks on the way of the
        # exit's report): no memory hierarchy, or no cgroup in it, is no OOM
        try:
            return files.keyed(files.read(self.root / "memory" / self.name / "memory.oom_control")).get("oom_kill", 0) > 0
        except FileNotFoundError:
            return False

    def stats(self) -> Stats:
        mem, cpuacct, pids = self._dir("memory"), self._dir("cpuacct"), self._dir("pids")
        limit = files.number(files.read_quiet(mem / "memory.limit_in_bytes")) if mem else None
        return Stats(
            cpu_usage_ns=files.number(files.read_quiet(cpuacct / "cpuacct.usage")) if cpuacct else None,
            memory_usage=files.number(files.read_quiet(mem / "memory.usage_in_bytes")) if mem else None,
            memory_limit=None if limit is None or limit >= _UNLIMITED_BYTES else limit,
            memory_stat=tuple(files.keyed(files.read_quiet(mem / "memory.stat")).items()) if mem else (),
            pids_current=files.number(files.read_quiet(pids / "pids.current")) if pids else None,
            pids_limit=files.number(files.read_quiet(pids / "pids.max")) if pids else None,
        )


def _mkdirs(base: P, name: str, copy: tuple[str, ...]) -> None:
    here = base
    for part in name.split("/"):
        parent, here = here, here / part
        files.mkdir(here)
        for fname in copy:  # cpuset: an empty cpus/mems refuses tasks; inherit the parent's
            if not files.read_quiet(here / fname).strip():
                value = files.read_quiet(parent / fname).strip()
                if value:
                    files.write(here / fname, value)


def _write_cfs(cpu: P, quota: int | None, period: int | None) -> None:
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
        files.write(cpu / "cpu.cfs_quota_us", quota)
    if deferred:
        files.write(cpu / "cpu.cfs_period_us", period)


def _cfs(u: ResourceUpdate) -> tuple[int | None, int | None]:
    """(quota, period) to write; nano_cpus means a quota over the default period."""
    if u.nano_cpus:
        return max(nano_cpus_quota(u.nano_cpus), 1000), CFS_PERIOD_US
    return u.cpu_quota, u.cpu_period


def _update_memory(mem: P, memory: int | None, swap: int | None) -> None:
    """The kernel refuses a memory limit above the memsw limit: when both grow, memsw goes
    first, otherwise the memory limit does (as runc)."""
    memsw = mem / "memory.memsw.limit_in_bytes"
    has_memsw = memsw.exists()
    if swap is not None and has_memsw:
        current = int(files.read_or_fail(memsw))
        new = (1 << 63) - 1 if swap == _UNLIMITED else swap
        if new > current:  # growing: memsw first, so the memory limit never passes it
            files.write(memsw, swap)
            if memory is not None:
                write_memory_limit(mem, memory)
            return
    if memory is not None:
        write_memory_limit(mem, memory)
    if swap is not None and has_memsw:
        files.write(memsw, swap)


def write_memory_limit(mem: P, memory: int) -> None:
    """A memory limit below what the cgroup uses and cannot reclaim is EBUSY: the error names
    the usage, like runc's."""
    try:
        with open(mem / "memory.limit_in_bytes", "w") as f:
            f.write(str(memory))
    except OSError as exc:
        if exc.errno == errno.EBUSY:  # above what the kernel can reclaim down to
            usage = files.read_or_fail(mem / "memory.usage_in_bytes").strip()
            peak = files.read_or_fail(mem / "memory.max_usage_in_bytes").strip()
            raise SystemFailure(
                f"unable to set memory limit to {memory} (current usage: {usage}, peak usage: {peak})"
            ) from exc
        raise SystemFailure(f"write {str(memory)!r} to '{mem / 'memory.limit_in_bytes'}': {exc.strerror}") from exc
