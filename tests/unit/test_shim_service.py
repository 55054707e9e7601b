"""The shim as a process, without root: its real reactor, service and protocol on the fake runtime.

Each test starts ``berth.shim.fake.run`` in a subprocess on one end of a socketpair (the
daemon's creation connection, as the fork server would hand it), sends the create request and
speaks raw frames to it, on that connection and on ``monitor.sock``.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import harness
from berth.shim import protocol as P
from berth.shim.process import CREATED, PAUSED, RUNNING, STOPPED, IllegalMove, Process

TIMEOUT = 10.0


class Client:
    """A blocking frame client (the daemon's end, or a connection to monitor.sock)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.settimeout(TIMEOUT)
        self.dec = P.FrameDecoder()
        self.frames: list[tuple[int, bytes]] = []
        self.next_req = 0

    def send(self, kind: int, payload: bytes = b"") -> None:
        self.sock.sendall(P.encode(kind, payload))

    def send_json(self, obj: dict[str, Any]) -> None:
        self.sock.sendall(P.encode_json(obj))

    def request(self, op: str, **args: Any) -> int:
        self.next_req += 1
        self.send_json({"op": op, "req": self.next_req, **args})
        return self.next_req

    def next(self) -> tuple[int, bytes] | None:
        while not self.frames:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.frames += self.dec.feed(data)
        return self.frames.pop(0)

    def event(self, name: str | None = None, req: int | None = None) -> dict[str, Any]:
        """The next control event (of that name / for that request), skipping output."""
        while True:
            frame = self.next()
            assert frame is not None, f"connection closed before a control event {name or ''}"
            if frame[0] == P.CONTROL:
                ev = json.loads(frame[1])
                if (name is None or ev.get("event") == name) and (req is None or ev.get("req") == req):
                    return ev

    def output_until(self, text: bytes) -> bytes:
        got = b""
        while text not in got:
            frame = self.next()
            assert frame is not None, f"EOF before {text!r}; got {got!r}"
            if frame[0] in (P.STDOUT, P.STDERR):
                got += frame[1]
        return got

    def close(self) -> None:
        self.sock.close()


class Shim:
    """One shim process on the fake runtime."""

    def __init__(self, root: Path, plan: dict[str, Any], *, tty: bool = False, open_stdin: bool = False,
                 env: dict[str, str] | None = None) -> None:
        self.id = uuid.uuid4().hex
        self.root = root
        self.dir = root / self.id
        ours, theirs = socket.socketpair()
        code = "import sys; from berth.shim import fake; fake.run(int(sys.argv[1]))"
        self.proc = subprocess.Popen([sys.executable, "-c", code, str(theirs.fileno())], pass_fds=(theirs.fileno(),),
                                     env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)
        theirs.close()
        self.clients: list[Client] = []
        self.daemon = self._client(ours)
        hello = {"op": "create", "id": self.id, "exec_root": str(root), "cgroup": "", "tty": tty,
                 "open_stdin": open_stdin, "log_path": str(root / f"{self.id}.log")}
        self.daemon.send_json(hello)
        self.daemon.send(P.CONTROL, json.dumps(plan).encode())

    def _client(self, sock: socket.socket) -> Client:
        c = Client(sock)
        self.clients.append(c)
        return c

    def connect(self, hello: dict[str, Any]) -> Client:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(self.dir / "monitor.sock"))
        c = self._client(s)
        c.send_json(hello)
        return c

    def control(self) -> Client:
        return self.connect({"op": "control"})

    def created(self) -> dict[str, Any]:
        ev = self.daemon.event()
        assert ev["event"] == "created", ev
        return ev

    def start(self) -> None:
        ctl = self.control()
        req = ctl.request("start")
        assert ctl.event("reply", req)["error"] == ""

    def exit_record(self) -> dict[str, Any]:
        assert self.proc.wait(TIMEOUT) == 0, self.log()
        return json.loads((self.dir / "exit.json").read_text())

    def log(self) -> str:
        try:
            return (self.dir / "monitor.log").read_text()
        except FileNotFoundError:
            return "(no monitor.log)"

    def close(self) -> None:
        for c in self.clients:
            c.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the shim kills its container and exits
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def shims() -> Iterator[Any]:
    root = Path(tempfile.mkdtemp(prefix="bs-"))  # short: monitor.sock's path must fit sun_path
    made: list[Shim] = []

    def make(plan: dict[str, Any], **kw: Any) -> Shim:
        s = Shim(root, plan, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()
    shutil.rmtree(root)


# ---- the states, as values -------------------------------------------------------------------


def test_states_allow_only_their_moves() -> None:
    p = Process(tty=False)
    assert p.state is CREATED
    with pytest.raises(ProcessLookupError):
        p.state.signal_allowed()  # at its barrier: "not running"
    with pytest.raises(IllegalMove, match="not running"):
        p.state.pause()
    p.state = p.state.start()
    assert p.state is RUNNING
    with pytest.raises(IllegalMove, match="already started"):
        p.state.start()
    with pytest.raises(IllegalMove, match="not paused"):
        p.state.resume()
    p.state = p.state.pause()
    assert p.state is PAUSED
    with pytest.raises(IllegalMove, match="paused, unpause the container before exec"):
        p.state.exec_allowed()
    with pytest.raises(IllegalMove, match="already paused"):
        p.state.pause()
    p.state.signal_allowed()  # a paused process can still be killed
    p.state = p.state.exit()
    assert p.state is STOPPED
    for move in (p.state.start, p.state.pause, p.state.resume, p.state.exit):
        with pytest.raises(IllegalMove) as info:
            move()
        assert info.value.kind == "conflict"


# ---- the shim process ------------------------------------------------------------------------


def test_create_start_output_log_and_exit(shims: Any) -> None:
    s = shims({"args": ["sh", "-c", "echo out; echo err >&2; exit 3"]})
    ev = s.created()
    assert ev["monitor_pid"] == s.proc.pid and ev["pid"] > 0
    state = json.loads((s.dir / "state.json").read_text())
    assert state == {"monitor_pid": s.proc.pid, "pid": ev["pid"], "started_at": ""}
    s.start()
    assert s.daemon.output_until(b"out\n").endswith(b"out\n")
    exit_ev = s.daemon.event("exit")
    assert exit_ev["exit_code"] == 3 and exit_ev["error"] == ""
    record = s.exit_record()
    assert record["exit_code"] == 3 and record["oom_killed"] is False
    assert json.loads((s.dir / "state.json").read_text())["started_at"] != ""
    assert not (s.dir / "monitor.sock").exists()
    logged = [json.loads(line) for line in (s.root / f"{s.id}.log").read_text().splitlines()]
    assert {(r["stream"], r["log"]) for r in logged} == {("stdout", "out\n"), ("stderr", "err\n")}


def test_illegal_moves_are_conflicts_on_the_wire(shims: Any) -> None:
    s = shims({"args": ["sleep", "30"]})
    s.created()
    ctl = s.control()
    r = ctl.request("pause")
    assert ctl.event("reply", r)["kind"] == "conflict"  # created: not running yet
    r = ctl.request("signal", signal=15)
    reply = ctl.event("reply", r)
    assert (reply["kind"], reply["error"]) == ("conflict", f"signal container {s.id}: the process is not running")
    r = ctl.request("start")
    assert ctl.event("reply", r)["error"] == ""
    r = ctl.request("start")
    reply = ctl.event("reply", r)
    assert (reply["kind"], reply["error"]) == ("conflict", f"start container {s.id}: already started")
    r = ctl.request("resume")
    assert ctl.event("reply", r)["error"] == f"resume container {s.id}: the container is not paused"
    r = ctl.request("pause")
    assert ctl.event("reply", r)["error"] == ""
    attach = s.connect({"op": "attach"})
    assert attach.event("attached")["paused"] is True
    ex = s.connect({"op": "exec", "process": {"args": ["true"]}})
    err = ex.event()
    assert err == {"event": "error", "exit_code": 126,
                   "message": f"container {s.id} is paused, unpause the container before exec"}
    r = ctl.request("signal", signal=9)  # SIGKILL thaws a paused container first
    assert ctl.event("reply", r)["error"] == ""
    assert s.daemon.event("exit")["exit_code"] == 137


def _nothing_yet(client: Client) -> bool:
    """True while the shim has sent this client nothing (what it holds back, it holds)."""
    ready, _, _ = select.select([client.sock], [], [], 0)
    return not ready and not client.frames


def test_a_stuck_exec_holds_up_neither_output_nor_requests(shims: Any) -> None:
    s = shims({"args": ["sh", "-c", "while true; do echo tick; sleep 0.05; done"], "exec_stall": "stall"},
              env={"BERTH_TEST_HELPER_TIMEOUT": "5"})
    s.created()
    s.start()
    stuck = s.connect({"op": "exec", "process": {"args": ["stall"]}})
    # while the exec is being made (and never will be), the init's output flows ...
    for _ in range(5):
        s.daemon.output_until(b"tick\n")
    # ... another exec runs ...
    ok = s.connect({"op": "exec", "process": {"args": ["sh", "-c", "echo other"]}})
    assert ok.event("started")["pid"] > 0
    assert ok.output_until(b"other\n") == b"other\n"
    assert ok.event("exit")["exit_code"] == 0
    # ... and requests are answered, all before the stuck one's deadline
    ctl = s.control()
    r = ctl.request("resize", h=10, w=20)
    assert ctl.event("reply", r)["error"] == ""
    assert _nothing_yet(stuck), "the stuck exec was answered before the others: the shim waited for it"
    stuck.sock.settimeout(15)
    err = stuck.event()
    assert err == {"event": "error", "exit_code": 126, "message": "fake runtime gave no answer in 5 s"}


def test_a_slow_pause_is_answered_later_and_the_next_one_waits_its_turn(shims: Any, tmp_path: Path) -> None:
    gate = tmp_path / "gate"  # the fake's pause is made only once this exists
    s = shims({"args": ["sh", "-c", "while true; do echo tick; sleep 0.05; done"], "pause_gate": str(gate)})
    s.created()
    s.start()
    ctl, other = s.control(), s.control()
    first = ctl.request("pause")
    r = ctl.request("resize", h=1, w=1)
    assert ctl.event("reply", r)["error"] == ""  # a resize passes the pause in the making ...
    # ... so the shim has read the first pause (a connection's frames are read in order) before
    # the second is sent: two connections' frames have no order of their own
    second = other.request("pause")  # queued behind the first: refused once that one is done
    s.daemon.output_until(b"tick\n")  # output flows while the pause is being made
    r = other.request("resize", h=2, w=2)
    assert other.event("reply", r)["error"] == ""
    assert _nothing_yet(ctl), "the pause was answered before it was made"
    gate.touch()
    assert ctl.event("reply", first)["error"] == ""
    reply = other.event("reply", second)
    assert (reply["kind"], reply["error"]) == ("conflict", f"pause container {s.id}: the container is already paused")
    r = ctl.request("resume")
    assert ctl.event("reply", r)["error"] == ""
    s.daemon.output_until(b"tick\n")


def test_exec_output_stdin_exit_code_and_a_missing_program(shims: Any) -> None:
    s = shims({"args": ["sleep", "30"]})
    s.created()
    s.start()
    ex = s.connect({"op": "exec", "process": {"args": ["sh", "-c", "read l; echo got $l; exit 4"]}, "stdin": True})
    ex.send(P.STDIN, b"abc\n")  # may come before the process exists: held until it does
    assert ex.event("started")["pid"] > 0
    assert ex.output_until(b"got abc\n") == b"got abc\n"
    assert ex.event("exit") == {"event": "exit", "exit_code": 4}
    missing = s.connect({"op": "exec", "process": {"args": ["/nonexistent/prog"]}})
    err = missing.event()
    assert err["event"] == "error" and err["exit_code"] == 127 and "/nonexistent/prog" in err["message"]


def test_start_of_a_missing_program_is_a_start_error(shims: Any) -> None:
    s = shims({"args": ["/nonexistent/init"]})
    s.created()
    ctl = s.control()
    r = ctl.request("start")
    reply = ctl.event("reply", r)
    assert reply["kind"] == "start:127" and "/nonexistent/init" in reply["error"]
    assert s.daemon.event("exit")["exit_code"] == 127


def test_tty_master_comes_over_the_console_socket(shims: Any) -> None:
    s = shims({"args": ["sh", "-c", "stty size; read l; echo got $l"]}, tty=True, open_stdin=True)
    s.created()
    ctl = s.control()
    r = ctl.request("resize", h=33, w=77)
    assert ctl.event("reply", r)["error"] == ""
    s.start()
    assert b"33 77" in s.daemon.output_until(b"33 77")
    s.daemon.send(P.STDIN, b"x\n")
    assert b"got x" in s.daemon.output_until(b"got x")
    assert s.daemon.event("exit")["exit_code"] == 0


def test_daemon_gone_before_start_kills_the_container_and_says_so(shims: Any) -> None:
    s = shims({"args": ["sleep", "30"]})
    pid = s.created()["pid"]
    s.daemon.close()
    record = s.exit_record()
    assert (record["exit_code"], record["error"]) == (128, "daemon went away before start")
    assert not harness.pid_alive(pid)


def test_sigterm_to_the_shim_stops_the_container_and_records_it(shims: Any) -> None:
    s = shims({"args": ["sleep", "30"]})
    pid = s.created()["pid"]
    s.start()
    s.proc.send_signal(signal.SIGTERM)
    assert s.daemon.event("exit")["exit_code"] == 137
    record = s.exit_record()
    assert (record["exit_code"], record["error"]) == (137, "monitor stopped by SIGTERM")
    assert not harness.pid_alive(pid)


def test_a_slow_client_holds_output_back_and_loses_nothing(shims: Any) -> None:
    size = 8 << 20  # well past HIGH_WATER: the shim must stop reading the process for a while
    s = shims({"args": ["sh", "-c", f"head -c {size} /dev/zero; echo; echo done"]})
    s.created()
    s.start()
    time.sleep(0.5)  # the client reads nothing for a while: the process blocks, nothing is dropped
    got = 0
    while True:
        frame = s.daemon.next()
        assert frame is not None
        if frame[0] == P.STDOUT:
            got += len(frame[1])
        elif frame[0] == P.CONTROL and json.loads(frame[1]).get("event") == "exit":
            break
    assert got == size + len(b"\ndone\n")
    assert s.exit_record()["exit_code"] == 0


def test_reattach_after_the_daemon_connection_closed(shims: Any) -> None:
    s = shims({"args": ["sh", "-c", "read l; echo got $l"]}, open_stdin=True)
    pid = s.created()["pid"]
    s.start()
    s.daemon.close()  # after start the shim lives on, as after a daemon restart
    again = s.connect({"op": "attach"})
    hello = again.event("attached")
    assert (hello["pid"], hello["started"], hello["paused"]) == (pid, True, False)
    again.send(P.STDIN, b"y\n")
    assert again.output_until(b"got y\n") == b"got y\n"
    assert again.event("exit")["exit_code"] == 0
