"""docker system df (-v), system prune (-a, --volumes, filters) and top with ps options, side by
side with dockerd where the answers do not depend on the API version."""

from __future__ import annotations

import json
import re
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


def setup(d: harness.Daemon, busybox_tar: Path) -> None:
    d.import_image(busybox_tar)
    ok(d.docker("run", "-d", "--name", "dfc", "--network", "none", "-v", "dfvol:/v", "busybox", "sh", "-c",
                "echo x > /v/f; echo yy > /f; sleep 300"))
    ok(d.docker("create", "--name", "idle", "--network", "none", "-l", "keep=1", "busybox", "true"))
    ok(d.docker("volume", "create", "spare"))
    ok(d.docker("tag", "busybox", "extra:1"))
    harness.eventually(lambda: "yy" in d.docker("exec", "dfc", "cat", "/f").stdout)


@pytest.mark.conformance
def test_system_df_matches_dockerd(berthd: harness.Berthd, dockerd: harness.Dockerd, busybox_tar: Path) -> None:
    got: dict[str, Any] = {}
    for d in (berthd, dockerd):
        setup(d, busybox_tar)
        summary = [json.loads(line) for line in ok(d.docker("system", "df", "--format", "{{json .}}")).stdout.splitlines()]
        status, body = d.api("GET", "/system/df")
        assert status == 200
        images = sorted((tuple(i["RepoTags"] or ()), i["Size"], i["SharedSize"], i["Containers"]) for i in body["Images"])
        containers = sorted((c["Names"][0], c.get("SizeRw"), c.get("SizeRootFs", 0) - c.get("SizeRw", 0))
                            for c in body["Containers"])
        volumes = sorted((v["Name"], v["UsageData"]) for v in body["Volumes"])
        verbose = ok(d.docker("system", "df", "-v")).stdout
        sections = [line for line in verbose.splitlines() if line.endswith("usage:") or line.startswith("Build cache")]
        got[d.__class__.__name__] = [summary, body["LayersSize"], images, containers, volumes, body["BuildCache"],
                                     body["BuilderSize"], sections, sorted(body)]
    assert got["Berthd"] == got["Dockerd"]


def test_system_df_types_and_volume_counts(berthd: harness.Berthd, busybox_tar: Path) -> None:
    setup(berthd, busybox_tar)
    status, body = berthd.api("GET", "/system/df?type=volume")
    assert status == 200 and sorted(body) == ["Volumes"]
    usage = {v["Name"]: v["UsageData"] for v in body["Volumes"]}
    assert usage == {"dfvol": {"RefCount": 1, "Size": 2}, "spare": {"RefCount": 0, "Size": 0}}
    status, body = berthd.api("GET", "/system/df?type=bogus")
    assert status == 400


PRUNE = [
    ("container", "prune", "-f", "--filter", "label!=keep=1"),
    ("system", "prune", "-f"),
    ("system", "prune", "-a", "-f", "--filter", "label!=keep=1"),
    ("container", "prune", "-f", "--filter", "foo=bar"),
    ("image", "prune", "-f", "--filter", "until=abc"),
    ("container", "prune", "-f", "--filter", "until=abc"),
    ("volume", "prune", "-f", "--filter", "foo=bar"),
]


def _normal(text: str) -> str:
    return re.sub(r"[0-9a-f]{64}", "ID", text)


@pytest.mark.conformance
def test_system_prune_matches_dockerd(berthd: harness.Berthd, dockerd: harness.Dockerd, busybox_tar: Path) -> None:
    got: dict[str, Any] = {}
    for d in (berthd, dockerd):
        setup(d, busybox_tar)
        ok(d.docker("rm", "-f", "dfc"))
        ok(d.docker("run", "--name", "gone", "--network", "none", "busybox", "true"))
        ok(d.docker("create", "--name", "old", "--network", "none", "busybox", "true"))
        ok(d.docker("commit", "idle", "dangling:1"))
        ok(d.docker("tag", "busybox", "dangling:1"))  # the committed image is dangling now
        results = []
        for cmd in PRUNE:
            r = d.docker(*cmd)
            results.append((cmd, r.returncode, _normal(r.stdout), r.stderr))
        results.append(sorted(ok(d.docker("ps", "-a", "--format", "{{.Names}}")).stdout.split()))
        results.append(sorted(ok(d.docker("images", "--format", "{{.Repository}}:{{.Tag}}")).stdout.split()))
        got[d.__class__.__name__] = results
    assert got["Berthd"] == got["Dockerd"]


def test_system_prune_volumes_and_until(berthd: harness.Berthd, busybox_tar: Path) -> None:
    """With API 1.45, `system prune --volumes` takes anonymous volumes only and `-a` images no
    container uses; `until` takes durations and timestamps."""
    setup(berthd, busybox_tar)
    ok(berthd.docker("run", "--name", "anon", "--network", "none", "-v", "/data", "busybox", "true"))
    ok(berthd.docker("rm", "anon"))
    anonymous = [v for v in ok(berthd.docker("volume", "ls", "-q")).stdout.split() if len(v) == 64]
    assert len(anonymous) == 1
    r = ok(berthd.docker("system", "prune", "-f", "--filter", "until=1h"))
    assert "idle" not in ok(berthd.docker("ps", "-a", "--format", "{{.Names}}")).stdout.split() or "Deleted" not in r.stdout
    ok(berthd.docker("stop", "-t", "0", "dfc"))
    r = ok(berthd.docker("system", "prune", "-a", "--volumes", "-f"))
    assert anonymous[0] in r.stdout and "Total reclaimed space" in r.stdout
    assert sorted(ok(berthd.docker("volume", "ls", "-q")).stdout.split()) == ["dfvol", "spare"]
    assert ok(berthd.docker("ps", "-aq")).stdout == ""
    assert ok(berthd.docker("images", "-q")).stdout == ""
    seen = ok(berthd.docker("events", "--since", "0", "--until", f"{time.time():.3f}", "--filter", "event=prune",
                            "--format", "{{.Type}} {{.Actor.Attributes.reclaimed}}")).stdout.split("\n")
    assert any(line.startswith("container ") for line in seen) and any(line.startswith("image ") for line in seen)


@pytest.mark.conformance
def test_top_with_ps_options_matches_dockerd(berthd: harness.Berthd, dockerd: harness.Dockerd,
                                             busybox_tar: Path) -> None:
    got: dict[str, Any] = {}
    for d in (berthd, dockerd):
        d.import_image(busybox_tar)
        ok(d.docker("run", "-d", "--name", "tp", "--network", "none", "busybox", "sh", "-c",
                    "sleep 301 & sleep 302"))
        harness.eventually(lambda d=d: "sleep 302" in d.docker("top", "tp").stdout)
        results: list[Any] = []
        for args in ((), ("aux",), ("-o", "pid,comm"), ("-o", "comm,args"), ("--badflag",)):
            r = d.docker("top", "tp", *args)
            lines = r.stdout.splitlines()
            commands = sorted(line.split()[-1] if args == ("-o", "pid,comm") else line.split(None, 1)[-1][-9:]
                              for line in lines[1:])
            results.append((args, r.returncode, lines[0].split() if lines else [], commands, r.stderr))
        status, body = d.api("GET", "/containers/tp/top?ps_args=-o%20user=PID")
        results.append((status, body))
        ok(d.docker("stop", "-t", "0", "tp"))
        r = d.docker("top", "tp")
        results.append((r.returncode, r.stderr.replace(ok(d.docker("inspect", "-f", "{{.Id}}", "tp")).stdout.strip(), "ID")))
        got[d.__class__.__name__] = results
    assert got["Berthd"] == got["Dockerd"]


@pytest.mark.conformance
def test_system_df_with_a_container_whose_image_was_force_removed(
    berthd: harness.Berthd, dockerd: harness.Dockerd, busybox_tar: Path
) -> None:
    """``rmi -f`` of a stopped container's image deletes the image record and leaves its layers
    under the container: ``system df`` still answers, and the container's SizeRootFs still counts
    the image's layers, as dockerd's does."""
    got: dict[str, Any] = {}
    for d in (berthd, dockerd):
        d.import_image(busybox_tar)
        ok(d.docker("tag", "busybox", "gone:1"))
        ok(d.docker("create", "--name", "orphan", "--network", "none", "gone:1", "true"))
        ok(d.docker("rmi", "-f", "busybox", "gone:1"))
        status, body = d.api("GET", "/system/df")
        assert status == 200, body
        containers = [(c["Names"][0], c.get("SizeRw", 0), c.get("SizeRootFs", 0)) for c in body["Containers"]]
        got[d.__class__.__name__] = (containers, [i["RepoTags"] for i in body["Images"]],
                                     ok(d.docker("system", "df")).returncode)
    assert got["Berthd"] == got["Dockerd"]
    assert got["Berthd"][0][0][2] > 0
