"""cgroup v2 (unified): one directory ``<root>/<name>``.

Controllers are enabled on the way down (``cgroup.subtree_control`` of each ancestor, where the
parent offers them). What goes where: ``memory.max``, ``memory.swap.max`` (= swap - memory),
``memory.low``; ``cpu.max`` (``QUOTA PERIOD``), ``cpu.weight`` (runc's shares conversion);
``cpuset.cpus``/``cpuset.mems``; ``pids.max``; ``io.bfq.weight`` or ``io.weight``; device access
is an eBPF program attached to the cgroup (there is no devices controller); ``cgroup.freeze``
and ``cgroup.events``; OOM kills in ``memory.events``.

    >>> cpu_max(50000, 100000), cpu_max(-1, 20000), cpu_max(25000, None)
    ('50000 100000', 'max 20000', '25000')
"""

from __future__ import annotations

import os

from berth.errors import SystemFailure
from berth.libcontainer.cgroups import extralimits, files
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


def cpu_max(quota: int | None, period: int | None) -> str:
    """v2 ``cpu.max`` for the OCI quota/period: ``"QUOTA PERIOD"``, ``max`` for no quota (or -1),
    and the period left out when not given (the kernel keeps its own), as runc writes it."""
    value = str(quota) if quota is not None and quota > 0 else "max"
    return f"{value} {period}" if period else value


def shares_to_weight(shares: int) -> int:
    """cpu.shares (2..262144) onto cpu.weight (1..10000), as runc converts them."""
    return 1 + ((min(max(shares, 2), 262144) - 2) * 9999) // 262142


def blkio_to_io_weight(weight: int) -> int:
    """blkio's 10..1000 (default 500) onto io.weight's 1..10000 (default 100), as runc."""
    return 1 + (weight - 10) * 9999 // 990


class V2Cgroup(CgroupBase):
    version: ClassVar[int] = 2

    def __init__(self, name: str, root: str | os.PathLike[str] = "/sys/fs/cgroup") -> None:
        super().__init__(name, root)
        self.leaf = self.root / self.name

    def dirs(self) -> list[P]:
        return [self.leaf]

    def v2_dir(self) -> P | None:
        return self.leaf

    # ---- limits -------------------------------------------------------------------------
    def _create(self, r: Resources) -> None:
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
        wanted += [c for c in extralimits.wanted_v2_controllers(r) if c not in wanted]
        here = self.root
        for part in self.name.split("/"):
            available = set(files.read_quiet(here / "cgroup.controllers").split())
            enable = [c for c in wanted if c in available]
            if enable:
                files.write(here / "cgroup.subtree_control", " ".join("+" + c for c in enable))
            here = here / part
            files.mkdir(here)
        leaf = self.leaf
        # v2 has no devices controller: an eBPF program on the cgroup decides (a fake tree has
        # no kernel-made cgroup.procs in the new directory, and no program is attached there)
        if r.device_rules != ALLOW_ALL_DEVICES and (leaf / "cgroup.procs").exists():
            try:
                from berth.libcontainer import devicefilter  # only v2 hosts load BPF programs

                devicefilter.attach(str(leaf), r.device_rules)
            except (OSError, ValueError) as exc:
                raise SystemFailure(f"attach device filter to cgroup '{leaf}': {exc}") from exc
        if r.memory is not None:
            files.write(leaf / "memory.max", r.memory)
            swap = (
                0
                if r.memory_swap is None
                else ("max" if r.memory_swap < 0 else max(r.memory_swap - r.memory, 0))
            )
            files.write_optional(leaf / "memory.swap.max", swap)  # absent without swap accounting
        if r.nano_cpus:
            files.write(leaf / "cpu.max", f"{nano_cpus_quota(r.nano_cpus)} {CFS_PERIOD_US}")
        if r.cpu_quota or r.cpu_period:
            files.write(leaf / "cpu.max", cpu_max(r.cpu_quota, r.cpu_period))
        if r.cpu_shares:
            files.write(leaf / "cpu.weight", shares_to_weight(r.cpu_shares))
        if r.cpuset_cpus:
            files.write(leaf / "cpuset.cpus", r.cpuset_cpus)
        if r.cpuset_mems:
            files.write(leaf / "cpuset.mems", r.cpuset_mems)
        if r.pids_limit is not None:
            files.write(leaf / "pids.max", pids_max(r.pids_limit))
        if r.memory_reservation:
            files.write(leaf / "memory.low", r.memory_reservation)
        if r.blkio_weight:
            files.write_first((leaf / "io.bfq.weight", leaf / "io.weight"), blkio_to_io_weight(r.blkio_weight))
        if r.has_extras:
            extralimits.write_v2(r, leaf)

    def update(self, u: ResourceUpdate) -> None:
        leaf = self.leaf
        if u.memory is not None:
            files.write(leaf / "memory.max", "max" if u.memory < 0 else u.memory)
        if u.memory_swap is not None:
            if u.memory_swap < 0:
                swap: object = "max"
            else:
                memory = u.memory if u.memory is not None else files.number(files.read_or_fail(leaf / "memory.max"))
                swap = max(u.memory_swap - (memory or 0), 0)
            if (leaf / "memory.swap.max").exists():  # absent without swap accounting
                files.write(leaf / "memory.swap.max", swap)
        if u.memory_reservation is not None:
            files.write(leaf / "memory.low", u.memory_reservation)
        if u.nano_cpus:
            quota: int | None = max(nano_cpus_quota(u.nano_cpus), 1000)
            period: int | None = CFS_PERIOD_US
        else:
            quota, period = u.cpu_quota, u.cpu_period
        if quota is not None or period is not None:
            old_quota, _, old_period = files.read_or_fail(leaf / "cpu.max").strip().partition(" ")
            q = old_quota if quota is None else ("max" if quota < 0 else quota)
            p = old_period if period is None else period
            files.write(leaf / "cpu.max", f"{q} {p}")
        if u.cpu_shares is not None:
            files.write(leaf / "cpu.weight", shares_to_weight(u.cpu_shares))
        if u.cpuset_cpus is not None:
            files.write(leaf / "cpuset.cpus", u.cpuset_cpus)
        if u.cpuset_mems is not None:
            files.write(leaf / "cpuset.mems", u.cpuset_mems)
        if u.pids_limit is not None:
            files.write(leaf / "pids.max", pids_max(u.pids_limit))
        if u.blkio_weight:
            files.write_first((leaf / "io.bfq.weight", leaf / "io.weight"), blkio_to_io_weight(u.blkio_weight))

    # ---- freezer ------------------------------------------------------------------------
    def frozen(self) -> bool:
        return files.read_quiet(self.leaf / "cgroup.freeze").strip() == "1"

    def _request_frozen(self, frozen: bool) -> tuple[P, str] | None:
        files.write(self.leaf / "cgroup.freeze", 1 if frozen else 0)
        events = self.leaf / "cgroup.events"
        if not events.exists():  # a fake tree: nothing to wait for
            return None
        return events, f"frozen {1 if frozen else 0}"

    # ---- accounting ---------------------------------------------------------------------
    def oom_killed(self) -> bool:
        try:
            return files.keyed(files.read(self.leaf / "memory.events")).get("oom_kill", 0) > 0
        except FileNotFoundError:
            return False

    def stats(self) -> Stats:
        leaf = self.leaf
        cpu = files.keyed(files.read_quiet(leaf / "cpu.stat")).get("usage_usec")
        return Stats(
            cpu_usage_ns=None if cpu is None else cpu * 1000,
            memory_usage=files.number(files.read_quiet(leaf / "memory.current")),
            memory_limit=files.number(files.read_quiet(leaf / "memory.max")),
            memory_stat=tuple(files.keyed(files.read_quiet(leaf / "memory.stat")).items()),
            pids_current=files.number(files.read_quiet(leaf / "pids.current")),
            pids_limit=files.number(files.read_quiet(leaf / "pids.max")),
        )
