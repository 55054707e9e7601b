"""Cgroup file writes against fake v1 (hybrid) and v2 trees in a temp dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth.libcontainer.cgroups import ALLOW_ALL_DEVICES, Resources, open_cgroup
from berth.libcontainer.cgroups.faketree import V1_HIERARCHIES, fake_v1, fake_v2

V1 = (*V1_HIERARCHIES, "unified")  # hybrid


@pytest.fixture
def v1(tmp_path: Path) -> Path:
    return fake_v1(tmp_path)


@pytest.fixture
def v2(tmp_path: Path) -> Path:
    return fake_v2(tmp_path)


def _read(p: Path) -> str:
    return p.read_text().strip()


def test_v1_limits_land_in_each_controller(v1: Path):
    cg = open_cgroup("berth-t/c1", root=v1)
    assert cg.version == 1
    cg.create(Resources(memory=64 << 20, nano_cpus=1_500_000_000, pids_limit=50, cpu_shares=512))
    leaf = "berth-t/c1"
    assert _read(v1 / "memory" / leaf / "memory.limit_in_bytes") == str(64 << 20)
    assert _read(v1 / "memory" / leaf / "memory.memsw.limit_in_bytes") == str(64 << 20)  # no swap
    assert _read(v1 / "cpu" / leaf / "cpu.cfs_period_us") == "100000"
    assert _read(v1 / "cpu" / leaf / "cpu.cfs_quota_us") == "150000"
    assert _read(v1 / "cpu" / leaf / "cpu.shares") == "512"
    assert _read(v1 / "pids" / leaf / "pids.max") == "50"
    assert _read(v1 / "cpuset" / "berth-t" / "cpuset.cpus") == "0-1"  # inherited at each level
    assert _read(v1 / "cpuset" / leaf / "cpuset.mems") == "0"
    assert (v1 / "unified" / leaf).is_dir() and (v1 / "systemd" / leaf).is_dir()
    # one directory per hierarchy: cpu and cpuacct are the same mount
    assert len(cg.paths()) == len(V1)
    assert cg.exists()


def test_v1_devices_deny_all_then_allow_defaults(v1: Path):
    cg = open_cgroup("c2", root=v1)
    cg.create(Resources())
    assert _read(v1 / "devices" / "c2" / "devices.deny") == "a"
    # the file keeps only the last write in a fake tree; the kernel appends each rule
    assert _read(v1 / "devices" / "c2" / "devices.allow") == "c 10:200 rwm"
    cg2 = open_cgroup("c3", root=v1)
    cg2.create(Resources(device_rules=ALLOW_ALL_DEVICES))
    assert not (v1 / "devices" / "c3" / "devices.deny").exists()


def test_v1_unlimited_pids_and_explicit_swap(v1: Path):
    cg = open_cgroup("c4", root=v1)
    cg.create(Resources(memory=10 << 20, memory_swap=30 << 20, pids_limit=0))
    assert _read(v1 / "pids" / "c4" / "pids.max") == "max"
    assert _read(v1 / "memory" / "c4" / "memory.memsw.limit_in_bytes") == str(30 << 20)


def test_add_writes_the_pid_everywhere(v1: Path):
    cg = open_cgroup("c5", root=v1)
    cg.create(Resources())
    cg.add(4242)
    assert all(_read(p / "cgroup.procs") == "4242" for p in cg.paths())
    assert cg.pids() == [4242]


def test_v1_freeze_thaw_and_oom(v1: Path):
    cg = open_cgroup("c6", root=v1)
    cg.create(Resources(memory=1 << 30))
    cg.freeze()
    assert _read(v1 / "freezer" / "c6" / "freezer.state") == "FROZEN" and cg.frozen()
    cg.thaw()
    assert not cg.frozen()
    oom = v1 / "memory" / "c6" / "memory.oom_control"
    oom.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    assert not cg.oom_killed()
    oom.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert cg.oom_killed()


def test_v2_limits_and_controllers(v2: Path):
    cg = open_cgroup("berth-t/c1", root=v2)
    assert cg.version == 2
    cg.create(Resources(memory=32 << 20, nano_cpus=500_000_000, pids_limit=7, cpu_shares=1024))
    leaf = v2 / "berth-t" / "c1"
    assert _read(v2 / "cgroup.subtree_control") == "+memory +cpu +pids"
    assert _read(leaf / "memory.max") == str(32 << 20)
    assert _read(leaf / "memory.swap.max") == "0"
    assert _read(leaf / "cpu.max") == "50000 100000"
    assert _read(leaf / "cpu.weight") == "39"  # runc's shares -> weight conversion
    assert _read(leaf / "pids.max") == "7"
    assert cg.paths() == [leaf]


def test_v2_oci_quota_period_and_cpuset_are_written_as_given(v2: Path):
    cg = open_cgroup("berth-t/c9", root=v2)
    cg.create(Resources(cpu_quota=30000, cpu_period=50000, cpuset_cpus="1", cpuset_mems="0"))
    leaf = v2 / "berth-t" / "c9"
    assert _read(v2 / "cgroup.subtree_control") == "+cpu +cpuset"  # enabled on the way down
    assert _read(leaf / "cpu.max") == "30000 50000"
    assert (_read(leaf / "cpuset.cpus"), _read(leaf / "cpuset.mems")) == ("1", "0")
    open_cgroup("c10", root=v2).create(Resources(cpu_quota=-1, cpu_period=20000))
    assert _read(v2 / "c10" / "cpu.max") == "max 20000"


def test_v1_oci_quota_period_and_cpuset_are_written_as_given(v1: Path):
    open_cgroup("berth-t/c9", root=v1).create(
        Resources(cpu_quota=30000, cpu_period=50000, cpuset_cpus="1", cpuset_mems="0")
    )
    leaf = "berth-t/c9"
    assert _read(v1 / "cpu" / leaf / "cpu.cfs_period_us") == "50000"
    assert _read(v1 / "cpu" / leaf / "cpu.cfs_quota_us") == "30000"
    assert _read(v1 / "cpuset" / leaf / "cpuset.cpus") == "1"
    assert _read(v1 / "cpuset" / "berth-t" / "cpuset.cpus") == "0-1"  # the parent keeps all


def test_v2_freeze_and_oom(v2: Path):
    cg = open_cgroup("c2", root=v2)
    cg.create(Resources())
    cg.freeze()
    assert _read(v2 / "c2" / "cgroup.freeze") == "1" and cg.frozen()
    cg.thaw()
    assert not cg.frozen()
    assert not cg.oom_killed()  # no memory.events yet
    (v2 / "c2" / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert cg.oom_killed()


def test_destroy_removes_empty_leaves_and_keeps_the_parent(v1: Path):
    cg = open_cgroup("berth-t/c7", root=v1)
    for path in cg.paths():
        path.mkdir(parents=True)
    assert cg.exists()
    cg.destroy()
    assert not cg.exists()
    assert (v1 / "memory" / "berth-t").is_dir()
    cg.destroy()  # idempotent


def test_bad_names_are_refused(tmp_path: Path):
    for name in ("", "/", "a/../b"):
        with pytest.raises(ValueError):
            open_cgroup(name, root=tmp_path)


def test_stats_v1(v1: Path):
    cg = open_cgroup("c8", root=v1)
    cg.create(Resources(pids_limit=20))
    leaf = "c8"
    (v1 / "memory" / leaf / "memory.usage_in_bytes").write_text("4096\n")
    (v1 / "memory" / leaf / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (v1 / "memory" / leaf / "memory.stat").write_text("cache 10\nrss 20\n")
    (v1 / "cpuacct" / leaf / "cpuacct.usage").write_text("123456789\n")
    (v1 / "pids" / leaf / "pids.current").write_text("3\n")
    st = cg.stats()
    assert (st.cpu_usage_ns, st.memory_usage, st.memory_limit) == (123456789, 4096, None)  # unlimited
    assert dict(st.memory_stat) == {"cache": 10, "rss": 20}
    assert (st.pids_current, st.pids_limit) == (3, 20)


def test_stats_v2(v2: Path):
    cg = open_cgroup("c3", root=v2)
    cg.create(Resources(memory=1 << 20))
    leaf = v2 / "c3"
    (leaf / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\n")
    (leaf / "memory.current").write_text("8192\n")
    (leaf / "pids.current").write_text("1\n")
    st = cg.stats()
    assert (st.cpu_usage_ns, st.memory_usage, st.memory_limit) == (1_500_000, 8192, 1 << 20)
    assert (st.pids_current, st.pids_limit) == (1, None)  # no pids.max written: unlimited
