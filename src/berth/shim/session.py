"""The monitor's state for one process (:class:`Session`) and one client connection (:class:`Conn`).

A Session is the container's init or one exec'd process: its pid, the monitor's ends of its
stdio (pipe ends, or the pty master that is both stdin and output), stdin held until start, the
connections its output goes to, and its wait status once reaped. ``make_stdio`` makes both ends:
the container's as a libcontainer ``Stdio`` and the monitor's in a new Session.

    stdio, sess, child_fds = make_stdio(tty=False, open_stdin=True)
    ... fork the process with stdio ...; then close child_fds in the monitor

With a tty the pty is the container's, as with runc: the process opens /dev/ptmx in the
container's own devpts (so ``tty`` inside prints /dev/pts/N) and sends the master back over a
console socket; once the process exists, ``take_master`` puts it in the Session.

    stdio, sess, child_fds = make_stdio(tty=True, open_stdin=True)
    ... fork the process with stdio (it sends the master before it is ready) ...
    take_master(sess)       # OSError if it did not
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from berth.container.logs import LogWriter
from berth.libcontainer import Stdio
from berth.shim import protocol as P


def atomic_write_json(path: str, obj: Any) -> None:
    """write + fsync + rename, so a reader sees the old file or the whole new one."""
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, P.dumps(obj))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


class Refused(Exception):
    """A control op the monitor will not do; ``kind`` is conflict | invalid | system."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Conn:
    """One client connection: frames in, frames out (with an unsent buffer)."""

    __slots__ = ("sock", "fd", "decoder", "out", "out_len", "role", "session", "closed", "close_when_flushed")

    def __init__(self, sock: socket.socket, role: str) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()
        self.decoder = P.FrameDecoder()
        self.out: list[bytes | memoryview] = []  # unsent buffers, sent with one sendmsg
        self.out_len = 0
        self.role = role  # "new" until the hello, then "daemon" | "attach" | "exec"
        self.session: Session | None = None
        self.closed = False
        self.close_when_flushed = False


class Session:
    """A process and its stdio: the container's init, or one exec'd process."""

    __slots__ = (
        "pid", "tty", "master", "stdin_fd", "outputs", "stdin_buf", "stdin_eof", "started",
        "status", "conns", "log", "throttled", "deadline", "done", "stdin_waiters", "console",
        "open_stdin",
    )

    def __init__(self, tty: bool) -> None:
        self.pid = 0
        self.tty = tty
        self.master = -1
        self.stdin_fd = -1
        self.outputs: dict[int, int] = {}  # fd -> stream (1|2) still open for reading
        self.stdin_buf = bytearray()
        self.stdin_eof = False
        self.started = False
        self.status: int | None = None
        self.conns: list[Conn] = []
        self.log: LogWriter | None = None
        self.throttled = False
        self.deadline: float | None = None
        self.done = False
        self.stdin_waiters: list[Conn] = []  # connections not read while stdin_buf is too full
        self.console: socket.socket | None = None  # our end of the console socket, until take_master
        self.open_stdin = False


def make_stdio(tty: bool, open_stdin: bool) -> tuple[Stdio, Session, list[int]]:
    """The container's ends as a Stdio, our ends in a Session, and the fds to close after fork."""
    sess = Session(tty)
    if tty:
        # runc's console socket: the process makes the pty in the container and sends the master
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        sess.console = ours
        sess.open_stdin = open_stdin
        fd = theirs.detach()
        return Stdio(-1, -1, -1, tty=True, console_socket=fd), sess, [fd]
    if open_stdin:
        in_r, in_w = os.pipe()
        os.set_blocking(in_w, False)
        sess.stdin_fd = in_w
    else:
        in_r = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    os.set_blocking(out_r, False)
    os.set_blocking(err_r, False)
    sess.outputs = {out_r: P.STDOUT, err_r: P.STDERR}
    return Stdio(in_r, out_w, err_w), sess, [in_r, out_w, err_w]


def take_master(sess: Session) -> None:
    """Receive the pty master the process sent over the console socket (it is there once the
    process is ready: libcontainer sends it before) and make it the Session's stdin and output.
    Raises OSError if it is not there."""
    sock, sess.console = sess.console, None
    if sock is None:
        return
    try:
        # recvmsg, not socket.recv_fds: that one imports the array module into the monitor
        _msg, ancdata, _flags, _addr = sock.recvmsg(
            64, socket.CMSG_SPACE(4), socket.MSG_DONTWAIT | socket.MSG_CMSG_CLOEXEC
        )
    except BlockingIOError:
        raise OSError("the process sent no pty master over the console socket") from None
    finally:
        sock.close()
    fds = [int.from_bytes(data[:4], sys.byteorder)
           for level, kind, data in ancdata if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS]
    if not fds:
        raise OSError("the process sent no pty master over the console socket")
    master = fds[0]
    os.set_blocking(master, False)
    sess.master = master
    sess.stdin_fd = master if sess.open_stdin else -1
    sess.outputs = {master: P.STDOUT}


def close_console(sess: Session) -> None:
    """Drop the console socket of a process that was never made."""
    if sess.console is not None:
        sess.console.close()
        sess.console = None


def exit_code_of(status: int) -> int:
    """Docker's exit code: the process's status, or 128+N after signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code
