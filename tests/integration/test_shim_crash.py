"""A shim SIGKILLed at its own transitions (``BERTH_SHIM_CRASH_AT``, berth.shim.faults): the daemon
tells a consistent story, nothing is left running or mounted, and the container is usable again.

Like tests/integration/test_restart.py's daemon crash points, but the process that dies is the
container's shim: after ``created`` (the init at its barrier, start never comes), after
``started`` (the process runs; neither state.json nor the daemon knows), after ``exit-recorded``
(exit.json written; no exit event, the cgroup still there).
"""

from __future__ import annotations

from pathlib import Path

import harness


def _with_crash(berthd: harness.Berthd, point: str) -> None:
    berthd.stop()
    berthd.env_extra["BERTH_SHIM_CRASH_AT"] = point  # read by the fork server when it starts
    berthd.start()


def _without_crash(berthd: harness.Berthd) -> None:
    berthd.stop()
    del berthd.env_extra["BERTH_SHIM_CRASH_AT"]
    berthd.start()


def _state(berthd: harness.Berthd, name: str) -> list[str]:
    r = berthd.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.State.Running}}", name)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def _cgroups_named(fragment: str) -> list[str]:
    found = []
    for top in Path("/sys/fs/cgroup").iterdir():
        if top.is_dir():
            found += [str(p) for p in top.rglob(f"*{fragment}*") if p.is_dir()]
    return found


def _usable_again(berthd: harness.Berthd, name: str) -> None:
    cid = berthd.docker("inspect", "-f", "{{.Id}}", name).stdout.strip()
    r = berthd.docker("start", name)
    assert r.returncode == 0, r.stderr + berthd.log_tail()
    assert _state(berthd, name)[0] in ("running", "exited")
    assert berthd.docker("rm", "-f", name).returncode == 0
    harness.eventually(lambda: _cgroups_named(cid) == [], 10)
    harness.no_mounts_under(berthd.data_root)


def test_shim_killed_before_start_fails_the_start_and_leaves_nothing(berthd: harness.Berthd,
                                                                    busybox_image: str) -> None:
    _with_crash(berthd, "created")
    r = berthd.docker("run", "-d", "--name", "victim", busybox_image, "true")
    assert r.returncode == 125, r.stdout + r.stderr
    assert "is not running" in r.stderr
    harness.eventually(lambda: _state(berthd, "victim")[2] == "false", 10)
    assert _state(berthd, "victim")[0] in ("created", "exited")
    _without_crash(berthd)
    _usable_again(berthd, "victim")


def test_shim_killed_right_after_the_exec_settles_the_run_and_kills_the_orphan(berthd: harness.Berthd,
                                                                              busybox_image: str) -> None:
    _with_crash(berthd, "started")
    r = berthd.docker("run", "-d", "--name", "victim", busybox_image, "sleep", "100")
    assert r.returncode == 125, r.stdout + r.stderr
    # the shim is gone with the record of how the process ended: exit 255, as after a monitor
    # SIGKILLed at any other time, and the process left in the cgroup is killed on clean-up
    harness.eventually(lambda: _state(berthd, "victim")[:3] == ["exited", "255", "false"], 10)
    harness.eventually(lambda: harness.pids_in_cgroup(berthd.cgroup_parent) == [], 10)
    _without_crash(berthd)
    _usable_again(berthd, "victim")


def test_shim_killed_after_recording_the_exit_still_reports_it(berthd: harness.Berthd,
                                                               busybox_image: str) -> None:
    _with_crash(berthd, "exit-recorded")
    r = berthd.docker("run", "--name", "victim", busybox_image, "sh", "-c", "echo out; exit 3")
    assert (r.returncode, r.stdout) == (3, "out\n"), r.stderr
    assert _state(berthd, "victim")[:3] == ["exited", "3", "false"]
    r = berthd.docker("run", "--rm", busybox_image, "sh", "-c", "exit 4")
    assert r.returncode == 4, r.stderr
    harness.eventually(lambda: berthd.docker("ps", "-aq").stdout.split() == [
        berthd.docker("inspect", "-f", "{{.Id}}", "victim").stdout.strip()[:12]], 10)
    _without_crash(berthd)
    r = berthd.docker("start", "-a", "victim")
    assert (r.returncode, r.stdout) == (3, "out\n"), r.stderr
    _usable_again(berthd, "victim")
