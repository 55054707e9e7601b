"""`docker run --init`: berth-init as PID 1 reaps zombies, forwards signals, passes the exit code."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

import harness

pytestmark = pytest.mark.integration


def ok(r: Any) -> Any:
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
    return r


def test_init_is_pid1_and_passes_the_exit_code(berthd: harness.Berthd, busybox_image: str) -> None:
    info = json.loads(ok(berthd.docker("info", "--format", "{{json .}}")).stdout)
    assert info["InitBinary"] == "berth-init"
    out = ok(berthd.docker("run", "--rm", "--init", busybox_image, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '")).stdout
    assert out.startswith("/sbin/docker-init -- sh -c")
    assert berthd.docker("run", "--rm", "--init", busybox_image, "sh", "-c", "exit 7").returncode == 7
    r = berthd.docker("run", "--rm", "--init", busybox_image, "/no/such")
    assert r.returncode == 127 and "No such file or directory" in r.stderr, r.stderr
    # the init cannot be written from inside
    r = berthd.docker("run", "--rm", "--init", busybox_image, "sh", "-c", "echo x > /sbin/docker-init")
    assert r.returncode == 1 and "Read-only file system" in r.stderr, r.stderr


def test_init_reaps_zombies(berthd: harness.Berthd, busybox_image: str) -> None:
    # orphaned grandchildren are re-parented to PID 1; `sleep` as PID 1 never reaps them, the
    # init does
    script = "for i in 1 2 3; do sh -c 'sleep 0.1 &'; done; exec sleep 120"

    def zombies(*flags: str, want: int) -> int:
        """The zombies once every `sleep 0.1` has exited (and, with an init, been reaped)."""
        cid = ok(berthd.docker("run", "-d", *flags, busybox_image, "sh", "-c", script)).stdout.strip()
        try:

            def count() -> int | None:
                rows = [
                    row.split(None, 1)
                    for row in ok(berthd.docker("exec", cid, "ps", "-o", "stat,args")).stdout.splitlines()[1:]
                ]
                if any(args == "sleep 0.1" for _, args in rows) or not any(
                    args == "sleep 120" for _, args in rows
                ):
                    return None  # a grandchild still sleeps, or the script has not reached its exec
                return sum(1 for stat, _ in rows if stat.startswith("Z"))

            harness.eventually(lambda: count() == want, timeout=30)
            return count() or 0
        finally:
            berthd.docker("rm", "-f", cid)

    assert zombies(want=3) == 3, "the test cannot tell: zombies were reaped without an init"
    assert zombies("--init", want=0) == 0


def test_init_forwards_stop_signal(berthd: harness.Berthd, busybox_image: str) -> None:
    # sleep as PID 1 ignores SIGTERM (no handler), so stop waits for the kill; behind the init,
    # sleep is an ordinary process and dies of the forwarded SIGTERM at once (143)
    cid = ok(berthd.docker("run", "-d", "--init", busybox_image, "sleep", "100")).stdout.strip()
    t0 = time.monotonic()
    ok(berthd.docker("stop", "-t", "10", cid))
    assert time.monotonic() - t0 < 5
    assert ok(berthd.docker("inspect", "-f", "{{.State.ExitCode}}", cid)).stdout.strip() == "143"
    ok(berthd.docker("rm", cid))


def test_daemon_wide_init(berthd_factory: Any) -> None:
    d = berthd_factory(extra_args=("--init",))
    d.import_image(harness.build_busybox_tar(d.root / "bb.tar"), "busybox:latest", cmd=("sh",))
    out = ok(d.docker("run", "--rm", "busybox", "cat", "/proc/1/cmdline")).stdout
    assert out.startswith("/sbin/docker-init")
    out = ok(d.docker("run", "--rm", "--init=false", "busybox", "cat", "/proc/1/cmdline")).stdout
    assert out.startswith("cat")
