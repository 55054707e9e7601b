"""`docker update`'s cgroup writes against fake v1 (hybrid) and v2 trees in a temp dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth.errors import SystemFailure
from berth.libcontainer.cgroups import Cgroup, Resources, ResourceUpdate, files, open_cgroup
from berth.libcontainer.cgroups import v1 as v1_manager
from berth.libcontainer.cgroups.faketree import fake_v1, fake_v2


def apply(cg: Cgroup, u: ResourceUpdate) -> None:
    cg.update(u)


@pytest.fixture
def v1(tmp_path: Path) -> Path:
    return fake_v1(tmp_path)


def read(p: Path) -> str:
    return p.read_text().strip()


def test_v1_writes_only_what_is_given(v1: Path) -> None:
    cg = open_cgroup("berth-t/c1", root=v1)
    cg.create(Resources(memory=32 << 20, memory_swap=64 << 20, pids_limit=10, cpu_shares=100))
    leaf = v1 / "memory" / "berth-t/c1"
    (v1 / "cpu,cpuacct" / "berth-t/c1" / "cpu.shares").write_text("100")
    apply(cg, ResourceUpdate(memory=48 << 20, nano_cpus=500_000_000, pids_limit=0, memory_reservation=8 << 20,
                             cpuset_cpus="1", blkio_weight=300))
    assert read(leaf / "memory.limit_in_bytes") == str(48 << 20)
    assert read(leaf / "memory.memsw.limit_in_bytes") == str(64 << 20)  # not given: kept
    assert read(leaf / "memory.soft_limit_in_bytes") == str(8 << 20)
    cpu = v1 / "cpu,cpuacct" / "berth-t/c1"
    assert (read(cpu / "cpu.cfs_quota_us"), read(cpu / "cpu.cfs_period_us"), read(cpu / "cpu.shares")) == (
        "50000", "100000", "100")
    assert read(v1 / "pids" / "berth-t/c1" / "pids.max") == "max"
    assert read(v1 / "cpuset" / "berth-t/c1" / "cpuset.cpus") == "1"
    assert not (v1 / "blkio" / "berth-t/c1" / "blkio.weight").exists()  # the host has no weight file


def test_v1_memory_and_swap_order(v1: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel refuses memory > memsw: growing both writes memsw first, shrinking memory first."""
    cg = open_cgroup("berth-t/c2", root=v1)
    cg.create(Resources(memory=32 << 20, memory_swap=64 << 20))
    order: list[str] = []
    real = v1_manager.write_memory_limit

    def note_memory(mem: Path, memory: int) -> None:
        order.append("memory")
        real(mem, memory)

    def note_write(path: str, value: object) -> None:
        order.append(Path(path).name)
        Path(path).write_text(str(value))

    monkeypatch.setattr(v1_manager, "write_memory_limit", note_memory)
    monkeypatch.setattr(files, "write", note_write)
    apply(cg, ResourceUpdate(memory=200 << 20, memory_swap=400 << 20))
    assert order == ["memory.memsw.limit_in_bytes", "memory"]
    order.clear()
    apply(cg, ResourceUpdate(memory=16 << 20, memory_swap=32 << 20))
    assert order == ["memory", "memory.memsw.limit_in_bytes"]


def test_v1_clamped_shares_are_an_error(v1: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cg = open_cgroup("berth-t/c3", root=v1)
    cg.create(Resources())
    monkeypatch.setattr(files, "read_or_fail", lambda p: "2\n")  # what the kernel makes of 1
    with pytest.raises(SystemFailure, match="the minimum allowed cpu-shares is 2"):
        apply(cg, ResourceUpdate(cpu_shares=1))


def test_v2_files(tmp_path: Path) -> None:
    fake_v2(tmp_path)
    cg = open_cgroup("berth-t/c4", root=tmp_path)
    cg.create(Resources(memory=32 << 20, nano_cpus=1_000_000_000, pids_limit=5))
    leaf = tmp_path / "berth-t/c4"
    (leaf / "io.weight").write_text("default 100\n")
    apply(cg, ResourceUpdate(memory=64 << 20, memory_swap=96 << 20, cpu_period=50000, cpu_shares=1024,
                             memory_reservation=8 << 20, pids_limit=50, blkio_weight=1000))
    assert read(leaf / "memory.max") == str(64 << 20)
    assert read(leaf / "memory.swap.max") == str(32 << 20)
    assert read(leaf / "memory.low") == str(8 << 20)
    assert read(leaf / "cpu.max") == "100000 50000"  # the quota kept, the period changed
    assert read(leaf / "cpu.weight") == "39"
    assert read(leaf / "pids.max") == "50"
    assert read(leaf / "io.weight") == "10000"
    apply(cg, ResourceUpdate(memory_swap=-1, cpu_quota=-1))
    assert read(leaf / "memory.swap.max") == "max" and read(leaf / "cpu.max") == "max 50000"
