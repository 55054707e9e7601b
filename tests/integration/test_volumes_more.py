"""Volumes, the rest: --volumes-from, the local driver's mount options (type=tmpfs, o=bind),
bind propagation (rshared, rslave), and a volume name with a slash; side by side with dockerd
where the texts matter."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import harness

pytestmark = pytest.mark.integration


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
    return r


def test_volume_name_with_a_slash_is_400(berthd: harness.Berthd) -> None:
    status, body = berthd.api("POST", "/volumes/create", {"Name": "a/b"})
    assert status == 400 and "includes invalid characters for a local volume name" in body["message"]
    status, body = berthd.api("POST", "/volumes/create", {"Name": "x", "DriverOpts": {"bogus": "1"}})
    assert (status, body["message"]) == (400, 'create x: invalid option: "bogus"')
    status, body = berthd.api("POST", "/volumes/create", {"Name": "x", "DriverOpts": {"type": "tmpfs"}})
    assert (status, body["message"]) == (400, 'create x: missing required option: "device"')


def test_volumes_from(berthd: harness.Berthd, busybox_tar: Path, tmp_path: Path) -> None:
    berthd.import_image(busybox_tar)
    ok(berthd.docker("import", "-c", "VOLUME /data", "-c", 'CMD ["sh"]', str(busybox_tar), "withvol:1"))
    host = tmp_path / "host"
    host.mkdir()
    (host / "h").write_text("host file\n")
    ok(berthd.docker("run", "-d", "--name", "src", "-v", "shared:/data", "-v", f"{host}:/hostdir:ro",
                     "--tmpfs", "/scratch", "busybox", "sh", "-c", "echo hi > /data/f; sleep 300"))
    harness.eventually(lambda: berthd.docker("exec", "src", "cat", "/data/f").stdout == "hi\n")
    r = ok(berthd.docker("run", "--rm", "--volumes-from", "src", "busybox", "sh", "-c",
                         "cat /data/f /hostdir/h; echo more >> /data/f; test -d /scratch || echo no-scratch"))
    assert r.stdout == "hi\nhost file\nno-scratch\n"
    assert ok(berthd.docker("exec", "src", "cat", "/data/f")).stdout == "hi\nmore\n"
    r = berthd.docker("run", "--rm", "--volumes-from", "src:ro", "busybox", "touch", "/data/x")
    assert r.returncode == 1 and "Read-only file system" in r.stderr
    # its own -v wins over an inherited destination; an image VOLUME an inherited mount covers is not made
    r = ok(berthd.docker("run", "--rm", "--volumes-from", "src", "-v", "other:/data", "busybox", "ls", "/data"))
    assert r.stdout == ""
    ok(berthd.docker("create", "--name", "heir", "--volumes-from", "src", "withvol:1", "true"))
    mounts = json.loads(ok(berthd.docker("inspect", "-f", "{{json .Mounts}}", "heir")).stdout)
    assert sorted((m["Destination"], m.get("Name", ""), m["RW"]) for m in mounts) == [
        ("/data", "shared", True), ("/hostdir", "", False)]
    assert json.loads(ok(berthd.docker("inspect", "-f", "{{json .HostConfig.VolumesFrom}}", "heir")).stdout) == ["src"]
    # the volume is still in use by the heir when its first owner goes
    ok(berthd.docker("rm", "-f", "-v", "src"))
    r = berthd.docker("volume", "rm", "shared")
    assert r.returncode == 1 and "volume is in use" in r.stderr
    r = berthd.docker("run", "--rm", "--volumes-from", "nosuch", "busybox", "true")
    assert r.returncode == 125 and "No such container: nosuch" in r.stderr and "Unable to find image" not in r.stderr
    status, body = berthd.api("POST", "/containers/create", {"Image": "busybox", "HostConfig": {"VolumesFrom": ["heir:xx"]}})
    assert (status, body["message"]) == (400, "invalid mode: xx")


def _mounted(root: Path) -> list[str]:
    return [p for p in harness.mounts_under(root) if "/volumes/" in p]


def test_local_driver_options(berthd: harness.Berthd, busybox_image: str, tmp_path: Path) -> None:
    ok(berthd.docker("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=8m,uid=1000", "tv"))
    assert json.loads(ok(berthd.docker("volume", "inspect", "-f", "{{json .Options}}", "tv")).stdout) == {
        "device": "tmpfs", "o": "size=8m,uid=1000", "type": "tmpfs"}
    assert _mounted(berthd.data_root) == []  # mounted only while a container uses it
    ok(berthd.docker("run", "-d", "--name", "t1", "-v", "tv:/t", busybox_image, "sh", "-c",
                     "echo shared > /t/s; sleep 300"))
    harness.eventually(lambda: berthd.docker("exec", "t1", "cat", "/t/s").stdout == "shared\n")
    r = ok(berthd.docker("run", "--rm", "-v", "tv:/t", busybox_image, "sh", "-c",
                         "cat /t/s; grep ' /t ' /proc/mounts; stat -c %u /t"))
    assert r.stdout.splitlines() == ["shared", "tmpfs /t tmpfs rw,relatime,size=8192k,uid=1000 0 0", "1000"]
    assert _mounted(berthd.data_root) == [str(berthd.data_root / "volumes" / "tv" / "_data")]
    # a daemon restart keeps the mount of a running user, and its exit still unmounts it
    berthd.restart()
    assert _mounted(berthd.data_root) == [str(berthd.data_root / "volumes" / "tv" / "_data")]
    ok(berthd.docker("rm", "-f", "t1"))
    assert _mounted(berthd.data_root) == []
    r = ok(berthd.docker("run", "--rm", "-v", "tv:/t", busybox_image, "ls", "/t"))
    assert r.stdout == ""  # a tmpfs volume is empty again once no container runs with it
    src = tmp_path / "src"
    src.mkdir()
    (src / "b").write_text("bound\n")
    ok(berthd.docker("volume", "create", "-o", "type=none", "-o", "o=bind", "-o", f"device={src}", "bv"))
    r = ok(berthd.docker("run", "--rm", "-v", "bv:/b", busybox_image, "sh", "-c", "cat /b/b; echo w > /b/w"))
    assert r.stdout == "bound\n" and (src / "w").read_text() == "w\n"
    ok(berthd.docker("volume", "create", "-o", "type=none", "-o", "o=bind", "-o", "device=/nonexistent-berth", "bad"))
    r = berthd.docker("run", "--rm", "-v", "bad:/b", busybox_image, "true")
    assert r.returncode == 127 and "failed to mount local volume: mount /nonexistent-berth:" in r.stderr  # the CLI: 127
    assert "no such file or directory" in r.stderr
    assert _mounted(berthd.data_root) == []


@contextlib.contextmanager
def shared_tmpfs(path: Path) -> Iterator[Path]:
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(path)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", "-R", "-l", str(path)], check=False)


def test_bind_propagation(berthd: harness.Berthd, busybox_image: str, tmp_path: Path) -> None:
    with shared_tmpfs(tmp_path / "prop") as prop:
        ok(berthd.docker("run", "-d", "--name", "sh1", "--privileged", "-v", f"{prop}:/p:rshared", busybox_image,
                         "sh", "-c", "mkdir -p /p/sub && mount -t tmpfs tmpfs /p/sub && echo from-ctr > /p/sub/f; "
                         "sleep 300"))
        harness.eventually(lambda: (prop / "sub" / "f").exists())  # the container's mount reached the host
        assert (prop / "sub" / "f").read_text() == "from-ctr\n"
        ok(berthd.docker("run", "-d", "--name", "sl1", "-v", f"{prop}:/p:rslave", busybox_image, "sleep", "300"))
        (prop / "s2").mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(prop / "s2")], check=True)
        (prop / "s2" / "g").write_text("from-host\n")
        assert ok(berthd.docker("exec", "sl1", "cat", "/p/s2/g")).stdout == "from-host\n"
        ok(berthd.docker("rm", "-f", "sh1", "sl1"))


@pytest.mark.conformance
def test_propagation_and_volume_errors_match_dockerd(
    berthd: harness.Berthd, dockerd: harness.Dockerd, busybox_tar: Path, tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    got = {}
    for d in (berthd, dockerd):
        d.import_image(busybox_tar)
        results = []
        for args in (("-v", f"{plain}:/p:rshared"), ("-v", f"{plain}:/p:rslave"), ("--volumes-from", "nosuch"),
                     ("--volumes-from", "x:bogus")):
            r = d.docker("run", "--rm", "--network", "none", *args, "busybox", "true")
            results.append((args, r.returncode, r.stderr.splitlines()[0] if r.stderr else ""))
        for opts in (("-o", "bogus=1"), ("-o", "type=tmpfs"), ("-o", "o=bind")):
            r = d.docker("volume", "create", *opts, "optvol")
            results.append((opts, r.returncode, r.stderr.strip()))
        r = d.docker("volume", "create", "a/b")
        results.append(("a/b", r.returncode, r.stderr.strip()))
        ok(d.docker("volume", "create", "-o", "type=none", "-o", "o=bind", "-o", "device=/nonexistent-bv", "bv"))
        r = d.docker("run", "--rm", "--network", "none", "-v", "bv:/b", "busybox", "true")
        results.append((r.returncode, r.stderr.splitlines()[0].replace(str(d.data_root), "ROOT")))
        got[d.__class__.__name__] = results
    assert got["Berthd"] == got["Dockerd"]


def test_create_without_volumes_stores_its_record(berthd: harness.Berthd, busybox_tar: Path) -> None:
    """A create with no volume of its own stores its record in the files' worker thread: the
    inherited mounts and the name are in it, across a daemon restart."""
    berthd.import_image(busybox_tar)
    ok(berthd.docker("create", "--name", "owner", "-v", "kept:/data", "busybox", "true"))
    ok(berthd.docker("create", "--name", "plain", "--volumes-from", "owner", "busybox", "true"))
    r = berthd.docker("create", "--name", "plain", "busybox", "true")
    assert r.returncode != 0 and 'The container name "/plain" is already in use' in r.stderr
    berthd.restart()
    mounts = json.loads(ok(berthd.docker("inspect", "-f", "{{json .Mounts}}", "plain")).stdout)
    assert [(m["Destination"], m.get("Name", ""), m["RW"]) for m in mounts] == [("/data", "kept", True)]
    ok(berthd.docker("start", "-a", "plain"))
    ok(berthd.docker("rm", "-v", "plain", "owner"))
    ok(berthd.docker("volume", "rm", "kept"))
