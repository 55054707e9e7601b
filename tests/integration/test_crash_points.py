"""SIGKILL at the worst moments of removal, exit settlement, a volume's copy-up and commit: the
restarted daemon is consistent (``BERTH_CRASH_AT``, :mod:`berth.daemon.faults`).

Each test arms one crash point, does the operation that reaches it, waits for the daemon to die
there, starts it again without the point, and checks what a user sees and what is on disk.
(Create and start: ``test_restart.py``.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import harness


def _mounts_under(root: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(root))]


def _arm(d: harness.Berthd, point: str) -> None:
    d.stop()
    d.env_extra["BERTH_CRASH_AT"] = point
    d.start()


def _died_and_restarted(d: harness.Berthd) -> None:
    harness.eventually(lambda: d.proc is not None and d.proc.poll() is not None, 20)
    assert d.proc is not None and d.proc.returncode == -9, "the daemon must have killed itself at the point"
    del d.env_extra["BERTH_CRASH_AT"]
    d.start()


def _layer_dirs(d: harness.Berthd) -> set[str]:
    return {p.name for p in (d.data_root / "overlay2").iterdir() if p.name != "l"}


def _names(d: harness.Berthd) -> list[str]:
    r = d.docker("ps", "-a", "--format", "{{.Names}} {{.State}}")
    assert r.returncode == 0, r.stderr
    return sorted(r.stdout.splitlines())


@pytest.mark.parametrize("point", ["remove.after-layer", "remove.after-files"])
def test_sigkill_during_remove_finishes_it_at_start_up(berthd: harness.Berthd, busybox_image: str, point: str) -> None:
    # a first container makes the image's shared init layer, which stays with the image
    assert berthd.docker("create", "--name", "warm", busybox_image, "true").returncode == 0
    assert berthd.docker("rm", "warm").returncode == 0
    layers_before = _layer_dirs(berthd)
    _arm(berthd, point)
    assert berthd.docker("create", "--name", "victim", "-v", "/scratch", busybox_image, "true").returncode == 0
    cid = berthd.docker("inspect", "-f", "{{.Id}}", "victim").stdout.strip()
    volume = berthd.docker("inspect", "-f", "{{(index .Mounts 0).Name}}", "victim").stdout.strip()
    berthd.docker("rm", "-v", "victim")
    _died_and_restarted(berthd)
    # the layer or the files were gone: the start-up finishes the removal (the record goes)
    assert _names(berthd) == []
    assert not (berthd.data_root / "containers" / cid).exists()
    assert _layer_dirs(berthd) == layers_before, "the container's layers must be gone"
    assert _mounts_under(berthd.data_root) == []
    # its anonymous volume is not in use any more: a prune takes it, a new container reuses the name
    assert berthd.docker("volume", "prune", "-f").returncode == 0
    assert volume not in berthd.docker("volume", "ls", "-q").stdout.split()
    r = berthd.docker("run", "--rm", "--name", "victim", busybox_image, "echo", "again")
    assert (r.returncode, r.stdout) == (0, "again\n"), r.stderr


def test_sigkill_between_recording_an_exit_and_the_teardown_keeps_the_exit_code(
    berthd: harness.Berthd, busybox_image: str
) -> None:
    _arm(berthd, "exit.after-record")
    r = berthd.docker("run", "-d", "--name", "three", busybox_image, "sh", "-c", "sleep 0.5; exit 3")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    _died_and_restarted(berthd)
    state = json.loads(berthd.docker("inspect", "-f", "{{json .State}}", "three").stdout)
    assert (state["Status"], state["ExitCode"], state["Running"]) == ("exited", 3, False), state
    assert not (berthd.exec_root / cid).exists(), "the monitor's directory is cleaned at start-up"
    harness.eventually(lambda: not any(cid in str(p) for p in Path("/sys/fs/cgroup").rglob(f"*{cid}*")), 10)
    wait = berthd.docker("wait", "three")
    assert (wait.returncode, wait.stdout) == (0, "3\n")
    r = berthd.docker("start", "-a", "three")
    assert r.returncode == 3, r.stderr


def test_sigkill_after_the_exit_is_stored(berthd: harness.Berthd, busybox_image: str) -> None:
    _arm(berthd, "exit.after-save")
    r = berthd.docker("run", "-d", "--name", "four", busybox_image, "sh", "-c", "sleep 0.5; exit 4")
    assert r.returncode == 0, r.stderr
    _died_and_restarted(berthd)
    assert berthd.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "four").stdout == "exited 4\n"
    assert berthd.docker("rm", "four").returncode == 0


@pytest.mark.parametrize("point", ["exit.after-record", "exit.after-save"])
def test_sigkill_while_an_auto_removed_container_exits_removes_it_at_start_up(
    berthd: harness.Berthd, busybox_image: str, point: str
) -> None:
    """A --rm container's exit is not written (its record goes next): a daemon killed in between
    finds it "running" without a monitor and removes it."""
    _arm(berthd, point)
    r = berthd.docker("run", "-d", "--rm", "--name", "gone", busybox_image, "sh", "-c", "sleep 0.5; exit 5")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    _died_and_restarted(berthd)
    assert _names(berthd) == []
    assert not (berthd.data_root / "containers" / cid).exists() and not (berthd.exec_root / cid).exists()
    assert _mounts_under(berthd.data_root) == []


@pytest.mark.parametrize("point", ["remove.after-record", "remove.after-layer", "remove.after-files"])
def test_sigkill_while_an_auto_removed_containers_files_go_leaves_nothing_after_start_up(
    berthd: harness.Berthd, busybox_image: str, point: str
) -> None:
    """A --rm container's record goes first (`run --rm` is answered then); its monitor's
    leftovers, layer and files are deleted after, in the background. Killed there, the daemon
    shows nothing of it, and its start-up deletes what is left: the directory goes last."""
    assert berthd.docker("create", "--name", "warm", busybox_image, "true").returncode == 0
    assert berthd.docker("rm", "warm").returncode == 0
    layers_before = _layer_dirs(berthd)
    _arm(berthd, point)
    r = berthd.docker("run", "-d", "--rm", "--name", "brief", "-v", "/scratch", busybox_image, "true")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    _died_and_restarted(berthd)
    assert _names(berthd) == []
    assert not (berthd.data_root / "containers" / cid).exists() and not (berthd.exec_root / cid).exists()
    assert _layer_dirs(berthd) == layers_before, "the container's layers must be gone"
    assert _mounts_under(berthd.data_root) == []
    assert not [p for p in Path("/sys/fs/cgroup").rglob(f"*{cid}*")], "its cgroups must be gone"
    # its anonymous volume (removed after the record; a kill before that leaves it) is in no
    # one's use: a prune takes it, as after the interrupted `rm -v` above
    assert berthd.docker("volume", "prune", "-f").returncode == 0
    assert berthd.docker("volume", "ls", "-q").stdout.split() == []
    r = berthd.docker("run", "--rm", "--name", "brief", busybox_image, "echo", "again")
    assert (r.returncode, r.stdout) == (0, "again\n"), r.stderr


def test_an_image_removed_right_after_run_rm_goes_with_its_layers(berthd: harness.Berthd, busybox_image: str) -> None:
    """`run --rm` is answered before the container's layer is deleted (in the background); an
    image removal waits for such deletions, so the image's own layers go with it."""
    assert berthd.docker("create", "--name", "warm", busybox_image, "true").returncode == 0
    assert berthd.docker("rm", "warm").returncode == 0
    layers_before = _layer_dirs(berthd)
    r = berthd.docker("run", "--name", "base", busybox_image, "sh", "-c", "echo x > /f")
    assert r.returncode == 0, r.stderr
    assert berthd.docker("commit", "base", "rmi-after-rm:1").returncode == 0
    assert berthd.docker("rm", "base").returncode == 0
    r = berthd.docker("run", "--rm", "rmi-after-rm:1", "cat", "/f")
    assert (r.returncode, r.stdout) == (0, "x\n"), r.stderr
    r = berthd.docker("rmi", "rmi-after-rm:1")
    assert r.returncode == 0, r.stderr
    assert _layer_dirs(berthd) == layers_before, "the committed image's layers and the containers' must be gone"
    assert not any((berthd.data_root / "containers").iterdir())


def test_sigkill_during_a_volume_copy_up_leaves_the_volume_empty_and_copies_again(
    berthd: harness.Berthd, busybox_image: str
) -> None:
    """The copy of the image's /etc into a new named volume is all or nothing."""
    _arm(berthd, "volume.after-copy-up")
    berthd.docker("run", "-d", "--name", "copier", "-v", "etcdata:/etc", busybox_image, "true")
    _died_and_restarted(berthd)
    assert _names(berthd) == [], "the interrupted create left no container"
    assert list((berthd.data_root / "containers").iterdir()) == []
    data = berthd.data_root / "volumes" / "etcdata" / "_data"
    assert data.is_dir() and list(data.iterdir()) == [], "the half-made copy must not be visible"
    r = berthd.docker("run", "--rm", "-v", "etcdata:/etc", busybox_image, "cat", "/etc/passwd")
    assert r.returncode == 0 and r.stdout.startswith("root:x:0:0:"), r.stdout + r.stderr
    assert sorted(p.name for p in data.parent.iterdir()) == ["_data"], "the partial copy is gone"


def test_sigkill_during_commit_leaves_no_image_and_no_layer(berthd: harness.Berthd, busybox_image: str) -> None:
    r = berthd.docker("run", "--name", "work", busybox_image, "sh", "-c", "echo made > /made")
    assert r.returncode == 0, r.stderr
    layers_before = _layer_dirs(berthd)
    _arm(berthd, "commit.after-layer")
    berthd.docker("commit", "work", "snap:1")
    _died_and_restarted(berthd)
    assert berthd.docker("images", "-q", "snap").stdout == "", "the commit never registered its image"
    assert _layer_dirs(berthd) == layers_before, "the layer the commit wrote is garbage at start-up"
    assert berthd.docker("commit", "work", "snap:1").returncode == 0
    r = berthd.docker("run", "--rm", "snap:1", "cat", "/made")
    assert (r.returncode, r.stdout) == (0, "made\n"), r.stderr
