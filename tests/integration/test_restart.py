"""Live restore: containers keep running while berthd restarts; a crash leaves nothing behind."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

import harness

pytestmark = pytest.mark.integration


def _mounts_under(root: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(root))]


def test_container_survives_daemon_restart(berthd: harness.Berthd, busybox_image: str) -> None:
    r = berthd.docker(
        "run",
        "-d",
        "--name",
        "keeper",
        busybox_image,
        "sh",
        "-c",
        "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done",
    )
    assert r.returncode == 0, r.stderr
    pid = int(berthd.docker("inspect", "-f", "{{.State.Pid}}", "keeper").stdout)
    berthd.stop()  # SIGTERM
    time.sleep(1.0)  # the container keeps writing while no daemon runs
    assert Path(f"/proc/{pid}").exists(), "the container died with the daemon"
    berthd.start()
    state = json.loads(berthd.docker("inspect", "keeper").stdout)[0]["State"]
    assert state["Running"] and state["Pid"] == pid

    def ticks() -> list[int]:
        return [int(line.split()[1]) for line in berthd.docker("logs", "keeper").stdout.splitlines()]

    harness.eventually(lambda: len(ticks()) >= 10, timeout=30)  # (a loaded machine ticks slower)
    got = ticks()
    assert got == list(range(len(got))), "log lines were lost across the restart"
    assert berthd.docker("stop", "-t", "1", "keeper").returncode == 0
    assert berthd.docker("inspect", "-f", "{{.State.Status}}", "keeper").stdout.strip() == "exited"


def test_exit_while_daemon_is_down_is_recorded(berthd: harness.Berthd, busybox_image: str) -> None:
    assert (
        berthd.docker("run", "-d", "--name", "short", busybox_image, "sh", "-c", "sleep 1; exit 9").returncode
        == 0
    )
    berthd.stop()
    time.sleep(1.5)
    berthd.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        st = berthd.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "short").stdout.split()
        if st[0] == "exited":
            break
        time.sleep(0.1)
    assert st == ["exited", "9"]


def test_sigkill_daemon_leaves_consistent_state(berthd: harness.Berthd, busybox_image: str) -> None:
    assert berthd.docker("create", "--name", "c0", busybox_image, "true").returncode == 0
    assert berthd.docker("run", "-d", "--name", "c1", busybox_image, "sleep", "100").returncode == 0
    berthd.kill9()
    berthd.start()
    assert _mounts_under(berthd.data_root) == []
    out = berthd.docker("ps", "-a", "--format", "{{.Names}} {{.State}}").stdout.split("\n")
    assert sorted(x for x in out if x) == ["c0 created", "c1 running"]
    assert berthd.docker("rm", "-f", "c1", "c0").returncode == 0


def _cgroups_named(fragment: str) -> list[str]:
    found = []
    for top in Path("/sys/fs/cgroup").iterdir():
        if top.is_dir():
            found += [str(p) for p in top.rglob(f"*{fragment}*") if p.is_dir()]
    return found


@pytest.mark.parametrize("point", ["create.after-rw", "start.after-create", "start.after-save"])
def test_sigkill_during_create_or_start(berthd: harness.Berthd, busybox_image: str, point: str) -> None:
    berthd.stop()
    berthd.env_extra["BERTH_CRASH_AT"] = point
    berthd.start()
    r = berthd.docker("run", "-d", "--name", "victim", busybox_image, "sleep", "100")
    assert r.returncode == 125, f"the daemon should have died at the crash point: {r.returncode} {r.stderr}"
    deadline = time.monotonic() + 10
    while berthd.proc is not None and berthd.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    del berthd.env_extra["BERTH_CRASH_AT"]
    berthd.start()
    # the restore settles monitors that saw the daemon go
    harness.eventually(lambda: _mounts_under(berthd.data_root) == [], timeout=10)
    out = berthd.docker("ps", "-a", "--format", "{{.Names}} {{.State}}").stdout.split()
    if point == "create.after-rw":
        assert out == [], "a create that never recorded its container must leave nothing"
        assert list((berthd.data_root / "containers").iterdir()) == []
    else:
        assert out in (["victim", "created"], ["victim", "exited"]), out
        cid = berthd.docker("inspect", "-f", "{{.Id}}", "victim").stdout.strip()
        assert berthd.docker("start", "victim").returncode == 0, "the container must be usable again"
        assert berthd.docker("rm", "-f", "victim").returncode == 0
        harness.eventually(lambda: _cgroups_named(cid) == [], timeout=10)


def test_attached_stdin_container_survives_restart(berthd: harness.Berthd, busybox_image: str) -> None:
    """Dropping an attached client at shutdown is not the client's EOF: `cat` must keep running."""
    client = subprocess.Popen(
        ["docker", "run", "-i", "--name", "catty", busybox_image, "cat"],
        env=berthd.env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while berthd.docker("inspect", "-f", "{{.State.Status}}", "catty").stdout.strip() != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        t0 = time.monotonic()
        berthd.stop()
        assert time.monotonic() - t0 < 5, "shutdown waited on the attached client"
        berthd.start()
        assert berthd.docker("inspect", "-f", "{{.State.Status}}", "catty").stdout.strip() == "running"
    finally:
        client.kill()
        client.wait()
        if client.stdin is not None:
            client.stdin.close()
    assert berthd.docker("rm", "-f", "catty").returncode == 0


def _names_and_states(d: harness.Berthd) -> list[str]:
    r = d.docker("ps", "-a", "--format", "{{.Names}} {{.State}}")
    assert r.returncode == 0, r.stderr
    return sorted(line for line in r.stdout.splitlines() if line)


def test_restart_after_sigkill_while_rm_containers_exit(berthd: harness.Berthd, busybox_image: str) -> None:
    """--rm containers that exit while a SIGKILLed daemon is down: the next start settles and
    removes them all (it used to die in its restore loop, one failed start per container)."""
    for i in range(3):
        r = berthd.docker("run", "-d", "--rm", "--name", f"brief{i}", busybox_image, "sleep", "3")
        assert r.returncode == 0, r.stderr
    berthd.docker("run", "-d", "--name", "kept", busybox_image, "sh", "-c", "sleep 3; exit 4")
    berthd.kill9()
    time.sleep(6)  # they all exit while no daemon runs
    berthd.start()  # DaemonError (with the log) if start-up fails
    assert _names_and_states(berthd) == ["kept exited"]
    assert berthd.docker("inspect", "-f", "{{.State.ExitCode}}", "kept").stdout.strip() == "4"
    left = [p.name for p in (berthd.data_root / "containers").iterdir()]
    assert len(left) == 1, f"the removed containers left their directories: {left}"
    assert sorted(p.name for p in berthd.exec_root.iterdir() if len(p.name) == 64) == [], \
        "exited containers left their monitor directories"


@pytest.mark.parametrize("point", ["start.after-create", "start.after-save", "exit.after-save"])
def test_rm_container_is_removed_after_a_crash(berthd: harness.Berthd, busybox_image: str, point: str) -> None:
    """A --rm container whose start (or whose removal after its exit) was lost with the daemon
    is removed at the next start, as dockerd removes every AutoRemove container that is not
    running: it must not stay Created (or Exited) forever."""
    berthd.stop()
    berthd.env_extra["BERTH_CRASH_AT"] = point
    berthd.start()
    cmd = "true" if point == "exit.after-save" else "sleep 100"
    berthd.docker("run", "-d", "--rm", "--name", "victim", busybox_image, *cmd.split())
    harness.eventually(lambda: berthd.proc is not None and berthd.proc.poll() is not None, 10)
    del berthd.env_extra["BERTH_CRASH_AT"]
    berthd.start()
    assert _names_and_states(berthd) == []
    assert list((berthd.data_root / "containers").iterdir()) == []
    assert _mounts_under(berthd.data_root) == []


def test_rm_containers_settle_after_sigkill_under_load(berthd: harness.Berthd, busybox_image: str) -> None:
    """SIGKILL while --rm containers are being created, started and are exiting: after the
    next start none of them is left (created, exited or running-then-exited)."""
    procs = [
        subprocess.Popen(
            ["docker", "run", "-d", "--rm", busybox_image, "sleep", "0.5"],
            env=berthd.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for _ in range(8)
    ]
    time.sleep(0.6)
    berthd.kill9()
    for p in procs:
        p.wait(timeout=30)
    time.sleep(1.5)
    berthd.start()
    # live ones (still in `sleep 0.5` when the daemon died) are watched again and removed at exit
    harness.eventually(lambda: _names_and_states(berthd) == [], 10)
    harness.eventually(lambda: list((berthd.data_root / "containers").iterdir()) == [], 5)
    assert _mounts_under(berthd.data_root) == []
