"""Races between a container's exit and the operations around it, each looped until it would show.

- `kill` (SIGKILL) returns once the container is dead, as dockerd's does.
- `restart` never loses the new run's files to the old run's cleanup.
- `commit` (with its pause) of a container that exits at once works.
- `rm -f` right after the start of a short-lived container answers 204 and leaves nothing.
- `run --rm` is answered before its record is deleted; its name is free at once all the same.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

import harness

pytestmark = pytest.mark.integration


def _running(d: harness.Berthd, cid: str) -> bool:
    status, body = d.api("GET", f"/containers/{cid}/json")
    assert status == 200, body
    return bool(body["State"]["Running"])


def test_kill_returns_once_the_container_is_dead(berthd: harness.Berthd, busybox_image: str) -> None:
    client = berthd.client()
    for i in range(10):
        cid = berthd.docker("run", "-d", busybox_image, "sleep", "100").stdout.strip()
        if i % 2:
            assert berthd.docker("kill", cid).returncode == 0
        else:
            client.containers.get(cid).kill()
        status, body = berthd.api("GET", f"/containers/{cid}/json")
        assert (body["State"]["Running"], body["State"]["Status"], body["State"]["ExitCode"]) == (
            False, "exited", 137,
        ), f"round {i}: kill returned before the container was dead"
    # a signal other than SIGKILL does not wait (the process may handle it)
    cid = berthd.docker("run", "-d", busybox_image, "sh", "-c", "trap '' USR1; sleep 100").stdout.strip()
    assert berthd.docker("kill", "-s", "USR1", cid).returncode == 0
    assert _running(berthd, cid)


def test_restart_loop_keeps_its_files(berthd: harness.Berthd, busybox_image: str) -> None:
    cid = berthd.docker("run", "-d", busybox_image, "sleep", "100").stdout.strip()
    for i in range(100):
        status, body = berthd.api("POST", f"/containers/{cid}/restart?t=0")
        assert status == 204, f"restart {i}: {status} {body}\n{berthd.log_tail(20)}"
        assert _running(berthd, cid), f"restart {i}: not running afterwards"
    assert berthd.docker("exec", cid, "true").returncode == 0  # the run's files (seccomp.json) are there


def test_commit_right_after_start(berthd: harness.Berthd, busybox_image: str) -> None:
    """The container exits while commit pauses it: the commit goes on without the pause."""
    client = berthd.client()
    for i in range(30):
        ctr = client.containers.run(busybox_image, ["sh", "-c", "echo x > /f"], detach=True)
        image = ctr.commit(repository="snap", tag=str(i))  # pause=True, docker-py's default
        assert image.id.startswith("sha256:")
        ctr.remove(force=True)
    # a running one is still paused for the snapshot and thawed after it
    ctr = client.containers.run(busybox_image, ["sleep", "100"], detach=True)
    ctr.commit(repository="snap", tag="live")
    ctr.reload()
    assert ctr.status == "running"


def _container_cgroups(d: harness.Berthd) -> list[str]:
    """The containers' cgroups under the daemon's own parent, in every hierarchy (not the fork
    server's standby placeholders: berth.libcontainer.cgroups.placeholder)."""
    found = []
    for top in Path("/sys/fs/cgroup").iterdir():
        parent = top / d.cgroup_parent
        if parent.is_dir():
            found += [str(p) for p in parent.iterdir() if p.is_dir() and not p.name.startswith("berth-standby-")]
    return found


def test_force_remove_right_after_start(berthd: harness.Berthd, busybox_image: str) -> None:
    """DELETE ?force=1 while the short-lived container's monitor tears its run down: 204 every
    time, and no directory, layer, monitor directory or cgroup left behind."""
    warm = berthd.docker("create", busybox_image, "true").stdout.strip()  # the image's shared init layer
    assert berthd.docker("rm", warm).returncode == 0
    layers_before = set((berthd.data_root / "overlay2").iterdir())
    for i in range(60):
        status, created = berthd.api("POST", "/containers/create", {"Image": busybox_image, "Cmd": ["true"]})
        assert status == 201, created
        cid = created["Id"]
        assert berthd.api("POST", f"/containers/{cid}/start")[0] == 204
        status, body = berthd.api("DELETE", f"/containers/{cid}?force=1")
        assert status == 204, f"round {i}: {status} {body}\n{berthd.log_tail(30)}"
    status, listing = berthd.api("GET", "/containers/json?all=1")
    assert listing == []
    assert list((berthd.data_root / "containers").iterdir()) == []
    assert set((berthd.data_root / "overlay2").iterdir()) == layers_before, "container layers were left"
    assert [p.name for p in berthd.exec_root.iterdir() if len(p.name) == 64] == []
    assert _container_cgroups(berthd) == []
    # the daemon's view after a restart agrees: nothing comes back
    berthd.restart()
    assert json.loads(berthd.docker("ps", "-a", "--format", "{{json .}}").stdout or "null") is None


def _stored(d: harness.Berthd) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(f"file:{d.data_root / 'berth.db'}?mode=ro", uri=True)) as db:
        return sorted(db.execute("SELECT id, name FROM containers").fetchall())


def test_run_rm_answers_before_its_record_goes_and_frees_the_name_at_once(  # type: ignore[no-untyped-def]
    berthd_factory, busybox_tar: Path
) -> None:
    """The wait of `docker run --rm` is answered once the container left the API; its record is
    deleted after (here 3 s after: BERTH_TEST_RECORD_DELETE_PAUSE). Meanwhile nothing shows it
    and its name is free: a create or a rename that takes it waits for the record's deletion
    (the store's names are unique)."""
    d = berthd_factory(env_extra={"BERTH_TEST_RECORD_DELETE_PAUSE": "3"})
    d.import_image(busybox_tar, "busybox:latest", cmd=("sh",))
    r = d.docker("run", "--rm", "--name", "brief", "busybox:latest", "true")
    assert r.returncode == 0, r.stderr
    assert [name for _cid, name in _stored(d)] == ["brief"], "the run must be answered before its record goes"
    assert d.docker("ps", "-a", "-q").stdout == ""
    assert d.api("GET", "/containers/brief/json")[0] == 404
    r = d.docker("create", "--name", "brief", "busybox:latest", "true")
    assert r.returncode == 0, r.stderr
    assert _stored(d) == [(r.stdout.strip(), "brief")]
    # a rename to such a name
    r = d.docker("run", "--rm", "--name", "brief2", "busybox:latest", "true")
    assert r.returncode == 0, r.stderr
    assert d.docker("rename", "brief", "brief2").returncode == 0
    assert [name for _cid, name in _stored(d)] == ["brief2"]
    assert d.docker("rm", "brief2").returncode == 0
