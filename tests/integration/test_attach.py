"""Attach and exec streams over raw HTTP and docker-py: the log replay of ``logs=1``, framing
and content types, the client's EOF, and the daemon's detach-key proxy (issue 5, #11 and #12).

The docker CLI's side of the same behaviour (a user at a terminal) is in test_detach_keys.py.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from typing import Any

import pytest

import harness
from rawstream import RawStream, joined, split_frames

pytestmark = pytest.mark.integration

ATTACH = "/v1.41/containers/{}/attach?"
ECHO_RAW = "stty raw -echo; echo ready; exec cat"  # a TTY that gives back exactly the bytes it gets


def ok(r: Any) -> Any:
    assert r.returncode == 0, r.stderr
    return r


def wait_for_log(d: harness.Berthd, name: str, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in d.docker("logs", name).stdout:
        assert time.monotonic() < deadline, f"{name} never logged {text!r}: {d.docker('logs', name).stdout!r}"
        time.sleep(0.05)


def state(d: harness.Berthd, name: str) -> dict[str, Any]:
    return json.loads(ok(d.docker("inspect", name)).stdout)[0]["State"]  # type: ignore[no-any-return]


def events(d: harness.Berthd, since: float) -> list[str]:
    r = ok(d.docker("events", "--since", f"{since:.3f}", "--until", f"{time.time() + 1:.3f}",
                    "--filter", "type=container", "--format", "{{.Action}}"))
    return r.stdout.split()


# ---- logs=1 ------------------------------------------------------------------------------


def test_attach_logs_without_stream_sends_the_log_and_ends(berthd: harness.Berthd, busybox_image: str) -> None:
    docker = pytest.importorskip("docker", reason="docker-py is installed by scripts/setup.sh")
    ok(berthd.docker("run", "--name", "done", busybox_image, "sh", "-c", "echo out1; echo err1 >&2; echo out2"))
    with RawStream.open(berthd.sock, ATTACH.format("done") + "logs=1&stream=0&stdout=1&stderr=1") as s:
        assert s.status == 101
        frames = s.frames(timeout=10)  # the stream ends after the log: it used to hang here
    assert joined(frames, 1) == b"out1\nout2\n" and joined(frames, 2) == b"err1\n"
    assert all(data.count(b"\n") == 1 for _, data in frames), frames  # one frame per log line
    with RawStream.open(berthd.sock, ATTACH.format("done") + "logs=1&stream=0&stdout=1&stderr=0") as s:
        assert s.frames() == [(1, b"out1\n"), (1, b"out2\n")]
    with RawStream.open(berthd.sock, ATTACH.format("done") + "logs=0&stream=0&stdout=1&stderr=1") as s:
        assert s.read_to_eof(timeout=10) == b""
    ok(berthd.docker("run", "--log-driver", "none", "--name", "nolog", busybox_image, "echo", "x"))
    with RawStream.open(berthd.sock, ATTACH.format("nolog") + "logs=1&stream=0&stdout=1") as s:
        assert s.frames() == [(1, b"Error attaching: configured logging driver does not support reading\n")]

    # a running TTY container: the log so far, raw, then EOF; the container goes on
    ok(berthd.docker("run", "-dit", "--name", "tty", busybox_image, "sh", "-c", "echo hello-tty; exec sleep 1000"))
    wait_for_log(berthd, "tty", "hello-tty")
    with RawStream.open(berthd.sock, ATTACH.format("tty") + "logs=1&stream=0&stdout=1&stderr=1") as s:
        assert s.read_to_eof(timeout=10) == b"hello-tty\r\n"
    assert state(berthd, "tty")["Running"] is True

    # docker-py reads a non-streamed attach to EOF: it must come. (What it returns is not
    # checked: docker-py reads the socket past its buffered reader of the response head, so
    # bytes that came with the head are lost to it; against dockerd 20.10 it returns b"" too.)
    client = berthd.client(timeout=15)
    assert isinstance(client.containers.get("done").attach(stdout=True, stderr=True, stream=False, logs=True), bytes)
    assert isinstance(client.containers.get("tty").attach(logs=True, stream=False), bytes)
    with pytest.raises(docker.errors.NotFound):
        client.api.attach("nosuch", logs=True, stream=False)


def test_attach_logs_then_live_output(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("run", "-di", "--name", "lv", busybox_image, "sh", "-c",
                     "echo before; read x; echo after-$x; exec sleep 1000"))
    wait_for_log(berthd, "lv", "before")
    with RawStream.open(berthd.sock, ATTACH.format("lv") + "logs=1&stream=1&stdin=1&stdout=1&stderr=1") as s:
        assert split_frames(s.read_until(b"before\n")) == [(1, b"before\n")]
        s.send(b"zz\n")
        assert split_frames(s.read_until(b"after-zz\n")) == [(1, b"after-zz\n")]
        assert s.read_for(0.3) == b""  # nothing twice, and the stream stays open
        assert not s.eof
    # the exited container's log comes first, then the stream waits for its next run
    ok(berthd.docker("kill", "lv"))
    ok(berthd.docker("wait", "lv"))
    with RawStream.open(berthd.sock, ATTACH.format("lv") + "logs=1&stream=1&stdout=1&stderr=1") as s:
        assert split_frames(s.read_until(b"after-zz\n")) == [(1, b"before\n"), (1, b"after-zz\n")]
        ok(berthd.docker("start", "lv"))
        assert split_frames(s.read_until(b"before\n")) == [(1, b"before\n")]


def test_attach_with_stdin_ends_when_the_container_exits(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("run", "-di", "--name", "one", busybox_image, "sh", "-c", "read x; echo got-$x; exit 3"))
    with RawStream.open(berthd.sock, ATTACH.format("one") + "stream=1&stdin=1&stdout=1&stderr=1") as s:
        s.send(b"foo\n")  # the client's stdin stays open: the exit ends the stream
        assert s.frames(timeout=10) == [(1, b"got-foo\n")]
    assert ok(berthd.docker("wait", "one")).stdout.strip() == "3"


# ---- the client's EOF --------------------------------------------------------------------


def test_eof_on_stdin_ends_the_attach_and_leaves_the_container_running(
    berthd: harness.Berthd, busybox_image: str
) -> None:
    # `create -it` is what `run -it` makes (StdinOnce): the client's EOF must not reach the
    # shell as ^D (the docker CLI closes its connection after ctrl-p ctrl-q)
    ok(berthd.docker("create", "-it", "--name", "sh1", busybox_image, "sh"))
    ok(berthd.docker("start", "sh1"))
    with RawStream.open(berthd.sock, ATTACH.format("sh1") + "stream=1&stdin=1&stdout=1&stderr=1") as s:
        s.send(b"echo $((6*7))\r")
        s.read_until(b"42\r\n")
        s.close_write()
        s.read_to_eof(timeout=10)
    time.sleep(0.5)
    assert state(berthd, "sh1")["Running"] is True
    with RawStream.open(berthd.sock, ATTACH.format("sh1") + "stream=1&stdin=1&stdout=1&stderr=1") as s:
        s.send(b"echo still-$((1+1))\r")
        s.read_until(b"still-2\r\n")  # the same shell, still reading its terminal

    # without a TTY and without StdinOnce the EOF ends the attach too; the stdin stays open
    ok(berthd.docker("run", "-di", "--name", "cat1", busybox_image, "cat"))
    with RawStream.open(berthd.sock, ATTACH.format("cat1") + "stream=1&stdin=1&stdout=1&stderr=1") as s:
        s.send(b"x\n")
        s.read_until(b"x\n")
        s.close_write()
        assert s.read_to_eof(timeout=10) == b""
    time.sleep(0.3)
    assert state(berthd, "cat1")["Running"] is True

    # StdinOnce without a TTY (`run -i`): the EOF closes the container's stdin, output goes on
    ok(berthd.docker("create", "-i", "--name", "once", busybox_image, "sh", "-c", "cat; echo after-eof"))
    with RawStream.open(berthd.sock, ATTACH.format("once") + "stream=1&stdin=1&stdout=1&stderr=1") as s:
        ok(berthd.docker("start", "once"))
        s.send(b"in\n")
        s.close_write()
        assert joined(s.frames(timeout=10), 1) == b"in\nafter-eof\n"


# ---- detach keys (the daemon's proxy) ----------------------------------------------------


def test_detach_keys_on_a_raw_attach(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("run", "-dit", "--name", "echo", busybox_image, "sh", "-c", ECHO_RAW))
    wait_for_log(berthd, "echo", "ready")
    since = time.time()
    q = ATTACH.format("echo") + "stream=1&stdin=1&stdout=1&stderr=1"
    with RawStream.open(berthd.sock, q) as s:
        s.send(b"a")
        s.read_until(b"a")
        s.send(b"\x10")
        assert s.read_for(0.3) == b""  # ctrl-p may begin the sequence: held back
        s.send(b"b")
        s.read_until(b"\x10b")  # it did not: released with the byte that broke it
        s.send(b"\x10", 0.2)  # the default ctrl-p ctrl-q, typed as two keys
        s.send(b"\x11")
        assert s.read_to_eof(timeout=10) == b""  # never sent to the container
    with RawStream.open(berthd.sock, q) as s:
        s.send(b"c\x10\x11d")  # in one write; what follows the sequence goes with the connection
        s.read_to_eof(timeout=10)
    assert events(berthd, since).count("detach") == 2
    with RawStream.open(berthd.sock, q + "&detachKeys=ctrl-x,y") as s:
        s.send(b"\x10\x11")  # not the sequence of this attach
        s.read_until(b"\x10\x11")
        s.send(b"\x18", 0.2)
        s.send(b"z")
        s.read_until(b"\x18z")
        s.send(b"\x18", 0.2)
        s.send(b"y")
        assert s.read_to_eof(timeout=10) == b""

    # docker-py's attach socket, with detach keys of its own
    client = berthd.client(timeout=15)
    sock = client.api.attach_socket("echo", params={"stdin": 1, "stdout": 1, "stream": 1, "detachKeys": "ctrl-a"})
    raw = sock._sock
    raw.settimeout(10)
    raw.sendall(b"ok")
    got = b""
    while b"ok" not in got:
        got += raw.recv(100)
    raw.sendall(b"\x01")
    assert raw.recv(100) == b""  # the daemon ended the stream
    sock.close()
    raw.close()  # SocketIO.close() leaves the socket to the garbage collector

    with RawStream.open(berthd.sock, q) as s:
        s.send(b"\n")
        s.read_until(b"\n")
    assert state(berthd, "echo")["Running"] is True
    # what the container got: every byte but the sequences (and what followed one in its write)
    assert client.containers.get("echo").logs() == b"ready\na\x10bc\x10\x11\x18zok\n"


def test_detach_keys_only_watch_a_tty(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("run", "-di", "--name", "plain", busybox_image, "cat"))
    with RawStream.open(berthd.sock, ATTACH.format("plain") + "stream=1&stdin=1&stdout=1&stderr=1") as s:
        s.send(b"\x10", 0.2)
        s.send(b"\x11\n")
        assert split_frames(s.read_until(b"\x11\n")) in ([(1, b"\x10\x11\n")], [(1, b"\x10"), (1, b"\x11\n")])
        assert not s.eof


def test_invalid_detach_keys_are_rejected(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("run", "-dit", "--name", "kk", busybox_image, "sh"))
    for keys in ("ctrl-foo", "ctrl-p,", "ab", "CTRL-P"):
        status, body = berthd.api("POST", f"/v1.41/containers/kk/attach?stream=1&stdin=1&detachKeys={keys}")
        assert (status, body) == (400, {"message": f"Invalid detach keys ({keys}) provided"})
    # the keys are checked before the container is looked up, as dockerd does
    status, body = berthd.api("POST", "/v1.41/containers/nosuch/attach?stream=1&detachKeys=ctrl-foo")
    assert status == 400
    status, body = berthd.api("POST", "/v1.41/containers/kk/exec", {"Cmd": ["true"], "DetachKeys": "ctrl-foo"})
    assert (status, body) == (400, {"message": "Invalid escape keys (ctrl-foo) provided"})


def test_exec_detach_keys_leave_the_process_running(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("run", "-d", "--name", "host", busybox_image, "sleep", "1000"))
    since = time.time()
    status, ex = berthd.api("POST", "/v1.41/containers/host/exec", {
        "Cmd": ["sh", "-c", ECHO_RAW], "Tty": True, "AttachStdin": True, "AttachStdout": True,
        "DetachKeys": "ctrl-x,y",
    })
    assert status == 201
    eid = ex["Id"]
    assert berthd.api("GET", f"/exec/{eid}/json")[1]["DetachKeys"] == base64.b64encode(b"\x18y").decode()
    with RawStream.open(berthd.sock, f"/v1.41/exec/{eid}/start", {"Detach": False, "Tty": True}) as s:
        s.read_until(b"ready\n")
        s.send(b"\x10\x11a")  # the default sequence is not this exec's
        s.read_until(b"\x10\x11a")
        s.send(b"\x18", 0.2)
        s.send(b"y")
        assert s.read_to_eof(timeout=10) == b""
    info = berthd.api("GET", f"/exec/{eid}/json")[1]
    assert info["Running"] is True and info["ExitCode"] is None
    assert "exec_detach" in events(berthd, since)
    os.kill(info["Pid"], signal.SIGTERM)  # the exec'd cat this test started
    deadline = time.monotonic() + 10
    while berthd.api("GET", f"/exec/{eid}/json")[1]["Running"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert berthd.api("GET", f"/exec/{eid}/json")[1]["ExitCode"] == 143

    # no DetachKeys: ctrl-p ctrl-q; inspect shows no keys, as dockerd
    status, ex = berthd.api("POST", "/v1.41/containers/host/exec", {
        "Cmd": ["sh", "-c", ECHO_RAW], "Tty": True, "AttachStdin": True, "AttachStdout": True})
    assert berthd.api("GET", f"/exec/{ex['Id']}/json")[1]["DetachKeys"] == ""
    with RawStream.open(berthd.sock, f"/v1.41/exec/{ex['Id']}/start", {"Tty": True}) as s:
        s.read_until(b"ready\n")
        s.send(b"\x10", 0.2)
        s.send(b"\x11")
        assert s.read_to_eof(timeout=10) == b""
    assert berthd.api("GET", f"/exec/{ex['Id']}/json")[1]["Running"] is True


def test_exec_tty_eof_ends_the_stream_not_the_process(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("run", "-d", "--name", "host", busybox_image, "sleep", "1000"))
    status, ex = berthd.api("POST", "/v1.41/containers/host/exec", {
        "Cmd": ["sh"], "Tty": True, "AttachStdin": True, "AttachStdout": True})
    with RawStream.open(berthd.sock, f"/v1.41/exec/{ex['Id']}/start", {"Tty": True}) as s:
        s.send(b"echo $((6*7))\r")
        s.read_until(b"42")
        s.close_write()
        s.read_to_eof(timeout=10)
    time.sleep(0.3)
    assert berthd.api("GET", f"/exec/{ex['Id']}/json")[1]["Running"] is True  # no ^D reached the shell


# ---- framing and content types -----------------------------------------------------------


def test_exec_stream_is_framed_by_the_start_requests_tty(berthd: harness.Berthd, busybox_image: str) -> None:
    pytest.importorskip("docker", reason="docker-py is installed by scripts/setup.sh")
    ok(berthd.docker("run", "-d", "--name", "host", busybox_image, "sleep", "1000"))
    cmd = ["sh", "-c", "echo out; echo err >&2"]

    def create(tty: bool) -> str:
        status, ex = berthd.api("POST", "/v1.41/containers/host/exec",
                                {"Cmd": cmd, "Tty": tty, "AttachStdout": True, "AttachStderr": True})
        assert status == 201
        return str(ex["Id"])

    # Tty at create, not at start: multiplexed (the pty merges both streams into stdout)
    with RawStream.open(berthd.sock, f"/v1.41/exec/{create(True)}/start", {"Tty": False}) as s:
        frames = s.frames()
    assert frames and {kind for kind, _ in frames} == {1} and joined(frames, 1) == b"out\r\nerr\r\n"
    # Tty at start only: raw stdout; there is no room for stderr in a raw stream
    with RawStream.open(berthd.sock, f"/v1.41/exec/{create(False)}/start", {"Tty": True}) as s:
        assert s.read_to_eof() == b"out\n"

    api = berthd.client(timeout=15).api
    eid = api.exec_create("host", cmd, tty=True)["Id"]
    assert api.exec_start(eid, tty=False, demux=True) == (b"out\r\nerr\r\n", None)
    eid = api.exec_create("host", cmd, tty=False)["Id"]
    assert api.exec_start(eid, tty=False, demux=True) == (b"out\n", b"err\n")
    eid = api.exec_create("host", cmd, tty=False)["Id"]
    assert api.exec_start(eid, tty=True) == b"out\n"


@pytest.mark.parametrize("version", ["1.41", "1.44"])
def test_stream_content_types(berthd: harness.Berthd, busybox_image: str, version: str) -> None:
    multiplexed = "application/vnd.docker.multiplexed-stream" if version >= "1.42" else "application/vnd.docker.raw-stream"
    raw = "application/vnd.docker.raw-stream"
    ok(berthd.docker("run", "-d", "--name", "plain", busybox_image, "sleep", "1000"))
    ok(berthd.docker("run", "-dt", "--name", "tty", busybox_image, "sleep", "1000"))
    for name, want in (("plain", multiplexed), ("tty", raw)):
        with RawStream.open(berthd.sock, f"/v{version}/containers/{name}/attach?stream=0&stdout=1") as s:
            assert (s.status, s.headers["content-type"]) == (101, want)
        # without the upgrade dockerd answers 200 and calls the stream raw, whatever it carries
        with RawStream.open(berthd.sock, f"/v{version}/containers/{name}/attach?stream=0&stdout=1",
                            upgrade=False) as s:
            assert (s.status, s.headers["content-type"]) == (200, raw)
    for tty, want in ((False, multiplexed), (True, raw)):
        status, ex = berthd.api("POST", f"/v{version}/containers/plain/exec", {"Cmd": ["true"], "AttachStdout": True})
        with RawStream.open(berthd.sock, f"/v{version}/exec/{ex['Id']}/start", {"Tty": tty}) as s:
            assert (s.status, s.headers["content-type"]) == (101, want)
            s.read_to_eof()
