"""A full data root: berthd answers clearly, never hangs, frees space through the API, restarts.

Each test runs berthd on a private tmpfs of a few MB mounted as its data root (unmounted at the
end), fills it (a container writing until ENOSPC, or a file the test writes), then checks that
`run` returns, errors are Docker-like 500s ("... no space left on device", no Python class
names), `rm`, `rm -f` and `container prune` free the space (a removal deletes the files before
its record), and that the daemon starts again, settling exits that happened meanwhile.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import harness

pytestmark = pytest.mark.integration

SIZE_MB = 16  # the busybox image takes about 4.5 MB of it
FILL = "dd if=/dev/zero of=/fill bs=64k"


def _free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _no_class_names(text: str) -> None:
    for name in ("OSError", "OperationalError", "Errno", "Traceback", "sqlite3"):
        assert name not in text, f"a Python error leaked to the client: {text!r}"


@pytest.fixture
def small_root(berthd_factory: Callable[..., harness.Berthd], busybox_tar: Path) -> Iterator[harness.Berthd]:
    d = berthd_factory(start=False)
    d.prepare()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m,mode=0711", "berth-test-full", str(d.data_root)],
        check=True,
    )
    try:
        d.start()
        d.import_image(busybox_tar)
        yield d
    finally:
        for leftover in (d.data_root / "fill", d.data_root / "fill2"):
            leftover.unlink(missing_ok=True)
        if d.pid is None:
            d.start()
        problems = d.remove_all_containers()
        d.stop()
        r = subprocess.run(["umount", str(d.data_root)], capture_output=True, text=True)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", str(d.data_root)], check=False)
            problems.append(f"umount {d.data_root}: {r.stderr.strip()}")
        assert not problems, problems


def _fill_by_test(d: harness.Berthd, name: str = "fill") -> None:
    subprocess.run(["dd", "if=/dev/zero", f"of={d.data_root / name}", "bs=64k"], capture_output=True, check=False)
    assert _free_bytes(d.data_root) < 64 * 1024


def test_run_that_fills_the_disk_returns_and_rm_frees_it(small_root: harness.Berthd) -> None:
    d = small_root
    t0 = time.monotonic()
    r = d.docker("run", "--name", "filler", "busybox", "sh", "-c", f"{FILL}; exit 3", timeout=60)
    assert r.returncode == 3, r.stderr + d.log_tail(20)
    assert time.monotonic() - t0 < 30, "run hung on the full disk"
    assert _free_bytes(d.data_root) < 64 * 1024
    # a new container cannot be made: a clear 500, as dockerd's
    r = d.docker("run", "--rm", "busybox", "true", timeout=60)
    assert r.returncode == 125
    assert "no space left on device" in r.stderr, r.stderr
    _no_class_names(r.stderr)
    status, body = d.api("POST", "/containers/create", {"Image": "busybox", "Cmd": ["true"]})
    assert status == 500 and "no space left on device" in body["message"], (status, body)
    _no_class_names(body["message"])
    assert d.docker("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout.startswith("filler Exited (3)")
    # rm frees the space although its record update needs some
    r = d.docker("rm", "filler", timeout=60)
    assert r.returncode == 0, r.stderr + d.log_tail(20)
    assert _free_bytes(d.data_root) > 8 << 20
    r = d.docker("run", "--rm", "busybox", "echo", "ok", timeout=60)
    assert (r.returncode, r.stdout) == (0, "ok\n"), r.stderr
    # the daemon's records agree after a restart: filler is gone
    d.restart()
    assert d.docker("ps", "-aq").stdout == ""


def test_rm_run_on_a_full_disk_removes_itself(small_root: harness.Berthd) -> None:
    r = small_root.docker("run", "--rm", "busybox", "sh", "-c", f"{FILL}; exit 4", timeout=60)
    assert r.returncode == 4, r.stderr + small_root.log_tail(20)
    assert small_root.docker("ps", "-aq").stdout == ""
    # a --rm container's layer and files go after its wait is answered (docs/decisions.md)
    harness.eventually(lambda: _free_bytes(small_root.data_root) > 8 << 20, timeout=30)


def test_rm_force_and_prune_when_something_else_filled_the_disk(small_root: harness.Berthd) -> None:
    d = small_root
    assert d.docker("run", "--name", "done1", "busybox", "true").returncode == 0
    assert d.docker("run", "--name", "done2", "busybox", "true").returncode == 0
    assert d.docker("run", "-d", "--name", "live", "busybox", "sleep", "100").returncode == 0
    assert d.docker("create", "--name", "made", "busybox", "true").returncode == 0
    _fill_by_test(d)
    r = d.docker("rm", "-f", "live", timeout=60)
    assert r.returncode == 0, r.stderr + d.log_tail(20)
    r = d.docker("rm", "made", timeout=60)
    assert r.returncode == 0, r.stderr + d.log_tail(20)
    r = d.docker("container", "prune", "-f", timeout=60)
    assert r.returncode == 0, r.stderr + d.log_tail(20)
    assert d.docker("ps", "-aq").stdout == ""
    (d.data_root / "fill").unlink()
    d.restart()
    assert d.docker("ps", "-aq").stdout == "", "a removal done on the full disk came back"


@pytest.mark.parametrize("how", ["stop", "kill9"])
def test_daemon_starts_on_a_full_disk(small_root: harness.Berthd, how: str) -> None:
    """Containers fill the disk and exit while the daemon is down: it starts, records the exits
    it can (in memory when the database refuses), removes the --rm one (which frees space)."""
    d = small_root
    r = d.docker("run", "-d", "--name", "keeper", "busybox", "sh", "-c", "sleep 1; exit 6")
    assert r.returncode == 0, r.stderr
    r = d.docker("run", "-d", "--name", "filler", "busybox", "sh", "-c", f"sleep 1; {FILL}; exit 5")
    assert r.returncode == 0, r.stderr
    d.stop() if how == "stop" else d.kill9()
    harness.eventually(lambda: _free_bytes(d.data_root) < 64 * 1024, 20)
    time.sleep(1)  # filler's exit right after its dd
    d.start()

    def states() -> list[str]:
        lines = d.docker("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout.splitlines()
        return sorted(s.rsplit(" ", 3)[0] for s in lines)

    harness.eventually(lambda: states() == ["filler Exited (5)", "keeper Exited (6)"], 20)
    r = d.docker("rm", "filler", timeout=60)
    assert r.returncode == 0, r.stderr + d.log_tail(20)
    # the exit the database refused at start-up is written once there is room again
    def stored() -> bool:
        d.restart()
        return d.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "keeper").stdout.split() == [
            "exited", "6",
        ]

    harness.eventually(stored, 20, interval=1.0)


def test_rm_container_exits_while_daemon_down_on_full_disk(small_root: harness.Berthd) -> None:
    d = small_root
    r = d.docker("run", "-d", "--rm", "busybox", "sh", "-c", f"sleep 1; {FILL}; exit 5")
    assert r.returncode == 0, r.stderr
    d.kill9()
    harness.eventually(lambda: _free_bytes(d.data_root) < 64 * 1024, 20)
    time.sleep(1)  # its exit right after its dd
    d.start()
    harness.eventually(lambda: d.docker("ps", "-aq").stdout == "", 20)
    assert _free_bytes(d.data_root) > 8 << 20
