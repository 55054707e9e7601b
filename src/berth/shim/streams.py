"""A process's output and stdin as the shim moves them, with back-pressure both ways.

Output: each chunk read from the process goes to its json-file log and, as a frame, to every
connection attached to it. While one of those holds more than ``HIGH_WATER`` unsent, the
process's output is not read (the container blocks on write) until all are under
``LOW_WATER``. Stdin: bytes from clients are held until the process runs, then written as it
reads; while more than ``HIGH_WATER`` is held, the client that sent them is not read.

    pump = Pump(reactor, owner)
    pump.watch_outputs(proc)          # once the process exists
    pump.stdin(proc, conn, data)      # a client's stdin frame
    pump.flush_stdin(proc)            # once it runs, and after stdin EOF
    pump.drain(proc)                  # what it wrote so far, into the log now ("sync")
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from berth.shim import protocol as P
from berth.shim.connection import HIGH_WATER, LOW_WATER

if TYPE_CHECKING:
    from berth.shim.connection import Conn
    from berth.shim.process import Process
    from berth.shim.reactor import Reactor

READ_SIZE = 8 * 1024
DRAIN_READS = 16  # 128 KiB per output at most per sync: a pipe's 64 KiB, and what came meanwhile


class PumpOwner(Protocol):
    def conn_reader(self, conn: Conn) -> Callable[[], None]: ...
    def outputs_closed(self, proc: Process) -> None: ...


class Pump:
    """Moves bytes between processes and clients for the service."""

    __slots__ = ("reactor", "owner")

    def __init__(self, reactor: Reactor, owner: PumpOwner) -> None:
        self.reactor = reactor
        self.owner = owner

    # ---- output ---------------------------------------------------------------------------
    def watch_outputs(self, proc: Process) -> None:
        for fd in proc.outputs:
            self.reactor.watch(fd, read=self._reader(proc, fd))

    def _reader(self, proc: Process, fd: int) -> Callable[[], None]:
        def read() -> None:
            self.on_output(proc, fd)

        return read

    def on_output(self, proc: Process, fd: int) -> bool:
        """One read of ``fd`` to the log and the clients; False when there was nothing to read."""
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return False
        except OSError:  # EIO: every holder of the pty slave has closed it
            data = b""
        if not data:
            self.close_output(proc, fd)
            return False
        stream = proc.outputs[fd]
        if proc.log is not None:
            proc.log.write(stream, data)
        header = P.HEADER.pack(stream, len(data))
        for conn in list(proc.conns):
            conn.send(header, data)
            if conn.over_high and not proc.throttled:
                proc.throttled = True
                for out_fd in proc.outputs:
                    self.reactor.watch(out_fd, read=None)
        return True

    def drain(self, proc: Process) -> None:
        """Read what the process has written so far into the log now, not when the loop gets to
        it: a ``sync`` before the daemon reads the log of a running container. Bounded (a
        pipe's default capacity and some), and not while a client holds too much."""
        for fd in list(proc.outputs):
            for _ in range(DRAIN_READS):
                if proc.throttled or fd not in proc.outputs or not self.on_output(proc, fd):
                    break

    def maybe_unthrottle(self, proc: Process) -> None:
        if proc.throttled and all(c.out_len < LOW_WATER for c in proc.conns):
            proc.throttled = False
            self.watch_outputs(proc)

    def close_output(self, proc: Process, fd: int) -> None:
        del proc.outputs[fd]
        self.reactor.watch(fd, read=None)
        if fd != proc.master:
            os.close(fd)
        if not proc.outputs:
            self.owner.outputs_closed(proc)

    # ---- stdin ----------------------------------------------------------------------------
    def stdin(self, proc: Process, conn: Conn, data: bytes) -> None:
        if proc.stdin_fd < 0 or proc.stdin_eof:
            return
        proc.stdin_buf += data
        self.flush_stdin(proc)
        if len(proc.stdin_buf) > HIGH_WATER and not conn.closed and conn not in proc.stdin_waiters:
            # the process reads slower than the client writes: stop reading the client (it
            # blocks in turn) rather than buffer without bound
            proc.stdin_waiters.append(conn)
            self.reactor.watch(conn.fd, read=None)

    def _resume_stdin_writers(self, proc: Process) -> None:
        waiters, proc.stdin_waiters = proc.stdin_waiters, []
        for conn in waiters:
            if not conn.closed:
                self.reactor.watch(conn.fd, read=self.owner.conn_reader(conn))

    def flush_stdin(self, proc: Process) -> None:
        fd = proc.stdin_fd
        if fd < 0 or not proc.started:
            return
        try:
            while proc.stdin_buf:
                n = os.write(fd, proc.stdin_buf)
                del proc.stdin_buf[:n]
        except BlockingIOError:
            self.reactor.watch(fd, write=lambda: self.flush_stdin(proc))
            if proc.stdin_waiters and len(proc.stdin_buf) < LOW_WATER:
                self._resume_stdin_writers(proc)
            return
        except OSError:  # EPIPE/EIO: the process closed its stdin; drop what it will never read
            proc.stdin_buf.clear()
            proc.stdin_eof = True
        self.reactor.watch(fd, write=None)
        if proc.stdin_waiters and len(proc.stdin_buf) < LOW_WATER:
            self._resume_stdin_writers(proc)
        if proc.stdin_eof:
            if proc.tty:
                try:
                    os.write(fd, b"\x04")  # a pty has no half-close: EOF is ^D at the line discipline
                except OSError:
                    pass  # the process already closed the terminal; nothing left to tell it
            else:
                self.reactor.forget(fd)
                os.close(fd)
            proc.stdin_fd = -1

    # ---- the end --------------------------------------------------------------------------
    def close_all(self, proc: Process) -> None:
        """Close every fd the shim holds of a process that is done (or was never made)."""
        for fd in list(proc.outputs):
            self.reactor.forget(fd)
            if fd != proc.master:
                os.close(fd)
        proc.outputs = {}
        if proc.stdin_fd >= 0 and proc.stdin_fd != proc.master:
            self.reactor.forget(proc.stdin_fd)
            os.close(proc.stdin_fd)
        if proc.master >= 0:
            self.reactor.forget(proc.master)
            os.close(proc.master)
        proc.stdin_fd = proc.master = -1
