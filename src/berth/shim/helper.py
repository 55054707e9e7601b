"""Short-lived helper processes that do the shim's heavy work, so the shim stays small.

A forked Python copies every page it writes; parsing an OCI spec, building namespaces and
walking cgroup trees touch hundreds of them. The shim therefore forks a helper for such work:
the helper runs ``body(res_w, go_r)``, answers JSON lines on its result pipe and exits; the
process it forked, if any, is reparented to the shim (a child subreaper), which reaps it as
its own. The shim never waits for a helper: :class:`HelperOp` is a runtime :class:`Op` whose fd
the reactor polls with a deadline.

    helper = Helper(lambda res_w, go_r: answer(res_w, {"result": work()}))
    op = HelperOp(helper)          # reactor: when op.fd is readable, op.poll() -> Result | None

A helper may answer twice: ``{"pid": N}`` when what it made waits at a barrier, then, after
``release()``, its second line.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from berth.libcontainer import kernel
from berth.shim import protocol as P
from berth.shim.runtime import Result

DIED = "container helper process died (see monitor.log)"
# A standby's work prepared ahead (:class:`Standby`): done in the standby, before its work
# comes; returns what undoes it should no work come (or None). Its argument says whether the
# work has come meanwhile (then what is left of the preparing is better skipped).
Ahead = Callable[[Callable[[], bool]], Callable[[], None] | None]
AHEAD_DELAY = 0.005  # seconds a standby waits for its work before it prepares ahead
# A standby's twin (:class:`Standby`): forks, ahead of the work, the process in which the
# standby's waiting, its work prepared ahead and, mostly, its work go on -- the container's init
# to be, say, in a pid namespace of its own. Returns the twin's pid in the standby, 0 in the
# twin, -1 where none was forked.
Twin = Callable[[], int]


class Helper:
    """A forked child running ``body(res_w, go_r)``: its answers come on ``res_r``; one byte on
    ``go_w`` (``release()``) lets it go on; closing ``go_w`` tells it to give up."""

    __slots__ = ("pid", "res_r", "go_w")

    def __init__(self, body: Callable[[int, int], None]) -> None:
        res_r, res_w = os.pipe2(os.O_CLOEXEC)
        go_r, go_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.set_wakeup_fd(-1)
                os.close(res_r)
                os.close(go_w)
                body(res_w, go_r)
                code = 0
            finally:
                os._exit(code)
        os.close(res_w)
        os.close(go_r)
        os.set_blocking(res_r, False)
        self.pid, self.res_r, self.go_w = pid, res_r, go_w

    def release(self) -> bool:
        """Tell the helper to go on; False if it is gone."""
        try:
            os.write(self.go_w, b"g")
        except BrokenPipeError:
            return False
        return True

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it answered and exited meanwhile

    def close(self) -> None:
        """Close the pipes (a helper waiting for ``release`` then gives up and exits). The
        shim's SIGCHLD handling reaps it: a killed helper in a frozen cgroup dies only when
        thawed, so nobody waits for it here."""
        for fd in (self.res_r, self.go_w):
            if fd >= 0:
                os.close(fd)
        self.res_r = self.go_w = -1


class Standby:
    """A helper forked ahead of need, so that the work it will do pays for no fork when it comes.

    It waits on a socket for one message -- a JSON object, bytes and fds (``SCM_RIGHTS``) -- then
    runs ``body(msg, data, fds, res_w, go_r)`` and exits; ``give`` returns it as a
    :class:`Helper`. A standby that is never given work exits when ``dismiss`` closes its socket.

        standby = Standby(body)                  # before the work is known
        helper = standby.give(msg, data, fds)    # the fds are the caller's still: close them after
    """

    __slots__ = ("pid", "sock", "res_r", "go_w", "on_gone")

    def __init__(self, body: Callable[[dict[str, Any], bytes, list[int], int, int], None],
                 ahead: Ahead | None = None, on_gone: Callable[[int], None] | None = None,
                 twin: Twin | None = None) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        res_r, res_w = os.pipe2(os.O_CLOEXEC)
        go_r, go_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.set_wakeup_fd(-1)
                for fd in (res_r, go_w):
                    os.close(fd)
                ours.close()
                # Work prepared ahead is done only once the standby has waited AHEAD_DELAY for
                # its work in vain (the daemon hands the spare its connection 50 ms after the
                # create before: that container is started by then), and step by step, looking
                # for its work in between: in a loop of `docker run` the next create comes
                # ~60 ms after the one before.
                # a twin is forked at once: a spare is forked when the daemon hands it its
                # connection, 5-10 ms before the create in a loop of `docker run`
                quiet = not _readable(theirs, 0 if twin is not None else AHEAD_DELAY)
                if quiet and twin is not None and _split(twin, theirs, body, res_w, go_r):
                    code = 0
                    return  # the standby's part is done (the twin's goes on below, in the twin)
                undo = ahead(lambda: _readable(theirs, 0)) if ahead is not None and quiet else None
                work = _receive(theirs)
                theirs.close()
                if work is not None:
                    body(work[0], work[1], work[2], res_w, go_r)
                elif undo is not None:
                    undo()
                code = 0
            finally:
                os._exit(code)
        theirs.close()
        os.close(res_w)
        os.close(go_r)
        os.set_blocking(res_r, False)
        self.pid, self.sock, self.res_r, self.go_w = pid, ours, res_r, go_w
        self.on_gone = on_gone  # after dismiss: clean up what a killed standby could not

    def give(self, msg: dict[str, Any], data: bytes, fds: list[int]) -> Helper:
        """Hand the standby its work; OSError if it is gone (the caller forks a helper instead)."""
        try:
            _send(self.sock, msg, data, fds)
        finally:
            self.sock.close()
        helper = Helper.__new__(Helper)
        helper.pid, helper.res_r, helper.go_w = self.pid, self.res_r, self.go_w
        return helper

    def dismiss(self) -> None:
        """No work after all: the standby exits; wait for it (it is our child)."""
        self.sock.close()
        for fd in (self.res_r, self.go_w):
            os.close(fd)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass  # reaped already
        if self.on_gone is not None:
            self.on_gone(self.pid)


def _send(sock: socket.socket, msg: dict[str, Any], data: bytes, fds: list[int]) -> None:
    """A standby's work on ``sock``, as :func:`_receive` takes it."""
    head = P.dumps(msg)
    rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)
    sock.sendmsg([len(head).to_bytes(4, "big"), len(data).to_bytes(4, "big"), head],
                 [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
    sock.sendall(data)


# The twin's word to its standby, on their socket: it took the work (and is on its way to
# become what the work makes), or it hands the work back (the work follows, as given).
TOOK, BACK = b"t", b"b"


class _TwinEnd:
    """In a standby's twin: the way back to its standby (one per process); ``after``: once the
    twin took its work, what its standby waits on to exit (:func:`twin_hold`)."""

    sock: socket.socket | None = None
    after: socket.socket | None = None


_twin = _TwinEnd()


def _split(twin: Twin, theirs: socket.socket, body: Callable[[dict[str, Any], bytes, list[int], int, int], None],
           res_w: int, go_r: int) -> bool:
    """In a standby: fork its twin, which waits for the work from now on. True in the standby,
    once the twin is done with it: it took the work, handed it back (then done here), or was
    dismissed (then reaped here, so that whoever waits for the standby finds both gone). False
    in the twin, and where none was forked: the caller goes on as a standby."""
    back, forth = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        pid = twin()
    except BaseException:
        back.close()
        forth.close()
        raise
    if pid < 0:
        back.close()
        forth.close()
        return False
    if pid == 0:
        back.close()
        _twin.sock = forth
        return False
    forth.close()
    theirs.close()  # the twin's now
    word = back.recv(1)
    if word == BACK:
        work = _receive(back)
        if work is not None:
            body(work[0], work[1], work[2], res_w, go_r)
    elif word == TOOK:
        # The twin goes on as the container's init; this process exits once the init said READY
        # (:func:`twin_hold`), into the wait for the start (the shim waits for it before the
        # start): an exit now, a process torn down and the shim woken, ran beside the init's
        # own setting up on the two CPUs.
        kernel.wait_for_eof(back)
    else:
        while True:  # dismissed (or dead): it leaves nothing behind, and neither do we
            try:
                os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
            except ChildProcessError:
                break
    back.close()
    return True


def twin_of_standby() -> bool:
    """Whether this process is a standby's twin (its work not yet taken or handed back)."""
    return _twin.sock is not None


def twin_took() -> None:
    """In a standby's twin: it does the work itself; its standby exits (it was forked by the
    standby, which the caller waits for: no longer for this process)."""
    sock, _twin.sock = _twin.sock, None
    if sock is not None:
        try:
            sock.sendall(TOOK)
        except OSError:
            sock.close()  # the standby was killed: nobody to tell (the work goes on)
        else:
            _twin.after = sock  # its standby waits for it to close (twin_hold)


def twin_hold() -> int:
    """In a standby's twin that took its work and is about to become the container's init: the
    descriptor its standby waits on (the init closes it once it said READY: the standby then
    exits), -1 where there is none; the caller's from now on (close-on-exec, above 2)."""
    sock, _twin.after = _twin.after, None
    if sock is None:
        return -1
    fd = sock.detach()
    if fd > 2:
        return fd
    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)  # clear of the stdio the init puts on 0-2
    finally:
        os.close(fd)


def twin_hands_back(msg: dict[str, Any], data: bytes, fds: list[int]) -> None:
    """In a standby's twin: the standby does the work after all (as it was given); the twin's
    copies of ``fds`` are closed here."""
    sock, _twin.sock = _twin.sock, None
    try:
        if sock is not None:
            sock.sendall(BACK)
            _send(sock, msg, data, fds)
    finally:
        if sock is not None:
            sock.close()
        for fd in fds:
            os.close(fd)


def _readable(sock: socket.socket, seconds: float) -> bool:
    """Whether ``sock`` has something to read (or EOF) within ``seconds``."""
    return bool(select.select([sock], [], [], seconds)[0])


def _receive(sock: socket.socket) -> tuple[dict[str, Any], bytes, list[int]] | None:
    """The standby's work: the message, the bytes and the fds; None at EOF (dismissed)."""
    # close-on-exec as the sender's were: the init execs with only what it dup'ed for itself
    sizes, ancdata, _flags, _addr = sock.recvmsg(8, socket.CMSG_SPACE(16 * 4), socket.MSG_CMSG_CLOEXEC)
    fds = [int.from_bytes(data[i : i + 4], sys.byteorder)
           for level, kind, data in ancdata if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
           for i in range(0, len(data) - len(data) % 4, 4)]
    if len(sizes) < 8:
        sizes += _read_exactly(sock, 8 - len(sizes))
        if len(sizes) < 8:
            return None  # dismissed: EOF
    head_size, data_size = int.from_bytes(sizes[:4], "big"), int.from_bytes(sizes[4:], "big")
    head, data = _read_exactly(sock, head_size), _read_exactly(sock, data_size)
    if len(head) < head_size or len(data) < data_size:
        return None
    return P.decode_json(head), data, fds


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


class HelperOp:
    """The helper's next answer line as a runtime operation; ``close_after``: the helper has
    nothing more to say, so its pipes are closed with the answer."""

    __slots__ = ("helper", "fd", "buf", "close_after", "on_result", "failed")

    def __init__(self, helper: Helper, close_after: bool = True,
                 on_result: Callable[[Result], None] | None = None) -> None:
        self.helper = helper
        self.fd = helper.res_r
        self.buf = b""
        self.close_after = close_after
        self.on_result = on_result  # the runtime's own bookkeeping, before the shim sees it
        self.failed = False

    def poll(self) -> Result | None:
        try:
            chunk = os.read(self.fd, 4096)
        except BlockingIOError:
            return None
        self.buf += chunk
        if chunk and not self.buf.endswith(b"\n"):
            return None
        if not self.buf:
            result = Result(error=DIED, exit_code=128)
        else:
            try:
                result = to_result(P.decode_json(self.buf))
            except ValueError:
                result = Result(error=f"container helper process answered garbage: {self.buf[:100]!r}", exit_code=128)
        self.buf = b""
        self.failed = not result.ok
        if self.on_result is not None:
            self.on_result(result)
        return result

    def close(self) -> None:
        if self.close_after or self.failed:
            self.helper.close()

    def abandon(self) -> None:
        self.helper.kill()
        self.helper.close()


def to_result(answer: dict[str, Any]) -> Result:
    """A helper's answer line: ``{"pid"}``, ``{"result"}``, ``{}`` or ``{"message", "exit_code"}``."""
    if answer.get("message"):
        return Result(error=str(answer["message"]), exit_code=int(answer.get("exit_code", 128)))
    return Result(pid=int(answer.get("pid") or 0), value=answer.get("result"))


def answer(fd: int, obj: dict[str, Any]) -> None:
    """In a helper: one answer line."""
    os.write(fd, P.dumps(obj) + b"\n")
