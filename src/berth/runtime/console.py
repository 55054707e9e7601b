"""``run``'s own console: with ``process.terminal`` and no ``--console-socket``, berth-runtime
is the console socket's other end, as ``runc run`` is -- it receives the container's pty master
and copies between it and our stdio until the process exits, our terminal made raw meanwhile
and its size passed on (at start and on SIGWINCH)."""

from __future__ import annotations

import os
import select
import socket
import struct
from typing import Any


class Console:
    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._ours = ours
        self.socket = theirs.detach()  # what init gets as its console socket
        self.master = -1
        self._saved: list[Any] | None = None

    def receive(self) -> None:
        """The pty master init sent (it does so before it waits for start)."""
        os.close(self.socket)
        self.socket = -1
        msg, ancillary, _, _ = self._ours.recvmsg(1024, socket.CMSG_SPACE(struct.calcsize("i")))
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                self.master = struct.unpack("i", data[: struct.calcsize("i")])[0]
        if self.master < 0:
            from berth.runtime.errors import CommandError

            raise CommandError(f"the container sent no terminal on its console socket ({msg!r})")

    def copy_until_exit(self, pid: int) -> int:
        """Copy stdin -> pty and pty -> stdout until the process exits; its wait status."""
        import fcntl
        import signal as _signal
        import termios
        import tty

        tty_in = os.isatty(0)
        if tty_in:
            self._saved = termios.tcgetattr(0)
            tty.setraw(0)
            self._resize()
            _signal.signal(_signal.SIGWINCH, lambda *_: self._resize())  # noqa: ARG005
        fcntl.fcntl(self.master, fcntl.F_SETFL, fcntl.fcntl(self.master, fcntl.F_GETFL) | os.O_NONBLOCK)
        pidfd = os.pidfd_open(pid)
        inputs = [self.master, pidfd, 0]
        try:
            while True:
                try:
                    ready, _, _ = select.select(inputs, [], [])
                except InterruptedError:
                    continue
                if 0 in ready:
                    data = os.read(0, 65536)
                    if data:
                        os.write(self.master, data)
                    else:
                        inputs.remove(0)  # our stdin ended; the process may go on
                if self.master in ready and not self._drain():
                    inputs.remove(self.master)
                if pidfd in ready:
                    self._drain()
                    return os.waitpid(pid, 0)[1]
        finally:
            os.close(pidfd)
            if tty_in:
                _signal.signal(_signal.SIGWINCH, _signal.SIG_DFL)
            self.close()

    def _drain(self) -> bool:
        """Copy what the pty has to stdout; False once it is closed."""
        while True:
            try:
                data = os.read(self.master, 65536)
            except BlockingIOError:
                return True
            except OSError:  # EIO: every slave fd is closed
                return False
            if not data:
                return False
            os.write(1, data)

    def _resize(self) -> None:
        import fcntl
        import termios

        try:
            size = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, size)
        except OSError:
            pass  # not a terminal any more, or the pty is gone: nothing to size

    def close(self) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, self._saved)
            self._saved = None
        for fd in (self.socket, self.master):
            if fd >= 0:
                os.close(fd)
        self.socket = self.master = -1
        self._ours.close()
