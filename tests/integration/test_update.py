"""`docker update` / `POST /containers/{id}/update`: limits into the running container's cgroup and
into the record (the next start uses them), and dockerd's errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import harness

pytestmark = pytest.mark.integration


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
    return r


def inspect(d: harness.Daemon, name: str) -> dict:  # type: ignore[type-arg]
    return json.loads(ok(d.docker("inspect", name)).stdout)[0]  # type: ignore[no-any-return]


def cgroup_file(pid: int, controller: str, name: str) -> str:
    """A cgroup file of process `pid`, from its own /proc/<pid>/cgroup (v1 or v2)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(","):
            return (Path(f"/sys/fs/cgroup/{controller}") / path.lstrip("/") / name).read_text().strip()
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        path = Path(f"/proc/{pid}/cgroup").read_text().splitlines()[0].split(":", 2)[2]
        return (Path("/sys/fs/cgroup") / path.lstrip("/") / name).read_text().strip()
    raise AssertionError(f"no {controller} cgroup for pid {pid}")


V2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()


def limits(pid: int) -> dict[str, str]:
    if V2:
        quota, period = cgroup_file(pid, "cpu", "cpu.max").split()
        return {"memory": cgroup_file(pid, "memory", "memory.max"), "quota": quota, "period": period,
                "pids": cgroup_file(pid, "pids", "pids.max")}
    return {
        "memory": cgroup_file(pid, "memory", "memory.limit_in_bytes"),
        "quota": cgroup_file(pid, "cpu", "cpu.cfs_quota_us"),
        "period": cgroup_file(pid, "cpu", "cpu.cfs_period_us"),
        "pids": cgroup_file(pid, "pids", "pids.max"),
    }


def test_update_a_running_container_through_the_cli(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("run", "-d", "--name", "upd", "--network", "none", "-m", "32m", busybox_image, "sleep", "1000"))
    c = inspect(berthd, "upd")
    assert c["HostConfig"]["MemorySwap"] == 64 << 20  # dockerd's default: twice the memory
    r = ok(berthd.docker("update", "--memory", "64m", "--cpus", "0.5", "--pids-limit", "50", "upd"))
    assert r.stdout == "upd\n"
    pid = c["State"]["Pid"]
    assert limits(pid) == {"memory": str(64 << 20), "quota": "50000", "period": "100000", "pids": "50"}
    host = inspect(berthd, "upd")["HostConfig"]
    assert (host["Memory"], host["MemorySwap"], host["NanoCpus"], host["PidsLimit"]) == (
        64 << 20, 64 << 20, 500_000_000, 50)

    # over the memory+swap limit already set, without a new one: dockerd's 409, nothing changes
    r = berthd.docker("update", "--memory", "200m", "upd")
    assert r.returncode == 1
    assert r.stderr.strip() == (
        f"Error response from daemon: Cannot update container {c['Id']}: Memory limit should be smaller "
        "than already set memoryswap limit, update the memoryswap at the same time")
    r = berthd.docker("update", "--cpu-quota", "20000", "upd")
    assert "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set" in r.stderr
    assert berthd.docker("update", "--memory", "1m", "upd").stderr.strip() == (
        "Error response from daemon: Minimum memory limit allowed is 6MB")

    ok(berthd.docker("update", "--memory", "100m", "--memory-swap", "-1", "--restart", "on-failure:3", "upd"))
    assert limits(pid)["memory"] == str(100 << 20)
    if not V2:
        assert cgroup_file(pid, "memory", "memory.memsw.limit_in_bytes") == str((1 << 63) - 4096)
    host = inspect(berthd, "upd")["HostConfig"]
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert host["MemorySwap"] == -1
    ok(berthd.docker("update", "--pids-limit", "-1", "upd"))
    assert limits(pid)["pids"] == "max" and inspect(berthd, "upd")["HostConfig"]["PidsLimit"] == 0

    ok(berthd.docker("rm", "-f", "upd"))
    r = berthd.docker("update", "--memory", "64m", "upd")
    assert r.returncode == 1 and r.stderr.strip() == "Error response from daemon: No such container: upd"


def test_memory_below_usage_is_refused_and_the_record_kept(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("run", "-d", "--name", "hog", "--network", "none", "-m", "64m", busybox_image,
                     "sh", "-c", "dd if=/dev/zero of=/dev/shm/fill bs=1M count=40 && touch /tmp/full && sleep 1000"))
    for _ in range(100):
        if berthd.docker("exec", "hog", "test", "-e", "/tmp/full").returncode == 0:
            break
    c = inspect(berthd, "hog")
    r = berthd.docker("update", "--memory", "10m", "--memory-swap", "10m", "hog")
    assert r.returncode == 1
    assert f"Error response from daemon: Cannot update container {c['Id']}: " in r.stderr
    if not V2:  # v2 reclaims (or OOM-kills) instead of refusing
        assert "unable to set memory limit to 10485760 (current usage: " in r.stderr
        host = inspect(berthd, "hog")["HostConfig"]
        assert (host["Memory"], host["MemorySwap"]) == (64 << 20, 128 << 20)
        assert limits(c["State"]["Pid"])["memory"] == str(64 << 20)


def test_update_of_a_stopped_container_applies_at_start(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("create", "--name", "later", "--network", "none", busybox_image, "sleep", "1000"))
    status, body = berthd.api("POST", "/v1.45/containers/later/update", {
        "Memory": 48 << 20, "MemorySwap": 96 << 20, "PidsLimit": 20, "CpuQuota": 30000, "CpuPeriod": 60000,
        "MemoryReservation": 16 << 20, "CpuShares": 512,
    })
    assert (status, body["Warnings"]) == (200, [])
    ok(berthd.docker("start", "later"))
    pid = inspect(berthd, "later")["State"]["Pid"]
    assert limits(pid) == {"memory": str(48 << 20), "quota": "30000", "period": "60000", "pids": "20"}
    if not V2:
        assert cgroup_file(pid, "memory", "memory.soft_limit_in_bytes") == str(16 << 20)
        assert cgroup_file(pid, "cpu", "cpu.shares") == "512"


UPDATE_CASES = [
    {"Memory": 1000},
    {"Memory": 8_000_000, "MemorySwap": 7_000_000},
    {"MemoryReservation": 5},
    {"Memory": 20_000_000, "MemoryReservation": 50_000_000},
    {"NanoCpus": 100_000_000_000},
    {"CpuPeriod": 100},
    {"CpuQuota": 999},
    {"NanoCpus": 500_000_000, "CpuQuota": 20000},
    {"CpusetCpus": "abc"},
    {"CpusetCpus": "0-64"},
    {"RestartPolicy": {"Name": "bogus"}},
    {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 3}},
    {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}},
    {"Memory": 200_000_000},
    {"CpuPeriod": 50000},
    {"RestartPolicy": {"Name": "unless-stopped"}},
    {"Memory": 100_000_000, "MemorySwap": 300_000_000, "PidsLimit": 30, "CpuShares": 300},
]


@pytest.mark.conformance
def test_update_answers_match_dockerd(berthd: harness.Berthd, dockerd: harness.Dockerd, busybox_tar: Path) -> None:
    got = []
    for d in (berthd, dockerd):
        d.import_image(busybox_tar)
        cid = ok(d.docker("run", "-d", "--network", "none", "-m", "32m", "--cpus", "0.5", "busybox",
                          "sleep", "1000")).stdout.strip()
        answers = []
        for body in UPDATE_CASES:
            status, reply = d.api("POST", f"/v1.41/containers/{cid}/update", body)
            message = reply.get("message", "").replace(cid, "<id>") if isinstance(reply, dict) else reply
            answers.append((body, status, message))
        host = inspect(d, cid)["HostConfig"]
        answers.append(({k: host[k] for k in ("Memory", "MemorySwap", "NanoCpus", "CpuPeriod", "CpuQuota",
                                               "CpuShares", "PidsLimit", "RestartPolicy")}, 0, ""))
        status, reply = d.api("POST", "/v1.41/containers/nosuch/update", {"Memory": 64 << 20})
        answers.append(({}, status, reply["message"]))
        got.append(answers)
    assert got[0] == got[1]
