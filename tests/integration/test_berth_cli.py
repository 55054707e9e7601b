"""The `berth` CLI against a real berthd: the acceptance scenarios through our own client."""

from __future__ import annotations

import json
import subprocess

import pytest

import harness

pytestmark = pytest.mark.integration


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
    return r


@pytest.fixture
def bootstrapped(berthd: harness.Berthd) -> harness.Berthd:
    """The offline default image, built by `berth image bootstrap busybox` (no import fixture)."""
    r = ok(berthd.berth("image", "bootstrap", "busybox", timeout=300))
    assert r.stdout.strip().startswith("sha256:")
    return berthd


def test_bootstrap_image_contents(bootstrapped: harness.Berthd) -> None:
    d = bootstrapped
    inspect = json.loads(ok(d.berth("image", "inspect", "busybox")).stdout)[0]
    assert inspect["Config"]["Cmd"] == ["sh"] and inspect["RepoTags"] == ["busybox:latest"]
    out = ok(
        d.berth(
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "grep -c . /etc/passwd; id www-data; id nobody; ls /bin /sbin /usr/bin /usr/sbin | wc -l; ls -ld /tmp",
        )
    ).stdout.split("\n")
    assert int(out[0]) >= 7
    assert out[1].startswith("uid=33(www-data)") and out[2].startswith("uid=65534(nobody)")
    assert int(out[3]) > 200, "every applet should be linked"
    assert out[4].startswith("drwxrwxrwt")
    assert ok(d.berth("run", "--rm", "-u", "www-data", "busybox", "id", "-un")).stdout == "www-data\n"


def test_run_exit_codes_and_output(bootstrapped: harness.Berthd) -> None:
    d = bootstrapped
    assert ok(d.berth("run", "--rm", "busybox", "echo", "hi")).stdout == "hi\n"
    r = d.berth("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    assert d.berth("run", "--rm", "busybox", "/no/such/binary").returncode == 127
    assert d.berth("run", "--rm", "busybox", "/etc").returncode == 126
    assert d.berth("run", "--rm", "nosuchimage", "true").returncode == 125
    assert ok(d.berth("run", "-i", "--rm", "busybox", "cat", input="a\nb\n")).stdout == "a\nb\n"
    assert ok(d.berth("ps", "-aq")).stdout == ""


def test_detached_lifecycle(bootstrapped: harness.Berthd, tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = bootstrapped
    env_file = tmp_path / "env"
    env_file.write_text("FROM_FILE=yes\n# comment\n")
    cid = ok(
        d.berth(
            "run",
            "-d",
            "--name",
            "svc",
            "--env-file",
            str(env_file),
            "-e",
            "A=1",
            "-l",
            "k=v",
            "--hostname",
            "svc-host",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 0' TERM; i=0; while true; do echo n $i; i=$((i+1)); sleep 0.1; done",
        )
    ).stdout.strip()
    assert len(cid) == 64
    harness.eventually(lambda: ok(d.berth("logs", "svc")).stdout.count("\n") >= 2, timeout=30)
    assert ok(d.berth("logs", "svc")).stdout.startswith("n 0\nn 1\n")
    assert len(ok(d.berth("logs", "--tail", "2", "svc")).stdout.splitlines()) == 2
    r = ok(
        d.berth("exec", "-e", "B=2", "-w", "/etc", "svc", "sh", "-c", "echo $A$B$FROM_FILE; pwd; hostname")
    )
    assert r.stdout == "12yes\n/etc\nsvc-host\n"
    assert d.berth("exec", "svc", "sh", "-c", "exit 6").returncode == 6
    ok(d.berth("exec", "-d", "svc", "sh", "-c", "sleep 0.2; touch /tmp/from-detached-exec"))
    harness.eventually(
        lambda: d.berth("exec", "svc", "test", "-f", "/tmp/from-detached-exec").returncode == 0, timeout=30
    )
    assert ok(d.berth("ps", "--filter", "label=k=v", "--format", "{{.Names}}")).stdout == "svc\n"
    ok(d.berth("pause", "svc"))
    assert "Paused" in ok(d.berth("ps")).stdout
    ok(d.berth("unpause", "svc"))
    ok(d.berth("stop", "svc"))  # the trap makes SIGTERM a clean exit 0
    assert ok(d.berth("inspect", "-f", "{{.State.ExitCode}}", "svc")).stdout.strip() == "0"
    assert ok(d.berth("wait", "svc")).stdout.strip() == "0"
    ok(d.berth("rename", "svc", "svc2"))
    ok(d.berth("rm", "svc2"))
    assert d.berth("inspect", "svc2").returncode == 1


def test_images_and_jobs(bootstrapped: harness.Berthd) -> None:
    d = bootstrapped
    ok(d.berth("tag", "busybox", "mine:1"))
    assert sorted(ok(d.berth("images", "--format", "{{.Repository}}:{{.Tag}}")).stdout.split()) == [
        "busybox:latest",
        "mine:1",
    ]
    assert "Untagged: mine:1" in ok(d.berth("rmi", "mine:1")).stdout
    jobs = ok(d.berth("jobs", "-a")).stdout.splitlines()
    assert jobs[0].split()[:4] == ["ID", "NAME", "STATUS", "DURATION"]
    assert any(" image.import " in f" {line} " for line in jobs) and any("serveapi" in line for line in jobs)


def test_no_daemon_message() -> None:
    r = subprocess.run(
        [str(harness.BERTH), "-H", "unix:///tmp/berth-no-such-daemon.sock", "ps"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 1
    assert (
        "Cannot connect to the berth daemon at unix:///tmp/berth-no-such-daemon.sock. "
        "Is the berth daemon running?"
    ) in r.stderr


def test_run_and_exec_with_a_terminal(bootstrapped: harness.Berthd) -> None:
    d = bootstrapped
    status, out = harness.pty_run(
        [
            str(harness.BERTH),
            "run",
            "-it",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "tty; stty size; read x; echo got-$x; exit 4",
        ],
        d.env,
        b"typed\r",
    )
    assert status == 4, out
    assert b"/dev/pts/0" in out and b"30 100" in out and b"got-typed" in out, out
    assert d.berth("run", "-d", "--name", "term", "busybox", "sleep", "60").returncode == 0
    status, out = harness.pty_run(
        [str(harness.BERTH), "exec", "-it", "term", "sh", "-c", "tty; read y; echo got-$y"], d.env, b"more\r"
    )
    assert status == 0 and b"/dev/pts/" in out and b"got-more" in out, out
    assert d.berth("rm", "-f", "term").returncode == 0
