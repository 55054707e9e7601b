"""What berthd keeps on disk is root's alone (issue 5, item 2): a host user cannot run a setuid
binary or open a device node a container made, nor read a container's environment from its
config, the database or the log; containers themselves see their files as before.

Every check runs as ``nobody`` with no capabilities (``setpriv`` then ``exec`` from a shell:
``setpriv`` itself keeps root's capabilities until its own execve, so it must not be the one
that opens the path). The harness's private dir is opened to 0755 first, so only berthd's own
modes stand between ``nobody`` and the data."""

from __future__ import annotations

import os
import socket
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import pytest

import harness

pytestmark = pytest.mark.integration

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "sh", "-c", 'exec "$@"', "sh"]
PASSWORD = "hunter2-" + os.urandom(4).hex()
SECRET = "PASSWORD=" + PASSWORD


def as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NOBODY, *argv], capture_output=True, text=True, timeout=30)


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
    return r


def open_up(berthd: harness.Berthd) -> None:
    """Give ``nobody`` a path down to berthd's roots, as /var/lib and /run would."""
    os.chmod(berthd.root, 0o755)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def planted(berthd: harness.Berthd, busybox_image: str) -> tuple[str, Path]:
    """A running container that wrote a setuid-root busybox and a world-writable block device
    (the host's first disk) into its layer, with a password in its environment."""
    cid = ok(berthd.docker(
        "run", "-d", "-e", SECRET, "-v", "vol:/data", busybox_image, "sh", "-c",
        "cp /bin/busybox /tmp/id && chmod 4755 /tmp/id && mknod -m 666 /tmp/disk b 7 0 && "
        "echo $PASSWORD && touch /tmp/ready && sleep 1000",
    )).stdout.strip()
    upper = Path(ok(berthd.docker("inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", cid)).stdout.strip())
    deadline = time.monotonic() + 20
    while not (upper / "tmp" / "ready").exists():
        assert time.monotonic() < deadline, berthd.log_tail()
        time.sleep(0.05)
    open_up(berthd)
    return cid, upper


def assert_private(berthd: harness.Berthd, cid: str, upper: Path) -> None:
    setuid = upper / "tmp" / "id"
    assert setuid.stat().st_mode & stat.S_ISUID  # the container did write it
    r = as_nobody(str(setuid))
    assert r.returncode != 0 and "Permission denied" in r.stderr, f"nobody ran the container's setuid binary: {r}"
    r = as_nobody("dd", f"if={upper / 'tmp' / 'disk'}", "of=/dev/null", "count=1")
    assert r.returncode != 0 and "Permission denied" in r.stderr, f"nobody opened the container's device: {r}"
    cdir = berthd.data_root / "containers" / cid
    for path in (
        cdir / "config.json",
        cdir / f"{cid}-json.log",
        berthd.data_root / "berth.db",
        berthd.data_root / "berth.db-wal",
        berthd.exec_root / cid / "state.json",
    ):
        assert path.exists(), path
        r = as_nobody("cat", str(path))
        assert r.returncode != 0 and PASSWORD not in r.stdout, f"nobody read {path}: {r}"
    r = as_nobody("ls", str(berthd.data_root / "volumes" / "vol" / "_data"))
    assert r.returncode != 0, f"nobody listed a volume: {r}"
    for sock in (berthd.exec_root / cid / "monitor.sock", Path(berthd.sock)):
        r = as_nobody("python3", "-c", f"import socket; socket.socket(socket.AF_UNIX).connect({str(sock)!r})")
        assert r.returncode != 0 and "PermissionError" in r.stderr, f"nobody connected to {sock}: {r}"
    # the modes themselves, as Docker's or stricter
    for d in (
        berthd.data_root, berthd.exec_root, berthd.data_root / "overlay2", upper.parent, berthd.data_root / "containers",
        cdir, berthd.data_root / "volumes", berthd.data_root / "blobs", berthd.data_root / "tmp", berthd.exec_root / cid,
    ):
        assert mode(d) == 0o700, f"{d} is {mode(d):o}"
    for f in (cdir / "config.json", berthd.data_root / "berth.db", berthd.data_root / "berth.db-wal",
              berthd.data_root / "berth.db-shm", berthd.exec_root / cid / "state.json", berthd.exec_root / cid / "monitor.sock"):
        assert mode(f) == 0o600, f"{f} is {mode(f):o}"
    assert mode(Path(berthd.sock)) == 0o660


def test_a_host_user_reaches_nothing_a_container_wrote(berthd: harness.Berthd, planted: tuple[str, Path]) -> None:
    cid, upper = planted
    # the unprivileged user can reach the harness dir itself: the walls are berthd's
    assert ok(as_nobody("ls", str(berthd.root))).stdout
    assert_private(berthd, cid, upper)
    assert PASSWORD in ok(berthd.docker("logs", cid)).stdout  # root still reads it through the API


def test_roots_left_open_are_closed_at_start_up(berthd: harness.Berthd, planted: tuple[str, Path]) -> None:
    cid, upper = planted
    berthd.stop()
    # what an older berth left: everything open
    for top in (berthd.data_root, berthd.exec_root):
        os.chmod(top, 0o755)
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames:
                if not os.path.islink(os.path.join(dirpath, name)) and "/diff" not in dirpath + "/" + name:
                    os.chmod(os.path.join(dirpath, name), 0o755)
            for name in filenames:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                mounted = st.st_dev != os.lstat(dirpath).st_dev  # a bind-mounted netns file (nsfs)
                if not os.path.islink(path) and "/diff/" not in path and not stat.S_ISSOCK(st.st_mode) and not mounted:
                    os.chmod(path, 0o644)
    r = as_nobody("cat", str(berthd.data_root / "containers" / cid / "config.json"))
    assert SECRET in r.stdout  # the scenario is real: open, it leaks
    berthd.start()
    assert_private(berthd, cid, upper)


def test_containers_see_their_files_as_before(berthd: harness.Berthd, busybox_image: str) -> None:
    r = ok(berthd.docker(
        "run", "--rm", "-u", "1000", "-v", "shared:/data", busybox_image, "sh", "-c",
        "stat -c '%a %n' / /etc /etc/hosts /etc/hostname /etc/resolv.conf /data; cat /etc/hosts >/dev/null && "
        "echo ok > /tmp/f && cat /tmp/f && ls /bin/sh >/dev/null && id -u",
    ))
    lines = r.stdout.splitlines()
    assert lines[:6] == ["755 /", "755 /etc", "644 /etc/hosts", "644 /etc/hostname", "644 /etc/resolv.conf", "755 /data"]
    assert lines[6:] == ["ok", "1000"]
    # a new image layer keeps the tar's modes: busybox's /tmp is 1777
    r = ok(berthd.docker("run", "--rm", "-u", "1000", busybox_image, "stat", "-c", "%a", "/tmp"))
    assert r.stdout.strip() == "1777"


def test_nobody_cannot_use_the_api_socket(berthd: harness.Berthd) -> None:
    open_up(berthd)
    os.chmod(berthd.exec_root, 0o755)  # even with the way to the socket open, 0660 root:root stops it
    r = as_nobody("python3", "-c", f"import socket; socket.socket(socket.AF_UNIX).connect({berthd.sock!r})")
    assert r.returncode != 0 and "PermissionError" in r.stderr
    with socket.socket(socket.AF_UNIX) as s:  # root can
        s.connect(berthd.sock)


def test_the_database_is_created_private(berthd_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = berthd_factory()
    db = sqlite3.connect(d.data_root / "berth.db")
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()
    for name in ("berth.db", "berth.db-wal", "berth.db-shm"):
        assert mode(d.data_root / name) == 0o600, name


def test_vfs_layers_are_private_too(berthd_factory, busybox_tar: Path) -> None:  # type: ignore[no-untyped-def]
    d = berthd_factory(storage_driver="vfs")
    d.import_image(busybox_tar)
    cid = ok(d.docker("run", "-d", "busybox", "sh", "-c", "cp /bin/busybox /tmp/id && chmod 4755 /tmp/id && sleep 1000")).stdout.strip()
    ok(d.docker("exec", cid, "ls", "/tmp/id"))
    open_up(d)
    layer = d.data_root / "vfs" / "dir" / cid
    assert (layer / "tmp" / "id").stat().st_mode & stat.S_ISUID
    assert mode(d.data_root / "vfs") == mode(d.data_root / "vfs" / "dir") == 0o700
    assert mode(layer) == 0o755  # the container's "/"
    r = as_nobody(str(layer / "tmp" / "id"))
    assert r.returncode != 0 and "Permission denied" in r.stderr, r
    r = ok(d.docker("run", "--rm", "-u", "1000", "busybox", "sh", "-c", "stat -c %a / /tmp; cat /etc/hosts >/dev/null; id -u"))
    assert r.stdout.split() == ["755", "1777", "1000"]
