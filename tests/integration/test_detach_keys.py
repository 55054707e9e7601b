"""Detaching with the real docker CLI at a terminal: ctrl-p ctrl-q, ``--detach-keys`` and the
CLI config's ``detachKeys`` on ``run -it``, ``attach`` and ``exec -it`` (issue 5, #11).

The CLI catches the sequence in its own stdin proxy and then closes the connection; what the
daemon must do is let go without touching the process: the container (or the exec'd shell)
keeps running, with its terminal open, and a later attach finds it as it was left. The
daemon's own proxy (for clients that send the keys) is tested over raw HTTP in test_attach.py.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

import harness
from terminal import Terminal

pytestmark = pytest.mark.integration

CTRL_P, CTRL_Q, CTRL_X = b"\x10", b"\x11", b"\x18"


def ok(r: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert r.returncode == 0, r.stderr
    return r


def running(d: harness.Berthd, name: str) -> bool:
    time.sleep(0.5)  # long enough for a shell that got EOF to have exited
    return json.loads(ok(d.docker("inspect", name)).stdout)[0]["State"]["Running"] is True


def processes(d: harness.Berthd, name: str) -> list[str]:
    return [line.strip() for line in ok(d.docker("exec", name, "ps", "-o", "args")).stdout.splitlines()[1:]]


def test_run_it_detach_then_attach_again(berthd: harness.Berthd, busybox_image: str) -> None:
    with Terminal(["docker", "run", "-it", "--name", "shell", busybox_image, "sh"], berthd.env) as t:
        t.expect(b"/ # ")
        t.type(b"echo one-$((1+1))\r")
        t.expect(b"one-2\r\n")
        t.keys(CTRL_P, CTRL_Q)
        assert t.wait() == 0  # `run` treats the detach as success
    assert running(berthd, "shell")
    with Terminal(["docker", "attach", "shell"], berthd.env) as t:
        t.type(b"echo two-$((2+2))\r")
        t.expect(b"two-4\r\n")  # the same shell, still reading its terminal
        t.keys(CTRL_P, CTRL_Q)
        assert t.wait() == 1
        assert b"read escape sequence" in t.out
    assert running(berthd, "shell")
    assert processes(berthd, "shell")[0] == "sh"


def test_custom_detach_keys_and_partial_sequences(berthd: harness.Berthd, busybox_image: str) -> None:
    # a TTY in raw mode running cat: the terminal shows exactly the bytes the container got
    argv = ["docker", "run", "-it", "--detach-keys", "ctrl-x,y", "--name", "raw", busybox_image,
            "sh", "-c", "stty raw -echo; echo ready; exec cat"]
    with Terminal(argv, berthd.env) as t:
        t.expect(b"ready")
        t.keys(CTRL_P, CTRL_Q)  # not the sequence here: the container gets both
        t.expect(CTRL_P + CTRL_Q)
        t.keys(CTRL_X, b"z")  # a partial sequence, then a byte that breaks it
        t.expect(CTRL_X + b"z")
        t.keys(CTRL_X, b"y")
        assert t.wait() == 0
    assert running(berthd, "raw")
    with Terminal(["docker", "attach", "--detach-keys", "ctrl-x,y", "raw"], berthd.env) as t:
        t.keys(b"a", CTRL_X, b"b")
        t.expect(b"a" + CTRL_X + b"b")
        t.keys(CTRL_X, b"y")
        assert t.wait() == 1
    assert running(berthd, "raw")


def test_cli_config_detach_keys(berthd: harness.Berthd, busybox_image: str) -> None:
    (berthd.docker_config / "config.json").write_text(json.dumps({"detachKeys": "ctrl-x,y"}))
    ok(berthd.docker("run", "-dit", "--name", "cfg", busybox_image, "sh", "-c", "stty raw -echo; echo ready; exec cat"))
    # keys typed before `stty raw -echo` ran were echoed as ^P and ^Q taken for flow control
    harness.eventually(lambda: "ready" in ok(berthd.docker("logs", "cfg")).stdout, timeout=30)
    with Terminal(["docker", "attach", "cfg"], berthd.env) as t:
        t.keys(CTRL_P, CTRL_Q, b"k")
        t.expect(CTRL_P + CTRL_Q + b"k")
        t.keys(CTRL_X, b"y")
        assert t.wait() == 1
        assert b"read escape sequence" in t.out
    assert running(berthd, "cfg")


@pytest.mark.parametrize("keys", [None, "ctrl-x,y"])
def test_exec_it_detach_leaves_the_shell_running(berthd: harness.Berthd, busybox_image: str, keys: str | None) -> None:
    ok(berthd.docker("run", "-d", "--name", "host", busybox_image, "sleep", "1000"))
    flags = ["--detach-keys", keys] if keys else []
    with Terminal(["docker", "exec", "-it", *flags, "host", "sh"], berthd.env) as t:
        t.expect(b"/ # ")
        t.type(b"echo in-$((3*3))\r")
        t.expect(b"in-9\r\n")
        t.keys(*((CTRL_X, b"y") if keys else (CTRL_P, CTRL_Q)))
        assert t.wait() == 1
        assert b"read escape sequence" in t.out
    assert running(berthd, "host")
    assert "sh" in processes(berthd, "host")  # the exec'd shell got no EOF
