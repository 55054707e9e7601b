"""Live restore holds for every exec driver: ``native`` and ``oci`` (runc).

berthd is stopped with SIGTERM or killed with SIGKILL while a container runs; the container goes
on (its monitor is not berthd's), and the restarted berthd finds it running with the same pid,
execs into it, stops and waits for it, and removes it leaving no mount, runtime state or cgroup.
A monitor SIGKILLed under an OCI runtime leaves the runtime's container behind: the daemon's
clean-up deletes it (``runc delete --force``) and unmounts its rootfs.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

import harness

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("runc") is None, reason="runc not installed (apt-get install runc)")]

TICKS = "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"


def ok(r):  # type: ignore[no-untyped-def]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
    return r


def _runtime_state(berthd: harness.Berthd, cid: str) -> list[str]:
    """What runc keeps of the container under the daemon's runtime state directory."""
    return [str(p) for p in berthd.exec_root.glob(f"runtime-*/{cid}")]


@pytest.mark.parametrize("runtime", ["native", "runc"])
@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_a_container_survives_the_daemon(berthd: harness.Berthd, busybox_image: str, runtime: str, how: str) -> None:
    cid = ok(berthd.docker("run", "-d", "--name", "keeper", "--runtime", runtime, busybox_image, "sh", "-c", TICKS)).stdout.strip()
    pid = int(ok(berthd.docker("inspect", "-f", "{{.State.Pid}}", "keeper")).stdout)
    if runtime == "runc":
        assert _runtime_state(berthd, cid), "the container is not runc's"
    if how == "sigterm":
        berthd.stop()
    else:
        berthd.kill9()
    time.sleep(1.0)  # the container goes on while no daemon runs
    assert Path(f"/proc/{pid}").exists(), "the container died with the daemon"
    berthd.start()
    state = ok(berthd.docker("inspect", "-f", "{{.State.Running}} {{.State.Pid}} {{.HostConfig.Runtime}}", "keeper")).stdout
    assert state.split() == ["true", str(pid), runtime]
    # exec, with and without a terminal, and its exit code
    r = berthd.docker("exec", "keeper", "sh", "-c", "echo in-exec; exit 3")
    assert (r.returncode, r.stdout) == (3, "in-exec\n"), r.stderr
    assert ok(berthd.docker("exec", "-t", "keeper", "tty")).stdout.startswith("/dev/pts/")
    ticks = [int(line.split()[1]) for line in ok(berthd.docker("logs", "keeper")).stdout.splitlines()]
    assert ticks == list(range(len(ticks))) and len(ticks) >= 10, "log lines were lost across the restart"
    # stop and wait after the restart
    waiter = subprocess.Popen(["docker", "wait", "keeper"], env=berthd.env, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)  # the wait is in place before the stop
        ok(berthd.docker("stop", "-t", "1", "keeper"))
        assert waiter.communicate(timeout=30)[0].strip() == "137"
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert ok(berthd.docker("wait", "keeper")).stdout.strip() == "137"
    assert ok(berthd.docker("inspect", "-f", "{{.State.Status}}", "keeper")).stdout.strip() == "exited"
    ok(berthd.docker("rm", "keeper"))
    harness.no_mounts_under(berthd.data_root)
    assert _runtime_state(berthd, cid) == []


def test_a_killed_monitor_leaves_no_runtime_container(berthd: harness.Berthd, busybox_image: str) -> None:
    berthd.stop()
    berthd.env_extra["BERTH_SHIM_CRASH_AT"] = "started"  # read by the fork server when it starts
    berthd.start()
    r = berthd.docker("run", "-d", "--name", "victim", "--runtime", "runc", busybox_image, "sleep", "100")
    assert r.returncode == 125, r.stdout + r.stderr
    cid = ok(berthd.docker("inspect", "-f", "{{.Id}}", "victim")).stdout.strip()
    # the monitor is gone: exit 255, and the clean-up deleted runc's container (killing its
    # process) and unmounted the rootfs
    harness.eventually(lambda: berthd.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "victim")
                       .stdout.split() == ["exited", "255"], 10)
    harness.eventually(lambda: harness.pids_in_cgroup(berthd.cgroup_parent) == [], 10)
    harness.eventually(lambda: _runtime_state(berthd, cid) == [], 10)
    harness.no_mounts_under(berthd.data_root)
    berthd.stop()
    del berthd.env_extra["BERTH_SHIM_CRASH_AT"]
    berthd.start()
    ok(berthd.docker("start", "victim"))
    assert ok(berthd.docker("inspect", "-f", "{{.State.Running}}", "victim")).stdout.strip() == "true"
    ok(berthd.docker("rm", "-f", "victim"))
    harness.no_mounts_under(berthd.data_root)


def test_a_stopped_daemon_leaves_no_cgroup_parent_runc_made(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("run", "--rm", "--runtime", "runc", busybox_image, "true"))
    made = [p for p in Path("/sys/fs/cgroup").glob(f"*/{berthd.cgroup_parent}") if p.is_dir()]
    assert any(p.parent.name == "unified" for p in made) or not Path("/sys/fs/cgroup/unified").is_dir()
    berthd.stop()
    assert [p for p in Path("/sys/fs/cgroup").glob(f"*/{berthd.cgroup_parent}") if p.is_dir()] == []
