"""tmpfs mounts (`--tmpfs`, `--mount type=tmpfs`), volume subpaths, and `--log-driver none` /
unknown log drivers, through the docker CLI (and side by side with dockerd where it exists)."""

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


def err(r: subprocess.CompletedProcess, code: int = 125) -> str:  # type: ignore[type-arg]
    """The first line of a refused ``docker run``: 125 for the daemon's refusal of the request, 127
    for a start whose process cannot be reached (dockerd's codes)."""
    assert r.returncode == code, f"expected {code}, got {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
    return r.stderr.strip().splitlines()[0]


SHOW = "grep -E ' /(t|m|x) ' /proc/mounts; for p in /t /m /x; do [ -d $p ] && stat -c '%n %a' $p; done; true"

TMPFS_RUNS = [
    ("--tmpfs", "/t"),
    ("--tmpfs", "/t:size=1m,mode=700"),
    ("--tmpfs", "/t:rw,exec,size=1m,uid=100"),
    ("--mount", "type=tmpfs,target=/m"),
    ("--mount", "type=tmpfs,target=/m,tmpfs-size=2m,tmpfs-mode=1770"),
    ("--mount", "type=tmpfs,target=/m,readonly"),
    ("--tmpfs", "/x:ro,size=3145728"),
]


def test_tmpfs_mounts(berthd: harness.Berthd, busybox_image: str) -> None:
    shown = ok(berthd.docker("run", "--rm", "--network", "none", "--tmpfs", "/t:size=1m,mode=700",
                             "--mount", "type=tmpfs,target=/m,tmpfs-size=2m,tmpfs-mode=1770",
                             busybox_image, "sh", "-c", SHOW)).stdout.splitlines()
    assert sorted(shown) == [
        "/m 1770",
        "/t 700",
        "tmpfs /m tmpfs rw,nosuid,nodev,noexec,relatime,size=2048k,mode=1770 0 0",
        "tmpfs /t tmpfs rw,nosuid,nodev,noexec,relatime,size=1024k,mode=700 0 0",
    ]
    # the defaults are Docker's (noexec, nosuid, nodev, mode 1777); `exec` lifts noexec
    r = ok(berthd.docker("run", "--rm", "--network", "none", "--tmpfs", "/t", busybox_image, "sh", "-c",
                         "cp /bin/busybox /t/true; stat -c %a /t; /t/true; echo $?"))
    assert r.stdout.split() == ["1777", "126"]
    r = ok(berthd.docker("run", "--rm", "--network", "none", "--tmpfs", "/t:exec", busybox_image, "sh", "-c",
                         "cp /bin/busybox /t/echo && /t/echo ran"))
    assert r.stdout == "ran\n"
    assert "Read-only file system" in berthd.docker(
        "run", "--rm", "--network", "none", "--mount", "type=tmpfs,target=/m,readonly", busybox_image,
        "touch", "/m/x").stderr

    ok(berthd.docker("run", "-d", "--name", "tm", "--network", "none", "--tmpfs", "/t:size=1m,mode=700",
                     "--mount", "type=tmpfs,target=/m,tmpfs-size=2m,tmpfs-mode=1770", busybox_image, "sleep", "100"))
    c = json.loads(ok(berthd.docker("inspect", "tm")).stdout)[0]
    assert c["Mounts"] == [{"Type": "tmpfs", "Source": "", "Destination": "/m", "Mode": "", "RW": True,
                            "Propagation": ""}]
    assert c["HostConfig"]["Tmpfs"] == {"/t": "size=1m,mode=700"}

    assert err(berthd.docker("run", "--rm", "--tmpfs", "t", busybox_image, "true")) == (
        "docker: Error response from daemon: invalid mount path: 't' mount path must be absolute")
    assert err(berthd.docker("run", "--rm", "--tmpfs", "/t:bogus", busybox_image, "true")) == (
        'docker: Error response from daemon: invalid tmpfs option ["bogus"]')
    assert err(berthd.docker("run", "--rm", "--tmpfs", "/t", "-v", "v1:/t", busybox_image, "true")) == (
        "docker: Error response from daemon: Duplicate mount point: /t")
    assert err(berthd.docker("run", "--rm", "--mount", "type=tmpfs,target=/m,source=x", busybox_image, "true")) == (
        'docker: Error response from daemon: invalid mount config for type "tmpfs": field Source must not be specified')


@pytest.mark.conformance
def test_tmpfs_mounts_match_dockerd(berthd: harness.Berthd, dockerd: harness.Dockerd, busybox_tar: Path) -> None:
    got = []
    for d in (berthd, dockerd):
        d.import_image(busybox_tar)
        got.append([ok(d.docker("run", "--rm", "--network", "none", flag, value, "busybox", "sh", "-c", SHOW)).stdout
                    for flag, value in TMPFS_RUNS])
    assert got[0] == got[1]


def test_volume_subpath(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("run", "--rm", "--network", "none", "-v", "data:/d", busybox_image, "sh", "-c",
                     "mkdir -p /d/sub/deeper && echo hi > /d/sub/f && ln -s / /d/esc && ln -s ../.. /d/sub/up "
                     "&& ln -s sub /d/inside"))
    base = json.loads(ok(berthd.docker("volume", "inspect", "data")).stdout)[0]["Mountpoint"]

    def run(subpath: str, *cmd: str) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
        return berthd.docker("run", "--rm", "--network", "none", "--mount",
                             f"type=volume,src=data,dst=/m,volume-subpath={subpath}", busybox_image, *cmd)

    assert ok(run("sub", "ls", "/m")).stdout.split() == ["deeper", "f", "up"]
    assert ok(run("sub", "cat", "/m/f")).stdout == "hi\n"
    assert ok(run("inside", "cat", "/m/f")).stdout == "hi\n"  # a link that stays inside is followed
    # links that leave the volume are refused at start, with dockerd's text
    assert err(run("esc", "ls", "/m")) == (
        f"docker: Error response from daemon: path concatenation escapes the base directory, base: {base}, subpath: esc")
    assert err(run("sub/up", "ls", "/m")) == (
        f"docker: Error response from daemon: path concatenation escapes the base directory, base: {base}, subpath: sub/up")
    assert "cannot access path" in err(run("missing", "ls", "/m"), 127)
    assert err(run("../x", "true")) == ('docker: Error response from daemon: invalid mount config for type "volume": '
                                        "subpath must be a relative path within the volume")
    status, body = berthd.api("POST", "/v1.45/containers/create", {
        "Image": busybox_image, "HostConfig": {"Mounts": [
            {"Type": "volume", "Target": "/m", "VolumeOptions": {"Subpath": "sub"}}]}})
    assert (status, body["message"]) == (
        400, 'invalid mount config for type "volume": must not set Subpath when using anonymous volumes')
    status, body = berthd.api("POST", "/v1.44/containers/create", {
        "Image": busybox_image, "HostConfig": {"Mounts": [
            {"Type": "volume", "Source": "data", "Target": "/m", "VolumeOptions": {"Subpath": "sub"}}]}})
    assert (status, body["message"]) == (400, "VolumeOptions.Subpath needs API v1.45 or newer")


def test_log_driver_none_and_unknown(berthd: harness.Berthd, busybox_image: str) -> None:
    r = ok(berthd.docker("run", "--rm", "--network", "none", "--log-driver", "none", busybox_image, "echo", "visible"))
    assert r.stdout == "visible\n"  # attached output still flows; only the log is not kept
    ok(berthd.docker("run", "-d", "--name", "quiet", "--network", "none", "--log-driver", "none", busybox_image,
                     "echo", "hi"))
    ok(berthd.docker("wait", "quiet"))
    r = berthd.docker("logs", "quiet")
    assert r.returncode == 1
    assert r.stderr.strip() == "Error response from daemon: configured logging driver does not support reading"
    c = json.loads(ok(berthd.docker("inspect", "quiet")).stdout)[0]
    assert c["LogPath"] == "" and c["HostConfig"]["LogConfig"] == {"Type": "none", "Config": {}}
    assert not list(Path(berthd.data_root, "containers", c["Id"]).glob("*-json.log"))

    # dockerd refuses a driver it does not know at create, looking for a plugin of that name
    for cmd in (("run", "--rm"), ("create",)):
        r = berthd.docker(*cmd, "--log-driver", "bogus", busybox_image, "true")
        assert r.returncode == (125 if cmd[0] == "run" else 1)
        assert 'Error response from daemon: error looking up logging plugin bogus: plugin "bogus" not found' in r.stderr
    assert ok(berthd.docker("ps", "-aq", "--filter", "name=^/bogus")).stdout == ""


@pytest.mark.conformance
def test_log_driver_answers_match_dockerd(berthd: harness.Berthd, dockerd: harness.Dockerd, busybox_tar: Path) -> None:
    got = []
    for d in (berthd, dockerd):
        d.import_image(busybox_tar)
        ok(d.docker("run", "--name", "qq", "--network", "none", "--log-driver", "none", "busybox", "echo", "hi"))
        logs = d.docker("logs", "qq")
        status, body = d.api("GET", "/v1.41/containers/qq/logs?stdout=1")
        bogus = d.docker("create", "--network", "none", "--log-driver", "bogus", "busybox", "true")
        got.append((logs.returncode, logs.stderr, status, body, bogus.returncode, bogus.stderr))
    assert got[0] == got[1]
