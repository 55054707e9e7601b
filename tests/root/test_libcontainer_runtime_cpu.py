"""berth-runtime writes linux.resources.cpu as the spec gives it: quota and period unchanged
(v1 cfs_*_us, v2 cpu.max), cpus and mems into the cpuset; runc on the same bundle for comparison."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from berth.libcontainer.cgroups import Resources, open_cgroup

from .test_libcontainer_runtime import bundle, runtime, state, write_config  # noqa: F401 (fixture)

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

CG = Path("/sys/fs/cgroup")
V2 = (CG / "cgroup.controllers").exists()


def _last_cpu() -> str:
    """The highest CPU this machine's root cpuset allows ("0-1" -> "1")."""
    path = CG / "cpuset.cpus.effective" if V2 else CG / "cpuset" / "cpuset.cpus"
    return path.read_text().strip().split(",")[-1].split("-")[-1]


def _files(cgroup: str) -> dict[str, str]:
    """What the kernel holds for the container's cgroup, read from the host."""
    if V2:
        leaf = CG / cgroup
        names = ("cpu.max", "cpuset.cpus", "cpuset.mems")
        return {n: (leaf / n).read_text().strip() for n in names}
    return {
        "cpu.cfs_period_us": (CG / "cpu" / cgroup / "cpu.cfs_period_us").read_text().strip(),
        "cpu.cfs_quota_us": (CG / "cpu" / cgroup / "cpu.cfs_quota_us").read_text().strip(),
        "cpuset.cpus": (CG / "cpuset" / cgroup / "cpuset.cpus").read_text().strip(),
        "cpuset.mems": (CG / "cpuset" / cgroup / "cpuset.mems").read_text().strip(),
    }


def _with_cpu(b: Path, cpu: dict) -> str:
    cfg = json.loads((b / "config.json").read_text())
    cfg["linux"]["resources"] = {"cpu": cpu}
    (b / "config.json").write_text(json.dumps(cfg))
    return cfg["linux"]["cgroupsPath"]


def _wait_for(path: Path, text: str) -> str:
    deadline = time.monotonic() + 10
    while text not in path.read_text() and time.monotonic() < deadline:
        time.sleep(0.01)
    return path.read_text()


def test_quota_period_cpus_mems_are_written_as_given(tmp_path: Path, bundle: Path):  # noqa: F811
    cpu = _last_cpu()
    write_config(bundle, ["sh", "-c", "grep Cpus_allowed_list /proc/self/status; echo ok; exec sleep 60"])
    cgroup = _with_cpu(bundle, {"quota": 30000, "period": 50000, "cpus": cpu, "mems": "0"})
    root, cid = tmp_path / "state", "cpu-" + uuid.uuid4().hex[:8]
    out = tmp_path / "out"
    with open(out, "w") as f:
        res = runtime(root, "create", "--bundle", str(bundle), cid, stdout=f, stderr=f)
    assert res.returncode == 0, out.read_text()
    try:
        files = _files(cgroup)
        if V2:
            assert files["cpu.max"] == "30000 50000"  # not turned into a CPU count over 100000
        else:
            assert (files["cpu.cfs_period_us"], files["cpu.cfs_quota_us"]) == ("50000", "30000")
        assert (files["cpuset.cpus"], files["cpuset.mems"]) == (cpu, "0")
        assert runtime(root, "start", cid).returncode == 0
        # the kernel really confines the process to that CPU
        assert f"Cpus_allowed_list:\t{cpu}\n" in _wait_for(out, "ok\n")
        assert state(root, cid)["pid"] > 0
    finally:
        assert runtime(root, "delete", "--force", cid).returncode == 0
    assert not open_cgroup(cgroup).exists()


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc not installed (apt-get install runc)")
def test_same_cgroup_files_as_runc(tmp_path: Path, bundle: Path):  # noqa: F811
    """Unlimited quota with a period of its own, and a cpuset, on the same bundle."""
    write_config(bundle, ["sleep", "60"])
    got = {}
    for name, cmd in (("berth", None), ("runc", "runc")):
        cgroup = _with_cpu(bundle, {"quota": -1, "period": 250000, "cpus": _last_cpu(), "mems": "0"})
        cid = f"{name}-{uuid.uuid4().hex[:8]}"
        log = tmp_path / f"{name}.log"
        with open(log, "w") as f:  # init keeps create's stdio: a pipe would never see EOF
            if cmd is None:
                res = runtime(tmp_path / "state", "create", "--bundle", str(bundle), cid, stdout=f, stderr=f)
            else:
                res = subprocess.run(
                    ["runc", "--root", str(tmp_path / "runc"), "create", "--bundle", str(bundle), cid],
                    stdout=f,
                    stderr=f,
                    timeout=60,
                )
        assert res.returncode == 0, log.read_text()
        try:
            got[name] = _files(cgroup)
        finally:
            if cmd is None:
                runtime(tmp_path / "state", "delete", "--force", cid)
            else:
                subprocess.run(
                    ["runc", "--root", str(tmp_path / "runc"), "delete", "--force", cid], timeout=60
                )
                open_cgroup(cgroup).destroy()  # runc leaves nothing; idempotent either way
    assert got["berth"] == got["runc"]
    assert got["berth"]["cpu.max" if V2 else "cpu.cfs_period_us"] == ("max 250000" if V2 else "250000")


@pytest.mark.skipif(
    V2, reason="v1 cpu controller: this host is cgroup v2 (the v2 case is cpu.max, one write)"
)
def test_a_period_the_kernel_refuses_before_the_quota_is_written_after_it():
    """Under a parent limited to half a CPU, the child at 50000/100000 moving to 25000/50000:
    the new period first would mean 50000/50000 (a whole CPU) and EINVAL; the quota first works."""
    parent = f"berth-test-cfs-{uuid.uuid4().hex[:8]}"
    pcg, child = open_cgroup(parent), open_cgroup(f"{parent}/c")
    try:
        pcg.create(Resources(cpu_quota=50000, cpu_period=100000))
        child.create(Resources(cpu_quota=50000, cpu_period=100000))
        child.create(Resources(cpu_quota=25000, cpu_period=50000))
        leaf = CG / "cpu" / parent / "c"
        assert (leaf / "cpu.cfs_quota_us").read_text().strip() == "25000"
        assert (leaf / "cpu.cfs_period_us").read_text().strip() == "50000"
    finally:
        child.destroy()
        pcg.destroy()
