"""A user at a terminal: a command on a real pseudo-terminal, typed at key by key (tests only).

``harness.pty_run`` types one string and collects everything; this one waits for what the
program prints before typing on, as a person (or ``expect``) would:

    with Terminal(["docker", "run", "-it", "busybox", "sh"], d.env) as t:
        t.expect(b"/ # ")
        t.type(b"echo hi\\r")
        t.expect(b"hi\\r\\n")
        t.keys(b"\\x10", b"\\x11")              # ctrl-p, ctrl-q as two key presses
        assert t.wait() == 0
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import termios
import time


class Terminal:
    def __init__(self, argv: list[str], env: dict[str, str], rows: int = 30, cols: int = 100) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: argv on the pty's slave
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            os.execvpe(argv[0], argv, env)
        self.argv = argv
        self.pid = pid
        self.fd = fd
        self.out = b""  # everything the program printed
        self._seen = 0  # where the next expect() starts looking
        self.status: int | None = None

    def _read(self, deadline: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], max(0.0, min(deadline - time.monotonic(), 0.1)))
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # EIO: the program closed the terminal (it exited)
            return False
        self.out += chunk
        return bool(chunk)

    def expect(self, text: bytes, timeout: float = 15.0) -> bytes:
        """Wait until the program prints ``text`` (after what earlier expects consumed)."""
        deadline = time.monotonic() + timeout
        while text not in self.out[self._seen :]:
            if time.monotonic() >= deadline or not self._read(deadline):
                raise AssertionError(f"{self.argv}: {text!r} never came; the terminal shows {self.out!r}")
        end = self.out.index(text, self._seen) + len(text)
        got, self._seen = self.out[self._seen : end], end
        return got

    def type(self, data: bytes) -> None:
        os.write(self.fd, data)

    def keys(self, *presses: bytes, gap: float = 0.15) -> None:
        """Each argument as its own key press, ``gap`` seconds apart."""
        for press in presses:
            os.write(self.fd, press)
            time.sleep(gap)

    def wait(self, timeout: float = 15.0) -> int:
        """The program's exit status; AssertionError if it is still running at the timeout."""
        deadline = time.monotonic() + timeout
        while self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() >= deadline:
                raise AssertionError(f"{self.argv} still runs after {timeout}s; the terminal shows {self.out!r}")
            self._read(deadline)
        while select.select([self.fd], [], [], 0.05)[0]:  # what it printed last
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.out += chunk
        return self.status

    def close(self) -> None:
        if self.status is None:
            try:
                os.kill(self.pid, 9)  # our own child, by pid
            except ProcessLookupError:
                pass
            _, status = os.waitpid(self.pid, 0)
            self.status = os.waitstatus_to_exitcode(status)
        os.close(self.fd)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
