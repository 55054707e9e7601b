"""A fake :class:`~berth.shim.runtime.Runtime` for testing the shim without root or namespaces.

Its "container" is a plain child process of the shim, made and driven the way a real runtime
does it: forked at a barrier (a pipe) with the shim's stdio, released by ``start`` to exec the
plan's command, signalled with ``kill(2)``, paused with SIGSTOP and resumed with SIGCONT. With
a tty it opens a pty, makes it its controlling terminal and sends the master over the console
socket, as a container's process does. The plan (the create request's body, JSON) can make
operations slow or stuck, to show that the shim never waits for them::

    {"args": ["sh", "-c", "echo hi"],   # the init's command
     "pause_gate": "/tmp/x/gate",       # pause answers only once that file exists (a helper's work)
     "exec_stall": "stall"}             # an exec of this program never answers

Run a shim on it (the fork server is not needed)::

    python -c 'import sys; from berth.shim import fake; fake.run(int(sys.argv[1]))' FD
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from typing import Any

from berth.libcontainer import Stdio
from berth.shim.helper import Standby
from berth.shim.runtime import Done, Op, Result, RuntimeState

READY = b"READY\n"


class LineOp:
    """The first line (or EOF) on a pipe from a child, turned into a Result by ``parse``."""

    __slots__ = ("fd", "buf", "parse", "child", "keep")

    def __init__(self, fd: int, parse: Any, child: int = 0, keep: bool = False) -> None:
        os.set_blocking(fd, False)
        self.fd, self.parse, self.child, self.keep = fd, parse, child, keep
        self.buf = b""

    def poll(self) -> Result | None:
        try:
            chunk = os.read(self.fd, 4096)
        except BlockingIOError:
            return None
        self.buf += chunk
        if chunk and not self.buf.endswith(b"\n"):
            return None
        result: Result = self.parse(self.buf)
        self.buf = b""
        return result

    def close(self) -> None:
        if not self.keep:
            os.close(self.fd)

    def abandon(self) -> None:
        if self.child:
            try:
                os.kill(self.child, signal.SIGKILL)
            except ProcessLookupError:
                pass  # it finished meanwhile
        os.close(self.fd)


def _error(line: bytes, default_code: int) -> Result:
    try:
        obj = json.loads(line)
        return Result(error=str(obj["message"]), exit_code=int(obj.get("exit_code", default_code)))
    except (ValueError, KeyError, TypeError):
        return Result(error=f"fake runtime: garbage from the child: {line[:80]!r}", exit_code=default_code)


class FakeRuntime:
    """One fake container: a child process at a barrier, then its command."""

    worker = "fake runtime"

    def __init__(self, req: dict[str, Any], body: bytes, standby: Standby | None = None) -> None:
        if standby is not None:
            standby.dismiss()  # a fake makes its processes itself
        self.plan: dict[str, Any] = json.loads(body)
        self.pid = 0
        self._report = -1  # the init's report pipe: READY, then EOF (exec'd) or an error line
        self._barrier = -1

    def create(self, stdio: Stdio) -> Op:
        report_r, report_w = os.pipe2(os.O_CLOEXEC)
        barrier_r, barrier_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # pragma: no cover -- the child execs or exits
            os.close(report_r)
            os.close(barrier_w)
            _child(list(self.plan["args"]), stdio, report_w, barrier_r)
        os.close(report_w)
        os.close(barrier_r)
        self.pid, self._report, self._barrier = pid, report_r, barrier_w

        def parse(line: bytes) -> Result:
            if line == READY:
                return Result(pid=pid)
            return _error(line, 128) if line else Result(error="fake init died before it was ready", exit_code=128)

        return LineOp(report_r, parse, keep=True)

    def start(self) -> Op:
        try:
            os.write(self._barrier, b"g")
        except BrokenPipeError:
            return Done(Result(error="fake init exited before start", exit_code=128))
        finally:
            os.close(self._barrier)
            self._barrier = -1
        return LineOp(self._report, lambda line: _error(line, 127) if line else Result())

    def exec(self, process: dict[str, Any], stdio: Stdio) -> Op:
        args = list(process["args"])
        report_r, report_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # pragma: no cover -- the child execs or exits
            os.close(report_r)
            if args[0] == self.plan.get("exec_stall"):
                while True:  # a stuck exec: never answers
                    time.sleep(3600)
            _child(args, stdio, report_w, -1)
        os.close(report_w)
        return LineOp(report_r, lambda line: _error(line, 126) if line else Result(pid=pid), child=pid)

    def kill(self, pid: int, signum: int) -> Op:
        os.kill(pid or self.pid, signum)
        if not pid and self._barrier >= 0:
            os.close(self._barrier)  # a created container killed: its barrier goes with it
            self._barrier = -1
        return Done()

    def pause(self) -> Op:
        gate = self.plan.get("pause_gate")
        if not gate:
            os.kill(self.pid, signal.SIGSTOP)
            return Done()
        r, w = os.pipe2(os.O_CLOEXEC)
        shim = os.getpid()
        worker = os.fork()
        if worker == 0:  # pragma: no cover -- a slow worker, like a helper freezing a cgroup
            try:
                # the test opens the gate when it has seen what must come first: no clock decides
                while not os.path.exists(gate) and os.getppid() == shim:  # not past the shim's end
                    time.sleep(0.01)
                os.kill(self.pid, signal.SIGSTOP)
                os.write(w, b"{}\n")
            finally:
                os._exit(0)
        os.close(w)
        return LineOp(r, lambda line: Result() if line else Result(error="fake pause died", exit_code=128),
                      child=worker)

    def resume(self) -> Op:
        os.kill(self.pid, signal.SIGCONT)
        return Done()

    def state(self) -> Op:
        return Done(Result(value=RuntimeState("stopped")))

    def delete(self) -> Op:
        return Done()

    def reaped(self, pid: int, status: int) -> bool:
        return False  # its workers are helpers, whose statuses say nothing

    def close(self) -> None:
        for fd in (self._report, self._barrier):
            if fd >= 0:
                os.close(fd)


def _child(args: list[str], stdio: Stdio, report_w: int, barrier_r: int) -> None:  # pragma: no cover
    """In the forked child: stdio, READY, the barrier, exec; never returns."""
    try:
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        os.setsid()
        if stdio.tty:
            master, slave = os.openpty()
            import fcntl
            import termios

            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            with socket.socket(fileno=stdio.console_socket) as sock:
                rights = (socket.SOL_SOCKET, socket.SCM_RIGHTS, master.to_bytes(4, sys.byteorder))
                sock.sendmsg([b"/dev/pts/fake"], [rights])
            os.close(master)
            fds = [slave, slave, slave]
        else:
            fds = [stdio.stdin, stdio.stdout, stdio.stderr]
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        if barrier_r >= 0:
            os.write(report_w, READY)
            if not os.read(barrier_r, 1):
                os._exit(128)  # the shim gave up: do not run anything
        try:
            os.execvp(args[0], args)
        except OSError as exc:
            os.write(report_w, json.dumps({"message": f"exec {args[0]}: {exc.strerror}", "exit_code": 127}).encode() + b"\n")
            os._exit(127)
    finally:
        os._exit(128)


def run(fd: int) -> None:
    """A shim on the fake runtime, serving the daemon's end of a socketpair on ``fd``."""
    from berth.shim import main

    main.main(socket.socket(fileno=fd), FakeRuntime)
