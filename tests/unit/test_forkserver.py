"""The fork server as a process: ready after its imports, one monitor per spawn, gone at EOF."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import harness
from berth.shim import protocol as P
from berth.shim.cgroupwarm import own_procs_file
from berth.shim.warmup import POOL_SIZE, fill_heap_holes, fill_pool_holes, move_classes


def start_forkserver(env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], socket.socket]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    proc = subprocess.Popen([sys.executable, "-m", "berth.shim.forkserver", str(theirs.fileno())],
                            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})
    theirs.close()
    ours.settimeout(60)
    assert ours.recv(16) == b"ready"
    return proc, ours


def test_ready_then_exits_when_the_daemon_closes_its_end() -> None:
    proc, ctl = start_forkserver()
    try:
        with open(f"/proc/{proc.pid}/comm") as f:
            assert f.read().strip() == "berth-forksrv"
        # it warmed up at nice 19 (as root) and set itself back before serving: what it forks
        # (the monitors) inherits its nice value
        with open(f"/proc/{proc.pid}/stat") as f:
            assert int(f.read().rsplit(")", 1)[1].split()[16]) == 0
    finally:
        ctl.close()
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None
        proc.stderr.close()


def test_a_monitor_given_a_bad_request_exits_and_the_daemon_reads_eof() -> None:
    proc, ctl = start_forkserver()
    try:
        mine, monitors = socket.socketpair()
        socket.send_fds(ctl, [b"spawn"], [monitors.fileno()])
        monitors.close()  # the fork server and the monitor hold it now
        mine.settimeout(30)
        mine.sendall(P.encode(P.STDIN, b"not a create request"))
        mine.shutdown(socket.SHUT_WR)
        assert mine.recv(100) == b""  # the monitor gave up: EOF, no answer
        mine.close()
        # garbage on the control socket is ignored; the fork server still serves
        ctl.send(b"nonsense")
        again, theirs = socket.socketpair()
        socket.send_fds(ctl, [b"spawn"], [theirs.fileno()])
        theirs.close()
        again.settimeout(30)
        again.close()  # EOF before any request: that monitor exits too
    finally:
        ctl.close()
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None
        proc.stderr.close()


def test_fill_pool_holes_fills_free_blocks() -> None:
    """Holes made on purpose (every other block of 400 in one size class freed) are all filled:
    the next object of that class is the first block of a fresh pool (its header's count, read
    from /proc/self/mem, is 1)."""
    made = [bytes([i % 251]) * 100 for i in range(400)]  # 133-byte requests: the 144-byte class
    del made[::2]
    fillers = fill_pool_holes()
    assert sum(1 for b in fillers if isinstance(b, bytes) and len(b) == 144 - 33) >= 200
    fresh = bytes([7]) * 100
    with open("/proc/self/mem", "rb", buffering=0) as mem:
        mem.seek(id(fresh) & ~(POOL_SIZE - 1))
        assert int.from_bytes(mem.read(4), sys.byteorder) == 1
    del fillers, made, fresh


def test_fill_heap_holes_fills_free_chunks_of_the_c_heap() -> None:
    """Free chunks made on purpose (every third of 60 5000-byte objects, above pymalloc's 512
    bytes, freed) are filled: a filler of their exact size (malloc(5033) is a 5056-byte chunk),
    or a larger one where a hole merged with free space beside it, or a smaller one where a small
    malloc meanwhile split it (the walk itself opens /proc/self/maps) -- the middle of each hole
    is inside a filler."""
    made = [bytes([i % 251]) * 5000 for i in range(60)]
    middles = [id(b) + 2500 for b in made[::3]]
    del made[::3]
    fillers = fill_heap_holes()
    spans = [(id(b), id(b) + 33 + len(b)) for b in fillers if isinstance(b, bytes)]
    assert sum(1 for m in middles if any(lo <= m < hi for lo, hi in spans)) >= 18
    assert sum(1 for b in fillers if isinstance(b, bytes) and len(b) == 5056 - 41) >= 5  # exact fits
    del fillers, made


def test_the_spare_shim_and_its_standby_helper_go_with_the_fork_server() -> None:
    """A spare shim (and the create helper it forked ahead) waits for the next container; when
    the daemon goes, the fork server does not exit before they have: nothing is left behind."""
    mark = Path(f"/nonexistent/forkserver-{uuid.uuid4().hex}")
    proc, ctl = start_forkserver({harness.MARKER_VAR: str(mark)})
    try:
        # the fork server, its spare shim and the spare's standby helper (and, where cgroups are
        # mounted, its cgroup-migration warmer, berth.shim.cgroupwarm)
        expected = 4 if own_procs_file() is not None else 3
        harness.eventually(lambda: len(harness.pids_with_marker(mark)) == expected, 10)
        waiting = set(harness.pids_with_marker(mark)) - {proc.pid}
        assert all(Path(f"/proc/{pid}/comm").read_text().strip() == "berth-forksrv" for pid in waiting)
    finally:
        ctl.close()
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None
        proc.stderr.close()
    assert harness.pids_with_marker(mark) == []


def test_a_connection_handed_ahead_waits_in_the_spare_and_no_next_spare_is_forked_until_asked() -> None:
    """``ahead``: the daemon's next connection goes to the spare, which waits for its create
    request; the fork server forks the next spare only when the next request comes. A ``kick``
    is no request. The daemon letting that connection go ends the shim and its standby."""
    mark = Path(f"/nonexistent/forkserver-{uuid.uuid4().hex}")
    proc, ctl = start_forkserver({harness.MARKER_VAR: str(mark)})
    warmer = 1 if own_procs_file() is not None else 0
    try:
        harness.eventually(lambda: len(harness.pids_with_marker(mark)) == 3 + warmer, 10)
        mine, theirs = socket.socketpair()
        socket.send_fds(ctl, [b"ahead"], [theirs.fileno()])
        theirs.close()
        ctl.send(b"kick")
        # the daemon lets go: the waiting shim dismisses its standby and exits; and no spare
        # was forked after the hand (one would stay, with its standby)
        mine.close()
        harness.eventually(lambda: len(harness.pids_with_marker(mark)) == 1 + warmer, 10)
        # the next request gets a spare forked for it, which serves it
        again, theirs = socket.socketpair()
        socket.send_fds(ctl, [b"spawn"], [theirs.fileno()])
        theirs.close()
        harness.eventually(lambda: len(harness.pids_with_marker(mark)) == 3 + warmer, 10)
        again.close()
        harness.eventually(lambda: len(harness.pids_with_marker(mark)) == 1 + warmer, 10)
    finally:
        ctl.close()
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None
        stderr = proc.stderr.read()
        proc.stderr.close()
    assert harness.pids_with_marker(mark) == []
    assert b"Traceback" not in stderr, stderr.decode()


def test_a_commands_background_warming_moves_nothing() -> None:
    """berth-runtime's warming thread (berth.libcontainer.cgroups.warm) migrates the command into
    the cgroup it is already in, again and again for half a second: nothing moves."""
    import time

    import pytest

    from berth.libcontainer.cgroups import warm

    if warm.CgroupWarmer.of_self() is None:
        pytest.skip("no cgroup hierarchy mounted: nothing to warm")
    from pathlib import Path

    before = Path("/proc/self/cgroup").read_text()
    warm.warm_in_background()
    time.sleep(0.05)  # a few touches
    assert Path("/proc/self/cgroup").read_text() == before


def test_stop_warming_ends_the_touches(monkeypatch) -> None:
    """Once the container's processes have joined (stop_warming), the thread touches no more."""
    import threading
    import time

    from berth.libcontainer.cgroups import warm

    touches: list[float] = []

    class Counting:
        def touch(self) -> None:
            touches.append(time.monotonic())

    monkeypatch.setattr(warm, "_done", False)
    monkeypatch.setattr(warm, "SPAN", 30.0)
    thread = threading.Thread(target=warm._keep_warm, args=(Counting(),))
    thread.start()
    time.sleep(0.03)
    assert touches  # it touches while the joins are to come
    warm.stop_warming()
    thread.join(timeout=2)
    assert not thread.is_alive()
    count = len(touches)
    time.sleep(0.02)
    assert len(touches) == count


def test_move_classes_remakes_a_class_and_rebinds_every_modules_name_for_it() -> None:
    """A moved class is a new type object, bound under its names in every module, with its
    slots, methods and zero-argument super() working; a class with a subclass stays."""
    import types

    mod, other = types.ModuleType(f"mc_{uuid.uuid4().hex}"), types.ModuleType(f"mc_{uuid.uuid4().hex}")
    exec("class Base:\n    __slots__ = ()\n    def hi(self):\n        return 'base'\n"
         "class Thing(Base):\n    __slots__ = ('a',)\n    kind = 'k'\n"
         "    def __init__(self, a):\n        self.a = a\n"
         "    def hi(self):\n        return super().hi() + str(self.a)\n"
         "class Kept:\n    pass\nclass Sub(Kept):\n    pass\n", vars(mod))
    old, kept = mod.Thing, mod.Kept
    other.Alias = old
    sys.modules[mod.__name__], sys.modules[other.__name__] = mod, other
    try:
        assert move_classes(((mod.__name__, "Thing"), (mod.__name__, "Kept"))) == 1
        new = mod.Thing
        assert new is not old and other.Alias is new and mod.Kept is kept
        thing = new(7)
        assert type(thing) is new and thing.hi() == "base7" and thing.kind == "k" and thing.a == 7
        assert new.__qualname__ == "Thing" and not hasattr(thing, "__dict__")
    finally:
        del sys.modules[mod.__name__], sys.modules[other.__name__]
