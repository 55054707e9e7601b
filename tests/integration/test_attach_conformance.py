"""The attach and exec streams of berthd next to the reference dockerd 20.10, byte for byte where
the two must agree (API 1.41, raw HTTP): detach keys, the log replay, the client's EOF, framing.

Not compared, because berth decides otherwise on purpose (docs/decisions.md): detaching from an
exec (dockerd reports it as a failure with exit code 126), the status of bad exec DetachKeys
(dockerd: 500), and error bodies of attach (dockerd: plain text).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

import harness
from rawstream import RawStream, split_frames

pytestmark = pytest.mark.conformance

ATTACH = "/v1.41/containers/{}/attach?"
ECHO_RAW = "stty raw -echo; echo ready; exec cat"


def _wait_log(d: harness.Daemon, name: str, text: str) -> None:
    deadline = time.monotonic() + 15
    while text not in d.docker("logs", name).stdout:
        assert time.monotonic() < deadline, f"{name} never logged {text!r}"
        time.sleep(0.05)


def _scenario(d: harness.Daemon) -> dict[str, Any]:
    run = ("run", "--network", "none")
    for args in (
        ("-dit", "--name", "echo", "busybox", "sh", "-c", ECHO_RAW),
        ("-di", "--name", "plain", "busybox", "cat"),
        ("--name", "done", "busybox", "sh", "-c", "echo out1; sleep 0.1; echo err1 >&2; sleep 0.1; echo out2"),
        ("-d", "--name", "host", "busybox", "sleep", "1000"),
    ):
        r = d.docker(*run, *args)
        assert r.returncode == 0, r.stderr
    _wait_log(d, "echo", "ready")
    got: dict[str, Any] = {}
    live = ATTACH.format("echo") + "stream=1&stdin=1&stdout=1&stderr=1"

    def attach_echo(name: str, query: str, *sends: bytes, expect: bytes) -> None:
        with RawStream.open(d.sock, query) as s:
            for data in sends:
                s.send(data, 0.2)
            got[name] = s.read_until(expect) if expect else b""
            got[name + " then"] = s.read_for(1.0)
            got[name + " closed"] = s.eof

    attach_echo("partial", live, b"\x10", b"a", expect=b"\x10a")
    attach_echo("detach typed", live, b"\x10", b"\x11", expect=b"")
    attach_echo("detach in one write", live, b"\x10\x11", expect=b"")
    attach_echo("custom keys", live + "&detachKeys=ctrl-x,y", b"\x10\x11b", b"\x18", b"y", expect=b"\x10\x11b")
    with RawStream.open(d.sock, ATTACH.format("plain") + "stream=1&stdin=1&stdout=1&stderr=1") as s:
        s.send(b"\x10", 0.2)
        s.send(b"\x11\n", 0.2)
        got["no tty: keys pass"] = b"".join(p for _, p in split_frames(s.read_until(b"\x11\n")))
        s.close_write()
        got["no tty: eof ends"] = (s.read_to_eof(), s.eof)
    with RawStream.open(d.sock, live) as s:
        s.send(b"e\n")
        s.read_until(b"e\n")
        s.close_write()
        got["tty: eof ends"] = (s.read_to_eof(), s.eof)
    with RawStream.open(d.sock, ATTACH.format("done") + "logs=1&stream=0&stdout=1&stderr=1") as s:
        got["logs, no stream"] = (s.headers.get("content-type"), s.frames())
    with RawStream.open(d.sock, ATTACH.format("echo") + "logs=1&stream=0&stdout=1") as s:
        got["tty logs, no stream"] = s.read_to_eof()
    with RawStream.open(d.sock, ATTACH.format("done") + "logs=0&stream=0&stdout=1") as s:
        got["nothing"] = s.read_to_eof()
    got["bad keys"] = d.api("POST", ATTACH.format("echo") + "stream=1&detachKeys=ctrl-foo")[0]
    for create_tty, start_tty in ((True, False), (False, True)):
        status, ex = d.api("POST", "/v1.41/containers/host/exec", {
            "Cmd": ["sh", "-c", "echo out; sleep 0.1; echo err >&2"], "Tty": create_tty,
            "AttachStdout": True, "AttachStderr": True})
        with RawStream.open(d.sock, f"/v1.41/exec/{ex['Id']}/start", {"Tty": start_tty}) as s:
            got[f"exec tty={create_tty} start tty={start_tty}"] = (s.headers.get("content-type"), s.read_to_eof())
    got["still running"] = [
        d.api("GET", f"/v1.41/containers/{name}/json")[1]["State"]["Running"] for name in ("echo", "plain")
    ]
    return got


def test_attach_and_exec_streams_match_dockerd(
    berthd: harness.Berthd, dockerd: harness.Dockerd, busybox_tar: Any
) -> None:
    results = []
    for d in (berthd, dockerd):
        d.import_image(busybox_tar)
        results.append(_scenario(d))
    ours, theirs = results
    for key in theirs:
        assert ours[key] == theirs[key], f"{key}: berthd {ours[key]!r}, dockerd {theirs[key]!r}"
