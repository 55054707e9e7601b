"""Changing the limits of a live cgroup (``docker update``; runc's ``update``), v1 and v2.

Only the fields given (not None) are written; the others keep what the cgroup has::

    apply(Cgroup("berth-x/abc"), ResourceUpdate(memory=64 << 20, memory_swap=128 << 20,
                                                 nano_cpus=500_000_000, pids_limit=50))

What goes where (v1 file / v2 file):

- memory: ``memory.limit_in_bytes`` / ``memory.max``; memory + swap: ``memory.memsw.limit_in_bytes``
  / ``memory.swap.max`` (= swap - memory). On v1 the kernel refuses a memory limit above the
  memsw limit, so when both grow the memsw limit goes first, otherwise the memory limit does (as
  runc). A memory limit below what the cgroup uses and cannot reclaim is ``EBUSY`` on v1: the
  error names the usage, like runc's.
- memory_reservation: ``memory.soft_limit_in_bytes`` / ``memory.low``.
- nano_cpus: a quota over a 100 ms period; cpu_quota/cpu_period as given: ``cpu.cfs_quota_us``
  and ``cpu.cfs_period_us`` / ``cpu.max``; cpu_shares: ``cpu.shares`` / ``cpu.weight`` (the
  kernel clamps shares to 2..262144: a clamped value is an error, as runc reads it back).
- cpuset_cpus/cpuset_mems: ``cpuset.cpus``/``cpuset.mems`` in both.
- pids_limit: ``pids.max`` (<= 0 = ``max``).
- blkio_weight: ``blkio.weight`` or ``blkio.bfq.weight`` / ``io.weight`` or ``io.bfq.weight``;
  :func:`blkio_weight_supported` tells the daemon whether the host has either.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path

from berth.errors import SystemFailure
from berth.libcontainer.cgroups import CFS_PERIOD_US, Cgroup, _write, _write_first

_UNLIMITED_V1 = -1


@dataclass(frozen=True)
class ResourceUpdate:
    memory: int | None = None  # bytes
    memory_swap: int | None = None  # memory + swap; -1 = unlimited
    memory_reservation: int | None = None
    nano_cpus: int | None = None
    cpu_quota: int | None = None  # µs; -1 = unlimited
    cpu_period: int | None = None  # µs
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: int | None = None  # <= 0 = unlimited
    blkio_weight: int | None = None


def blkio_weight_supported(root: Path = Path("/sys/fs/cgroup")) -> bool:
    """Whether the host's block I/O controller takes a weight (CFQ/BFQ); dockerd warns and
    discards ``--blkio-weight`` otherwise."""
    if (root / "cgroup.controllers").exists():
        return "io" in (root / "cgroup.controllers").read_text().split()
    return any((root / "blkio" / name).exists() for name in ("blkio.weight", "blkio.bfq.weight"))


def apply(cg: Cgroup, u: ResourceUpdate) -> None:
    """Write the update into the container's cgroup; SystemFailure says which write failed."""
    if cg.v2:
        _apply_v2(cg, u)
    else:
        _apply_v1(cg, u)


def _apply_v1(cg: Cgroup, u: ResourceUpdate) -> None:
    mem = cg._dir("memory")
    if mem is not None:
        if u.memory is not None or u.memory_swap is not None:
            _memory_v1(mem, u.memory, u.memory_swap)
        if u.memory_reservation is not None:
            _write(mem / "memory.soft_limit_in_bytes", u.memory_reservation)
    cpu = cg._dir("cpu")
    if cpu is not None:
        quota, period = _cfs(u)
        if period is not None:
            _write(cpu / "cpu.cfs_period_us", period)
        if quota is not None:
            _write(cpu / "cpu.cfs_quota_us", quota)
        if u.cpu_shares is not None:
            _write(cpu / "cpu.shares", u.cpu_shares)
            got = int(_read(cpu / "cpu.shares"))
            if got != u.cpu_shares:  # the kernel clamps instead of refusing
                edge = "minimum" if u.cpu_shares < got else "maximum"
                raise SystemFailure(f"the {edge} allowed cpu-shares is {got}")
    cpuset = cg._dir("cpuset")
    if cpuset is not None:
        if u.cpuset_cpus is not None:
            _write(cpuset / "cpuset.cpus", u.cpuset_cpus)
        if u.cpuset_mems is not None:
            _write(cpuset / "cpuset.mems", u.cpuset_mems)
    pids = cg._dir("pids")
    if pids is not None and u.pids_limit is not None:
        _write(pids / "pids.max", "max" if u.pids_limit <= 0 else u.pids_limit)
    blkio = cg._dir("blkio")
    if blkio is not None and u.blkio_weight:
        _write_first((blkio / "blkio.weight", blkio / "blkio.bfq.weight"), u.blkio_weight)


def _memory_v1(mem: Path, memory: int | None, swap: int | None) -> None:
    memsw = mem / "memory.memsw.limit_in_bytes"
    has_memsw = memsw.exists()
    if swap is not None and has_memsw:
        current = int(_read(memsw))
        new = (1 << 63) - 1 if swap == _UNLIMITED_V1 else swap
        if new > current:  # growing: memsw first, so the memory limit never passes it
            _write(memsw, swap)
            if memory is not None:
                _write_memory_limit(mem, memory)
            return
    if memory is not None:
        _write_memory_limit(mem, memory)
    if swap is not None and has_memsw:
        _write(memsw, swap)


def _write_memory_limit(mem: Path, memory: int) -> None:
    try:
        with open(mem / "memory.limit_in_bytes", "w") as f:
            f.write(str(memory))
    except OSError as exc:
        if exc.errno == errno.EBUSY:  # above what the kernel can reclaim down to
            usage = _read(mem / "memory.usage_in_bytes").strip()
            peak = _read(mem / "memory.max_usage_in_bytes").strip()
            raise SystemFailure(
                f"unable to set memory limit to {memory} (current usage: {usage}, peak usage: {peak})"
            ) from exc
        raise SystemFailure(f"write {str(memory)!r} to '{mem / 'memory.limit_in_bytes'}': {exc.strerror}") from exc


def _cfs(u: ResourceUpdate) -> tuple[int | None, int | None]:
    """(quota, period) to write; nano_cpus means a quota over the default period."""
    if u.nano_cpus:
        return max(u.nano_cpus * CFS_PERIOD_US // 1_000_000_000, 1000), CFS_PERIOD_US
    return u.cpu_quota, u.cpu_period


def _apply_v2(cg: Cgroup, u: ResourceUpdate) -> None:
    leaf = cg.root / cg.name
    if u.memory is not None:
        _write(leaf / "memory.max", "max" if u.memory < 0 else u.memory)
    if u.memory_swap is not None:
        if u.memory_swap < 0:
            swap: object = "max"
        else:
            memory = u.memory if u.memory is not None else _number(_read(leaf / "memory.max"))
            swap = max(u.memory_swap - (memory or 0), 0)
        _write_optional(leaf / "memory.swap.max", swap)
    if u.memory_reservation is not None:
        _write(leaf / "memory.low", u.memory_reservation)
    quota, period = _cfs(u)
    if quota is not None or period is not None:
        old_quota, _, old_period = _read(leaf / "cpu.max").strip().partition(" ")
        q = old_quota if quota is None else ("max" if quota < 0 else quota)
        p = old_period if period is None else period
        _write(leaf / "cpu.max", f"{q} {p}")
    if u.cpu_shares is not None:
        _write(leaf / "cpu.weight", 1 + ((min(max(u.cpu_shares, 2), 262144) - 2) * 9999) // 262142)
    if u.cpuset_cpus is not None:
        _write(leaf / "cpuset.cpus", u.cpuset_cpus)
    if u.cpuset_mems is not None:
        _write(leaf / "cpuset.mems", u.cpuset_mems)
    if u.pids_limit is not None:
        _write(leaf / "pids.max", "max" if u.pids_limit <= 0 else u.pids_limit)
    if u.blkio_weight:
        # io.weight is 1..10000 (default 100); blkio's 10..1000 (default 500) maps onto it as runc does
        _write_first((leaf / "io.bfq.weight", leaf / "io.weight"), 1 + (u.blkio_weight - 10) * 9999 // 990)


def _number(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def _read(path: Path) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError as exc:
        raise SystemFailure(f"read '{path}': {exc.strerror}") from exc


def _write_optional(path: Path, value: object) -> None:
    """A file the kernel may not offer (swap accounting off): a missing one is no error."""
    if path.exists():
        _write(path, value)
