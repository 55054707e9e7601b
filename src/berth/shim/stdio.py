"""The ends of a process's stdio: the container's (a libcontainer ``Stdio``) and the shim's.

``make_stdio`` makes both: the container's ends to fork the process with, the shim's in the
:class:`~berth.shim.process.Process` (pipe ends; stdin is /dev/null unless it is kept open).

    stdio, child_fds = make_stdio(proc, tty=False, open_stdin=True)
    ... fork the process with stdio ...; then close child_fds in the shim

With a tty the pty is the container's, as with runc: the process opens /dev/ptmx in the
container's own devpts (so ``tty`` inside prints /dev/pts/N) and sends the master back over a
console socket; once the process exists, ``take_master`` puts it in the Process.

    stdio, child_fds = make_stdio(proc, tty=True, open_stdin=True)
    ... fork the process with stdio (it sends the master before it is ready) ...
    take_master(proc)       # OSError if it did not
"""

from __future__ import annotations

import os
import socket
import sys

from berth.libcontainer import Stdio
from berth.shim import protocol as P
from berth.shim.process import Process


def make_stdio(sess: Process, tty: bool, open_stdin: bool) -> tuple[Stdio, list[int]]:
    """The container's ends as a Stdio (our ends go in ``sess``), and the fds to close after fork."""
    if tty:
        # runc's console socket: the process makes the pty in the container and sends the master
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        sess.console = ours
        sess.open_stdin = open_stdin
        fd = theirs.detach()
        return Stdio(-1, -1, -1, tty=True, console_socket=fd), [fd]
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
    return Stdio(in_r, out_w, err_w), [in_r, out_w, err_w]


def take_master(sess: Process) -> None:
    """Receive the pty master the process sent over the console socket (it is there once the
    process is ready: libcontainer sends it before) and make it the Process's stdin and output.
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


def close_console(sess: Process) -> None:
    """Drop the console socket of a process that was never made."""
    if sess.console is not None:
        sess.console.close()
        sess.console = None
