"""docker events: Docker's types, actions and attributes (compared with dockerd), kept in SQLite
and queried back with --since/--until across a daemon restart, past and live without gaps or
duplicates."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import harness

pytestmark = pytest.mark.integration


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
    return r


def events(d: harness.Daemon, since: float, *filters: str) -> list[dict[str, Any]]:
    args = [a for f in filters for a in ("--filter", f)]
    r = ok(d.docker("events", "--since", f"{since:.9f}", "--until", f"{time.time():.9f}", *args,
                    "--format", "{{json .}}"))
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_events_survive_a_restart_and_are_queried_by_time(berthd: harness.Berthd, busybox_image: str) -> None:
    t0 = time.time()
    ok(berthd.docker("run", "--name", "before", "--network", "none", "-l", "tier=a", busybox_image, "true"))
    t1 = time.time()
    berthd.restart()
    ok(berthd.docker("run", "--name", "after", "--network", "none", busybox_image, "true"))
    seen = [(e["Actor"]["Attributes"].get("name"), e["Action"]) for e in events(berthd, t0, "type=container")]
    assert ("before", "create") in seen and ("before", "die") in seen and ("after", "start") in seen
    assert seen.index(("before", "die")) < seen.index(("after", "create"))
    # --until bounds the past, filters apply to it, and a window before the restart is kept
    r = ok(berthd.docker("events", "--since", f"{t0:.9f}", "--until", f"{t1:.9f}", "--filter", "label=tier=a",
                         "--format", "{{.Actor.Attributes.name}} {{.Action}}"))
    assert r.stdout.splitlines() == ["before create", "before attach", "before start", "before die"]
    # relative times as the CLI sends them (whole seconds: --until 0s ends at the last second)
    time.sleep(1.1)
    r = ok(berthd.docker("events", "--since", "5m", "--until", "0s", "--filter", "container=after",
                         "--format", "{{.Action}}"))
    assert "die" in r.stdout.split()
    db = berthd.data_root / "events.db"
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600


def test_events_since_after_until_is_400(berthd: harness.Berthd) -> None:
    status, body = berthd.api("GET", "/events?since=100&until=50")
    assert (status, body["message"]) == (400, "`since` time (100) cannot be after `until` time (50)")
    r = berthd.docker("events", "--since", "10s", "--until", "20s")
    assert r.returncode == 1 and "cannot be after `until` time" in r.stderr


def test_past_and_live_without_gaps_or_duplicates(berthd: harness.Berthd, busybox_image: str) -> None:
    """A stream that starts in the past while events keep coming sends each event once."""
    t0 = time.time()
    for i in range(5):
        ok(berthd.docker("create", "--name", f"old{i}", busybox_image, "true"))
    stream = subprocess.Popen(
        ["docker", "events", "--since", f"{t0:.9f}", "--until", f"{time.time() + 6:.9f}", "--filter",
         "event=create", "--format", "{{.Actor.Attributes.name}}"],
        env=berthd.env, stdout=subprocess.PIPE, text=True,
    )
    try:
        for i in range(5):
            ok(berthd.docker("create", "--name", f"new{i}", busybox_image, "true"))
        out, _ = stream.communicate(timeout=30)
    finally:
        if stream.poll() is None:
            stream.kill()
            stream.wait()
    assert out.split() == [f"old{i}" for i in range(5)] + [f"new{i}" for i in range(5)]


SCENARIO = [
    ("create", "--name", "ev1", "--network", "none", "-l", "lab=1", "-v", "evvol:/data", "busybox", "sleep", "300"),
    ("start", "ev1"),
    ("exec", "ev1", "true"),
    ("exec", "ev1", "sh", "-c", "exit 3"),
    ("pause", "ev1"),
    ("unpause", "ev1"),
    ("rename", "ev1", "ev2"),
    ("update", "--cpu-shares", "512", "ev2"),
    ("top", "ev2"),
    ("kill", "-s", "USR1", "ev2"),
    ("stop", "-t", "1", "ev2"),
    ("restart", "-t", "1", "ev2"),
    ("cp", "ev2:/etc/hostname", "-"),
    ("commit", "ev2", "evimg:1"),
    ("rm", "-f", "ev2"),
    ("volume", "create", "other"),
    ("volume", "rm", "other"),
    ("tag", "busybox", "evtag:1"),
    ("rmi", "evtag:1"),
    ("rmi", "evimg:1"),
    ("container", "prune", "-f"),
]


@pytest.mark.conformance
def test_event_types_actions_and_attributes_match_dockerd(
    berthd: harness.Berthd, dockerd: harness.Dockerd, busybox_tar: Path
) -> None:
    got: dict[str, Any] = {}
    for d in (berthd, dockerd):
        d.import_image(busybox_tar)
        t0 = time.time()
        for cmd in SCENARIO:
            d.docker(*cmd)
        time.sleep(0.5)
        seen = [e for e in events(d, t0) if e["Type"] != "network"]  # the network driver's own events
        shape = []
        for e in seen:
            legacy = sorted(k for k in ("status", "id", "from") if k in e)
            shape.append((e["Type"], e["Action"], sorted(e["Actor"]["Attributes"]), legacy, list(e)))
        got[d.__class__.__name__] = shape
    assert got["Berthd"] == got["Dockerd"]


def test_commit_event_and_the_committed_config(berthd: harness.Berthd, busybox_image: str) -> None:
    """`docker commit` (an empty body) keeps the container's config in the image, and its
    events carry dockerd's attributes: pause, image tag, commit (comment, imageID, imageRef), unpause."""
    ok(berthd.docker("run", "-d", "--name", "cm", "-l", "lab=1", "-e", "A=b", busybox_image, "sleep", "300"))
    t0 = time.time()
    image_id = ok(berthd.docker("commit", "-m", "note", "cm", "cmimg:1")).stdout.strip()
    config = json.loads(ok(berthd.docker("image", "inspect", "-f", "{{json .Config}}", "cmimg:1")).stdout)
    assert config["Labels"] == {"lab": "1"} and "A=b" in config["Env"] and config["Cmd"] == ["sleep", "300"]
    seen = events(berthd, t0)
    assert [e["Action"] for e in seen] == ["pause", "tag", "commit", "unpause"]
    commit = seen[2]["Actor"]["Attributes"]
    assert commit == {"comment": "note", "image": busybox_image, "imageID": image_id, "imageRef": "cmimg:1",
                      "lab": "1", "name": "cm"}
    assert seen[1]["Actor"] == {"ID": image_id, "Attributes": {"lab": "1", "name": "cmimg:1"}}
