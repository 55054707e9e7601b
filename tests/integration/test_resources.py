"""Resource limits as the container's cgroup holds them, read from inside containers of berthd and
dockerd 20.10 under the same flags; OOM kills as inspect and events report them; bad limits.

This machine is a cgroup v1 (hybrid) host: inside a container /sys/fs/cgroup/<controller> is the
container's own cgroup (read-only), so the probe reads the very files the kernel enforces. The v2
files (``memory.max``, ``cpu.max``, ``io.max`` ...) are unit-tested on a fake tree
(tests/unit/test_cgroup_managers.py, test_cgroup_extralimits.py) and on a private cgroup2 mount
(tests/root/test_cgroup_managers.py).
"""

from __future__ import annotations

import json
import os
import resource
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import harness

FILES = (
    "memory/memory.limit_in_bytes", "memory/memory.soft_limit_in_bytes", "memory/memory.memsw.limit_in_bytes",
    "memory/memory.oom_control", "memory/memory.swappiness", "cpu/cpu.shares", "cpu/cpu.cfs_period_us",
    "cpu/cpu.cfs_quota_us", "cpuset/cpuset.cpus", "cpuset/cpuset.mems", "blkio/blkio.throttle.read_bps_device",
    "blkio/blkio.throttle.write_bps_device", "blkio/blkio.throttle.read_iops_device",
    "blkio/blkio.throttle.write_iops_device", "pids/pids.max",
)  # fmt: skip
PROBE = (
    "cd /sys/fs/cgroup; for f in " + " ".join(FILES) + "; do echo \"$f: $(cat $f 2>&1 | tr '\\n' ' ')\"; done;"
    " echo oom_score_adj: $(cat /proc/self/oom_score_adj); echo nofile: $(ulimit -n) $(ulimit -Hn);"
    " echo nproc: $(ulimit -u) $(ulimit -Hu); echo shm: $(df -k /dev/shm | tail -1 | awk '{print $2}')"
)


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r


def block_device() -> str | None:
    """A block device of this host the blkio controller takes throttles for (the root disk)."""
    dev = os.stat("/").st_dev
    for name in sorted(os.listdir("/dev")):
        path = f"/dev/{name}"
        try:
            st = os.stat(path)
        except OSError:
            continue
        if stat.S_ISBLK(st.st_mode) and os.major(st.st_rdev) == os.major(dev) and os.minor(st.st_rdev) == 0:
            return path
    return None


@pytest.fixture
def pair(
    berthd: harness.Berthd, dockerd_factory: Callable[..., harness.Dockerd], busybox_tar: Path
) -> tuple[harness.Berthd, harness.Dockerd]:
    dockerd = dockerd_factory()
    for d in (berthd, dockerd):
        d.import_image(busybox_tar)
    return berthd, dockerd


def probe(d: harness.Daemon, flags: tuple[str, ...]) -> dict[str, str]:
    r = ok(d.docker("run", "--rm", "--network", "none", *flags, "busybox", "sh", "-c", PROBE))
    return dict(line.split(": ", 1) if ": " in line else (line.rstrip(":"), "") for line in r.stdout.splitlines())


@pytest.mark.conformance
def test_limits_land_in_the_cgroup_as_with_dockerd(pair: tuple[harness.Berthd, harness.Dockerd]) -> None:
    if not Path("/sys/fs/cgroup/memory/cgroup.procs").exists():
        pytest.skip("not a cgroup v1 host: the probe reads v1 files (v2 is unit-tested on a fake tree)")
    cpus = os.sched_getaffinity(0)
    last_cpu = str(max(cpus))
    disk = block_device()
    cases = [
        (),
        ("-m", "64m", "--memory-reservation", "32m", "--memory-swappiness", "10", "--oom-kill-disable"),
        ("-m", "64m", "--memory-swap", "-1"),
        ("-m", "64m", "--memory-swap", "96m", "--oom-score-adj", "500"),
        ("--cpu-shares", "512", "--cpu-period", "50000", "--cpu-quota", "25000"),
        ("--cpus", "0.5", "--cpuset-cpus", last_cpu, "--cpuset-mems", "0", "--pids-limit", "50"),
        ("--ulimit", "nofile=1024:2048", "--ulimit", "nproc=100:200", "--shm-size", "16m"),
        ("--oom-score-adj", "1000", "--shm-size", "1g"),
    ]
    if disk is not None and Path("/sys/fs/cgroup/blkio/blkio.throttle.read_bps_device").exists():
        cases.append(("--device-read-bps", f"{disk}:1mb", "--device-write-bps", f"{disk}:2mb",
                      "--device-read-iops", f"{disk}:100", "--device-write-iops", f"{disk}:200"))
    wrong = []
    for flags in cases:
        got, want = (probe(d, flags) for d in pair)
        if got != want:
            wrong.append(f"{flags}: " + str({k: (got.get(k), want.get(k)) for k in set(got) | set(want) if got.get(k) != want.get(k)}))
    assert not wrong, "\n".join(wrong)
    # and the values are the asked-for ones, not both daemons' same mistake
    got = probe(pair[0], cases[1])
    assert got["memory/memory.limit_in_bytes"].split() == ["67108864"]
    assert got["memory/memory.soft_limit_in_bytes"].split() == ["33554432"]
    assert got["memory/memory.swappiness"].split() == ["10"]
    assert "oom_kill_disable 1" in got["memory/memory.oom_control"]


@pytest.mark.conformance
def test_oom_kill_is_reported_as_dockerd_does(pair: tuple[harness.Berthd, harness.Dockerd]) -> None:
    hog = "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived ${#x}"
    seen = {}
    for d in pair:
        since = str(int(time.time()) - 1)
        r = d.docker("run", "--name", "hog", "--network", "none", "-m", "16m", "--memory-swap", "16m", "busybox", "sh", "-c", hog)
        state = json.loads(ok(d.docker("inspect", "-f", "{{json .State}}", "hog")).stdout)
        events = ok(d.docker("events", "--since", since, "--until", str(int(time.time()) + 1), "--filter", "container=hog",
                             "--format", "{{.Action}} {{index .Actor.Attributes \"exitCode\"}}")).stdout.split("\n")
        seen[d.name] = (r.returncode, state["OOMKilled"], state["ExitCode"], [e.strip() for e in events if e.split(" ")[0] in ("oom", "die")])
    # dockerd sends one `oom` per notification of the kernel's (1 to 9 seen for this one kill),
    # berth one per container exit with an OOM kill: the same events once repeats are folded
    for name, (code, killed, exit_code, events) in seen.items():
        folded = [e for i, e in enumerate(events) if i == 0 or e != events[i - 1]]
        assert (code, killed, exit_code, folded) == (137, True, 137, ["oom", "die 137"]), (name, seen)
    assert seen["berth"][3] == ["oom", "die 137"], seen


def test_an_oom_killed_container_under_oom_kill_disable_waits(berthd: harness.Berthd, busybox_image: str) -> None:
    """--oom-kill-disable: the kernel does not kill at the limit, the process waits (under_oom)."""
    if not Path("/sys/fs/cgroup/memory/cgroup.procs").exists():
        pytest.skip("not a cgroup v1 host: cgroup v2 has no OOM-kill switch (dockerd discards it there)")
    hog = "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived ${#x}"
    ok(berthd.docker("run", "-d", "--name", "held", "-m", "16m", "--memory-swap", "16m", "--oom-kill-disable",
                     "busybox", "sh", "-c", hog))
    pid = int(ok(berthd.docker("inspect", "-f", "{{.State.Pid}}", "held")).stdout)
    with open(f"/proc/{pid}/cgroup") as f:
        cgroup = next(line.split(":")[2].strip() for line in f if ":memory:" in line)
    control = Path("/sys/fs/cgroup/memory") / cgroup.lstrip("/") / "memory.oom_control"
    deadline = time.monotonic() + 20
    while "under_oom 1" not in control.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "oom_kill_disable 1" in control.read_text() and "under_oom 1" in control.read_text()
    assert json.loads(ok(berthd.docker("inspect", "held")).stdout)[0]["State"]["Running"] is True
    done = threading.Event()
    threading.Thread(target=lambda: (berthd.docker("kill", "held"), done.set()), daemon=True).start()
    assert done.wait(30)
    assert ok(berthd.docker("inspect", "-f", "{{.State.OOMKilled}}", "held")).stdout.strip() == "false"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--cpuset-cpus", "64"), "Requested CPUs are not available - requested 64, available: "),
        (("--cpuset-mems", "7"), "Requested memory nodes are not available - requested 7, available: "),
        (("--cpuset-cpus", "0-x"), "Invalid value 0-x for cpuset cpus"),
        (("-m", "1m"), "Minimum memory limit allowed is 6MB"),
        (("--memory-reservation", "1k"), "Minimum memory reservation allowed is 6MB"),
        (("--cpu-period", "500"), "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"),
        (("--cpu-quota", "500"), "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
        (("--oom-score-adj", "1001"), "Invalid value 1001, range for oom score adj is [-1000, 1000]"),
        (("--oom-score-adj", "-500"), "lowering the OOM score below the daemon's own"),
        (("--blkio-weight", "5"), None),  # dropped with a warning where the host has no weights, else a 400
    ],
)
def test_bad_limits_are_refused_at_create(
    berthd: harness.Berthd, busybox_image: str, flags: tuple[str, ...], message: str | None
) -> None:
    r = berthd.docker("create", *flags, "busybox", "true")
    if "OOM score" in (message or "") and _can_raise():
        pytest.skip("this host's root may lower OOM scores (CAP_SYS_RESOURCE)")
    if message is None:
        weights = Path("/sys/fs/cgroup/blkio/blkio.weight").exists() or Path("/sys/fs/cgroup/blkio/blkio.bfq.weight").exists()
        if weights:
            assert r.returncode != 0 and "Range of blkio weight is from 10 to 1000" in r.stderr, r.stderr
        else:
            assert r.returncode == 0 and "Your kernel does not support Block I/O weight" in r.stderr, r.stderr
        return
    assert r.returncode != 0 and message in r.stderr, r.stderr
    assert ok(berthd.docker("ps", "-aq")).stdout == ""


def _can_raise() -> bool:
    with open("/proc/self/status") as f:
        return bool(int(next(line.split()[1] for line in f if line.startswith("CapEff:")), 16) >> 24 & 1)


def test_a_ulimit_above_the_hosts_hard_limit_is_a_400(berthd: harness.Berthd, busybox_image: str) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if _can_raise() or hard == resource.RLIM_INFINITY:
        pytest.skip("this host's root may raise its hard limits (CAP_SYS_RESOURCE): no ulimit is out of reach")
    status, body = berthd.api("POST", "/containers/create", {
        "Image": busybox_image, "HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": hard + 1, "Hard": hard + 1}]}})
    assert status == 400 and f"invalid ulimit nofile={hard + 1}:{hard + 1}: the hard limit is above this host's ({hard})" in body["message"]
    for bad, text in (({"Name": "nofile", "Soft": 10, "Hard": 5}, "soft limit 10 is above the hard limit 5"),
                      ({"Name": "bogus", "Soft": 1, "Hard": 1}, "invalid ulimit type: bogus")):
        status, body = berthd.api("POST", "/containers/create", {"Image": busybox_image, "HostConfig": {"Ulimits": [bad]}})
        assert status == 400 and text in body["message"], body
    assert ok(berthd.docker("ps", "-aq")).stdout == ""
    # within the host's limit it is what the container gets
    out = ok(berthd.docker("run", "--rm", "--ulimit", f"nofile={hard // 2}:{hard}", "busybox", "sh", "-c", "ulimit -n; ulimit -Hn")).stdout
    assert out.split() == [str(hard // 2), str(hard)]
