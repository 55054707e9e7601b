"""Cgroups on this machine's real hierarchy (v1/hybrid here, v2 elsewhere) with busybox containers."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from berth.libcontainer import Stdio, create
from berth.libcontainer.cgroups import ALLOW_ALL_DEVICES, Cgroup, Resources, open_cgroup
from berth.libcontainer.testing import BUSYBOX, busybox_rootfs, docker_like_spec

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create cgroups and namespaces"),
    pytest.mark.skipif(
        not os.path.exists(BUSYBOX), reason="needs /bin/busybox (apt-get install busybox-static)"
    ),
]


@pytest.fixture
def cgroup():
    cg = open_cgroup(f"berth-test-{uuid.uuid4().hex[:12]}")
    yield cg
    cg.destroy()
    assert not cg.exists()


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    return busybox_rootfs(tmp_path / "rootfs")


def _run(spec: dict, cgroup: Cgroup) -> tuple[int, str]:
    out_r, out_w = os.pipe()
    null = os.open("/dev/null", os.O_RDONLY)
    try:
        init = create(spec, [], Stdio(null, out_w, out_w), cgroup)
    finally:
        os.close(out_w)
        os.close(null)
    init.start()
    chunks = []
    while chunk := os.read(out_r, 65536):
        chunks.append(chunk)
    os.close(out_r)
    _, status = os.waitpid(init.pid, 0)
    return status, b"".join(chunks).decode()


def test_memory_limit_oom_kills_and_is_recorded(rootfs: Path, cgroup: Cgroup):
    cgroup.create(Resources(memory=16 << 20))
    assert not cgroup.oom_killed()
    # dd allocates and fills a 64 MiB buffer: far past the 16 MiB limit, and there is no swap
    spec = docker_like_spec(str(rootfs), ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"])
    status, out = _run(spec, cgroup)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, out
    assert cgroup.oom_killed()


def test_memory_under_the_limit_is_fine(rootfs: Path, cgroup: Cgroup):
    cgroup.create(Resources(memory=64 << 20))
    spec = docker_like_spec(str(rootfs), ["dd", "if=/dev/zero", "of=/dev/null", "bs=4M", "count=1"])
    status, out = _run(spec, cgroup)
    assert status == 0, out
    assert not cgroup.oom_killed()


def test_pids_limit_stops_a_fork_loop(rootfs: Path, cgroup: Cgroup):
    cgroup.create(Resources(pids_limit=8))
    # busybox sh gives up at the first failed fork (exit 2); the last number echoed is how
    # many sleeps it started: sh itself and seven sleeps fill the limit of eight
    script = "for i in $(seq 1 30); do sleep 5 & echo $i; done"
    status, out = _run(docker_like_spec(str(rootfs), ["sh", "-c", script]), cgroup)
    assert os.waitstatus_to_exitcode(status) == 2, out
    assert "can't fork" in out
    started = [int(line) for line in out.split() if line.isdigit()]
    assert started and max(started) == 7


def test_freeze_and_thaw(tmp_path: Path, rootfs: Path, cgroup: Cgroup):
    cgroup.create(Resources())
    shared = tmp_path / "shared"
    shared.mkdir()
    # written aside and renamed: a freeze between `>`'s truncation and its write left the file empty
    script = "i=0; while true; do i=$((i+1)); echo $i > /out/t; mv /out/t /out/n; usleep 10000; done"
    spec = docker_like_spec(str(rootfs), ["sh", "-c", script])
    spec["mounts"].append(
        {"destination": "/out", "type": "bind", "source": str(shared), "options": ["rbind"]}
    )
    null = os.open("/dev/null", os.O_RDWR)
    init = create(spec, [], Stdio(null, null, null), cgroup)
    os.close(null)
    counter = shared / "n"

    def value() -> int:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            text = counter.read_text().strip() if counter.exists() else ""
            if text:
                return int(text)
            time.sleep(0.01)
        raise AssertionError("the container never wrote its counter")

    try:
        init.start()
        assert init.pid in cgroup.pids()
        first = value()
        cgroup.freeze()
        assert cgroup.frozen()
        frozen_at = value()
        time.sleep(0.3)
        assert value() == frozen_at
        cgroup.thaw()
        assert not cgroup.frozen()
        deadline = time.monotonic() + 10
        while value() == frozen_at and time.monotonic() < deadline:
            time.sleep(0.01)
        assert value() > frozen_at >= first
    finally:
        if cgroup.frozen():
            cgroup.thaw()  # a frozen process cannot die, and waitpid below would hang
        os.kill(init.pid, signal.SIGKILL)
        os.waitpid(init.pid, 0)


def test_destroy_kills_what_is_left(rootfs: Path, cgroup: Cgroup):
    cgroup.create(Resources(pids_limit=100))
    null = os.open("/dev/null", os.O_RDWR)
    # busybox sh execs its last command: two processes, sh-turned-sleep (init) and a sleep
    spec = docker_like_spec(str(rootfs), ["sh", "-c", "sleep 60 & sleep 60"])
    init = create(spec, [], Stdio(null, null, null), cgroup)
    os.close(null)
    init.start()
    deadline = time.monotonic() + 5
    while len(cgroup.pids()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(cgroup.pids()) == 2
    cgroup.freeze()  # destroy must also cope with a frozen cgroup
    cgroup.destroy()
    assert not cgroup.exists()
    _, status = os.waitpid(init.pid, 0)
    assert os.WIFSIGNALED(status)


@pytest.mark.parametrize("cgroupns", [False, True])
def test_cgroup_mount_shows_the_containers_own_cgroup_read_only(rootfs: Path, cgroup: Cgroup, cgroupns: bool):
    cgroup.create(Resources(memory=48 << 20, pids_limit=33))
    script = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; " + (
        "mkdir /sys/fs/cgroup/memory/x 2>&1; touch /sys/fs/cgroup/y 2>&1; ls /sys/fs/cgroup"
    )
    spec = docker_like_spec(str(rootfs), ["sh", "-c", script])
    spec["mounts"].insert(
        4,
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["ro", "nosuid", "noexec", "nodev"],
        },
    )
    if cgroupns:
        spec["linux"]["namespaces"].append({"type": "cgroup"})
    status, out = _run(spec, cgroup)
    assert status == 0, out
    lines = out.split("\n")
    assert lines[0] == str(48 << 20)
    assert lines[1] == "33"
    assert "Read-only file system" in lines[2] and "Read-only file system" in lines[3]
    assert "unified" not in out  # hybrid's cgroup2 is left out, as runc does
    if cgroup.version == 1:
        assert {"memory", "pids", "freezer"} <= set(out.split())


UNIFIED = Path("/sys/fs/cgroup/unified")


@pytest.mark.skipif(
    not (UNIFIED / "cgroup.controllers").exists(), reason="no hybrid cgroup2 mount at /sys/fs/cgroup/unified"
)
def test_v2_code_path_on_the_hybrid_unified_hierarchy(rootfs: Path):
    """The v2 path against a real cgroup2 (freeze and membership are core v2 features, no controller needed)."""
    cg = open_cgroup(f"berth-test-{uuid.uuid4().hex[:12]}", root=UNIFIED)
    assert cg.version == 2
    cg.create(Resources())
    try:
        null = os.open("/dev/null", os.O_RDWR)
        init = create(docker_like_spec(str(rootfs), ["sleep", "30"]), [], Stdio(null, null, null), cg)
        os.close(null)
        init.start()
        assert cg.pids() == [init.pid]
        cg.freeze()
        assert cg.frozen() and "frozen 1" in (UNIFIED / cg.name / "cgroup.events").read_text()
        cg.thaw()
        assert not cg.frozen()
        cg.freeze()
        cg.destroy()  # kills the frozen sleep
        assert not cg.exists()
        _, status = os.waitpid(init.pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    finally:
        cg.destroy()


@pytest.mark.parametrize("hierarchy", ["default", "unified-v2"])
def test_device_rules_refuse_a_node_outside_dockers_list(rootfs: Path, hierarchy: str):
    """CAP_MKNOD lets a container make any node; the device cgroup (v1 files, v2 eBPF) must refuse
    opening one outside Docker's list -- here /dev/fuse (10:229), which needs no capability."""
    if hierarchy == "unified-v2" and not (UNIFIED / "cgroup.controllers").exists():
        pytest.skip("no hybrid cgroup2 mount at /sys/fs/cgroup/unified")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("the host has no /dev/fuse to compare with")
    root = UNIFIED if hierarchy == "unified-v2" else Path("/sys/fs/cgroup")
    script = (
        "mknod /dev/fusex c 10 229 && (: < /dev/fusex) 2>/dev/null && echo fuse-open; "
        "mknod /dev/null2 c 1 3 && echo x > /dev/null2 && echo null-ok"
    )
    spec = docker_like_spec(str(rootfs), ["sh", "-c", script])
    for allow_all in (False, True):
        cg = open_cgroup(f"berth-test-{uuid.uuid4().hex[:12]}", root=root)
        cg.create(Resources(device_rules=ALLOW_ALL_DEVICES) if allow_all else Resources())
        try:
            status, out = _run(spec, cg)
        finally:
            cg.destroy()
        assert status == 0, out
        assert "null-ok" in out  # an allowed device works (mknod is allowed for every node)
        # the control run (allow all) shows the node opens when nothing filters it
        assert ("fuse-open" in out) == allow_all, out


def test_exec_into_a_paused_container_is_refused_not_hung(rootfs: Path, cgroup: Cgroup):
    from berth.libcontainer import ContainerInitError, exec_process
    from berth.libcontainer.testing import child_subreaper

    cgroup.create(Resources())
    null = os.open("/dev/null", os.O_RDWR)
    spec = docker_like_spec(str(rootfs), ["sleep", "30"])
    init = create(spec, [], Stdio(null, null, null), cgroup)
    try:
        init.start()
        cgroup.freeze()
        with pytest.raises(ContainerInitError) as info:
            exec_process(init.pid, {"args": ["true"]}, Stdio(null, null, null), cgroup, spec)
        assert "paused" in info.value.message and info.value.exit_code == 126
        cgroup.thaw()
        with child_subreaper():
            pid = exec_process(init.pid, {"args": ["true"]}, Stdio(null, null, null), cgroup, spec)
            assert os.waitpid(pid, 0)[1] == 0
    finally:
        if cgroup.frozen():
            cgroup.thaw()
        os.kill(init.pid, signal.SIGKILL)
        os.waitpid(init.pid, 0)
        os.close(null)


def test_stats_of_a_running_container(rootfs: Path, cgroup: Cgroup):
    cgroup.create(Resources(memory=32 << 20, pids_limit=9))
    null = os.open("/dev/null", os.O_RDWR)
    init = create(docker_like_spec(str(rootfs), ["sleep", "30"]), [], Stdio(null, null, null), cgroup)
    os.close(null)
    try:
        init.start()
        st = cgroup.stats()
        assert st.pids_current == 1 and st.pids_limit == 9
        assert st.memory_limit == 32 << 20
        assert st.memory_usage is not None and 0 < st.memory_usage < 32 << 20
        assert st.cpu_usage_ns is not None and st.cpu_usage_ns > 0
        assert dict(st.memory_stat)
    finally:
        os.kill(init.pid, signal.SIGKILL)
        os.waitpid(init.pid, 0)


def test_pids_and_destroy_of_a_cgroup_removed_meanwhile(cgroup: Cgroup, monkeypatch: pytest.MonkeyPatch):
    """Another process (the container's monitor) removes the cgroup between our open and read
    of cgroup.procs: the kernel answers ENODEV, which means "gone", not an error."""
    from berth.libcontainer.cgroups import files

    cgroup.create(Resources())
    real_read = files.read

    def read_after_removal(path: Path) -> str:
        with open(path) as f:
            for p in cgroup.paths():
                if p.is_dir():
                    os.rmdir(p)  # the monitor's teardown, right between open and read
            return f.read()

    monkeypatch.setattr(files, "read", read_after_removal)
    assert cgroup.pids() == []
    monkeypatch.setattr(files, "read", real_read)
    cgroup.create(Resources())
    monkeypatch.setattr(files, "read", read_after_removal)
    cgroup.destroy()  # idempotent however the race falls
    assert not cgroup.exists()
