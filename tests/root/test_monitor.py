"""The monitor's wire protocol on monitor.sock, spoken with raw frames to a real container.

The container is made through NativeDriver (the creation connection); every other connection
here is a plain unix socket speaking the frames of docs/internals.md.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.drivers.exec import CreateRequest, NativeDriver, SpecInput, build_spec
from berth.libcontainer import Mount
from berth.libcontainer.cgroups import open_cgroup
from berth.libcontainer.testing import busybox_rootfs
from berth.shim import protocol as P

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(
        not os.path.exists("/bin/busybox"), reason="needs /bin/busybox (apt-get install busybox-static)"
    ),
]


OPEN: list[Raw] = []


@pytest.fixture(autouse=True)
def close_clients() -> Iterator[None]:
    yield
    while OPEN:
        OPEN.pop().close()


class Raw:
    """A blocking client of monitor.sock (closed at the end of the test)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        OPEN.append(self)
        self.sock.settimeout(10)
        self.sock.connect(str(path))
        self.dec = P.FrameDecoder()
        self.frames: list[tuple[int, bytes]] = []

    def send(self, kind: int, payload: bytes = b"") -> None:
        self.sock.sendall(P.encode(kind, payload))

    def send_json(self, obj: dict) -> None:
        self.sock.sendall(P.encode_json(obj))

    def next(self) -> tuple[int, bytes] | None:
        while not self.frames:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.frames += self.dec.feed(data)
        return self.frames.pop(0)

    def event(self) -> dict:
        while True:
            frame = self.next()
            assert frame is not None, "connection closed before a control event"
            if frame[0] == P.CONTROL:
                return json.loads(frame[1])

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def container(tmp_path: Path) -> Iterator[tuple[NativeDriver, object, CreateRequest, Path]]:
    import asyncio

    tag = uuid.uuid4().hex[:10]
    exec_root, parent = Path(f"/run/bm-{tag}"), f"berth-test-{tag}"
    lower = busybox_rootfs(tmp_path / "lower")
    cid = uuid.uuid4().hex
    for d in ("rootfs", "upper", "work"):
        (tmp_path / d).mkdir()
    rootfs = str(tmp_path / "rootfs")
    # the trap comes first: the test signals once "got hello" is out, and a pid 1 without a
    # handler ignores SIGTERM (a trap set after the echo raced the signal on a loaded machine)
    script = "trap 'exit 9' TERM; echo ready; read line; echo got $line; while true; do sleep 0.05; done"
    spec = build_spec(SpecInput(args=("sh", "-c", script), rootfs=rootfs))
    req = CreateRequest(
        cid,
        tmp_path,
        spec,
        [
            Mount(
                "overlay",
                "overlay",
                rootfs,
                (f"lowerdir={lower}", f"upperdir={tmp_path / 'upper'}", f"workdir={tmp_path / 'work'}"),
            )
        ],
        False,
        True,
        tmp_path / "log.json",
    )
    loop = asyncio.new_event_loop()
    driver = NativeDriver(exec_root, parent)
    loop.run_until_complete(driver.startup())
    handle = loop.run_until_complete(driver.create(req))
    loop.run_until_complete(handle.start())
    # the daemon lets go of its connection: from here on only raw clients talk to the monitor
    loop.run_until_complete(handle.close())
    loop.run_until_complete(driver.shutdown())
    yield driver, handle, req, exec_root / cid / "monitor.sock"
    state = exec_root / cid / "state.json"
    if state.exists() and not (exec_root / cid / "exit.json").exists():
        info = json.loads(state.read_text())
        for key in ("pid", "monitor_pid"):
            try:
                os.kill(info[key], signal.SIGKILL)
            except ProcessLookupError:
                pass
    cg = open_cgroup(f"{parent}/{cid}")
    if cg.exists():
        cg.destroy()
    for path in open_cgroup(parent).paths():
        if path.is_dir():
            path.rmdir()
    shutil.rmtree(exec_root, ignore_errors=True)
    loop.close()


def test_attach_protocol_two_clients_replies_and_exit(container: tuple) -> None:
    _driver, handle, req, sock_path = container
    a, b = Raw(sock_path), Raw(sock_path)
    a.send_json({"op": "attach"})
    b.send_json({"op": "attach"})
    hello = a.event()
    started_at = hello.pop("started_at")
    assert started_at == json.loads((sock_path.parent / "state.json").read_text())["started_at"] != ""
    assert hello == {
        "event": "attached",
        "pid": handle.pid,
        "monitor_pid": handle.monitor_pid,
        "started": True,
        "paused": False,
    }
    assert b.event()["event"] == "attached"
    # stdin from one client, output to both
    a.send(P.STDIN, b"hello\n")
    for client in (a, b):
        frame = client.next()
        assert frame == (P.STDOUT, b"got hello\n")
    # requests are answered in order with their req ids; errors have a kind
    a.send_json({"op": "resize", "h": 5, "w": 5, "req": 7})
    assert a.event() == {"event": "reply", "req": 7, "op": "resize", "error": "", "kind": ""}
    a.send_json({"op": "start", "req": 8})
    r = a.event()
    assert r["req"] == 8 and r["kind"] == "conflict" and "already started" in r["error"]
    a.send_json({"op": "fly", "req": 9})
    r = a.event()
    assert r["kind"] == "invalid" and "unknown op" in r["error"]
    a.send_json({"op": "signal", "req": 10})  # no signal number
    assert a.event()["kind"] == "invalid"
    # a control connection: requests and replies only (no output frames)
    ctl = Raw(sock_path)
    ctl.send_json({"op": "control"})
    ctl.send_json({"op": "resize", "h": 1, "w": 1, "req": 1})
    assert ctl.event() == {"event": "reply", "req": 1, "op": "resize", "error": "", "kind": ""}
    ctl.send_json({"op": "control", "req": 2})  # a hello again is not an op
    assert ctl.event()["kind"] == "invalid"
    a.send(P.STDIN, b"unused\n")  # (the script no longer reads: nothing comes back on either)
    # a client that sends garbage gets an error frame and is dropped; the others stay
    c = Raw(sock_path)
    c.sock.sendall(b"\x09garbage!")
    kind, payload = c.next() or (None, b"")
    assert kind == P.ERROR and b"bad header" in payload
    assert c.next() is None
    b.close()  # a client leaving changes nothing for the container
    a.send_json({"op": "signal", "signal": int(signal.SIGTERM), "req": 11})
    assert a.event()["error"] == ""
    ev = a.event()
    assert ev["event"] == "exit" and ev["exit_code"] == 9 and ev["error"] == ""
    assert a.next() is None  # the monitor closes after its teardown
    assert json.loads((sock_path.parent / "exit.json").read_text())["exit_code"] == 9
    assert not sock_path.exists()
    log = [json.loads(x)["log"] for x in req.log_path.read_text().splitlines()]
    assert log == ["ready\n", "got hello\n"]


def test_first_frame_must_be_a_hello(container: tuple) -> None:
    _driver, _handle, _req, sock_path = container
    c = Raw(sock_path)
    c.send(P.STDIN, b"x")
    kind, payload = c.next() or (None, b"")
    assert kind == P.ERROR and b"hello" in payload
    assert c.next() is None
    d = Raw(sock_path)
    d.send_json({"op": "bogus"})
    kind, payload = d.next() or (None, b"")
    assert kind == P.ERROR and b"unknown hello op" in payload
    for bad in ({"op": "control", "pid": "x"}, {"op": "exec", "process": "sh"}, {"op": "exec"}):
        f = Raw(sock_path)
        f.send_json(bad)
        kind, _payload = f.next() or (None, b"")
        assert kind == P.ERROR, bad  # that client is dropped; the container goes on
        assert f.next() is None
    e = Raw(sock_path)
    e.send_json(
        {
            "op": "exec",
            "process": {
                "args": ["sh", "-c", "echo $((6*7))"],
                "env": ["PATH=/bin"],
                "cwd": "/",
                "user": {"uid": 0, "gid": 0},
            },
        }
    )
    started = e.event()
    assert started["event"] == "started" and started["pid"] > 0, started
    assert e.next() == (P.STDOUT, b"42\n")
    assert e.event() == {"event": "exit", "exit_code": 0}
    assert e.next() is None
    a = Raw(sock_path)
    a.send_json({"op": "attach"})
    a.event()
    a.send_json({"op": "signal", "signal": int(signal.SIGKILL)})
    assert a.event()["event"] == "reply"
    assert a.event()["exit_code"] == 137
