"""A process the shim runs -- the container's init or one exec'd process -- and its states.

Each state is a type that allows only its own moves, as containerd's shim keeps one type per
state (``process/init_state.go``): asking a running init to start, a stopped one to pause or a
paused one to take an exec raises :class:`IllegalMove` (a "conflict" refusal on the wire), never
a forgotten ``if``. A move is checked when it is asked for and again when the runtime has done
it, since the process may have exited in between::

    init = Process(tty=False)            # CREATED: at its barrier
    init.state = init.state.start()      # RUNNING
    init.state = init.state.pause()      # PAUSED
    init.state.exec_allowed()            # IllegalMove("paused, unpause the container before exec")
    init.state = init.state.exit()       # STOPPED, from any state

An exec'd process goes CREATED (being made) -> RUNNING -> STOPPED; pause and resume are the
container's, asked of its init only.

The process also holds the shim's ends of its stdio (pipe ends, or the pty master that is both
its stdin and its output), stdin held until it runs, the connections its output goes to, and its
wait status once reaped. ``berth.shim.stdio.make_stdio`` fills those in.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import socket

    from berth.container.logs import LogWriter
    from berth.shim.connection import Conn
    from berth.shim.reactor import Timer


class Refused(Exception):
    """A request the shim will not do; ``kind`` is conflict | invalid | system | start:<code>."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class IllegalMove(Refused):
    """A state change the process's current state does not allow."""

    def __init__(self, message: str) -> None:
        super().__init__("conflict", message)


class State:
    """A process state: its legal moves return the next state, the others raise."""

    __slots__ = ()
    name = "unknown"

    def start(self) -> State:
        raise IllegalMove("already started")

    def pause(self) -> State:
        raise IllegalMove("the container is not running")

    def resume(self) -> State:
        raise IllegalMove("the container is not paused")

    def exit(self) -> State:
        return STOPPED

    def signal_allowed(self) -> None:
        """Signals reach running (and paused) processes only; else ProcessLookupError (the
        service answers "not running", as Docker does)."""
        raise ProcessLookupError

    def exec_allowed(self) -> None:
        """An exec may join the container; else IllegalMove saying what the container "is"."""
        raise IllegalMove("not running")

    def __repr__(self) -> str:
        return self.name


class Created(State):
    """Made, not running: the init waits at its barrier (an exec: its launcher is at work)."""

    __slots__ = ()
    name = "created"

    def start(self) -> State:
        return RUNNING


class Running(State):
    __slots__ = ()
    name = "running"

    def pause(self) -> State:
        return PAUSED

    def signal_allowed(self) -> None:
        return None

    def exec_allowed(self) -> None:
        return None


class Paused(State):
    """Frozen (the init's cgroup): signals are queued by the kernel, SIGKILL thaws it first."""

    __slots__ = ()
    name = "paused"

    def pause(self) -> State:
        raise IllegalMove("the container is already paused")

    def resume(self) -> State:
        return RUNNING

    def signal_allowed(self) -> None:
        return None

    def exec_allowed(self) -> None:
        # the new process would freeze before its exec, and hold its helper (and the exec) forever
        raise IllegalMove("paused, unpause the container before exec")


class Stopped(State):
    """Exited and reaped: nothing but the record of how."""

    __slots__ = ()
    name = "stopped"

    def start(self) -> State:
        raise IllegalMove("the container has exited")

    def exit(self) -> State:
        raise IllegalMove("the process has exited already")


CREATED, RUNNING, PAUSED, STOPPED = Created(), Running(), Paused(), Stopped()


class Process:
    """The init or an exec'd process: state, pid, stdio ends, clients, wait status."""

    __slots__ = (
        "pid", "tty", "master", "stdin_fd", "outputs", "stdin_buf", "stdin_eof", "started",
        "status", "conns", "log", "throttled", "drain", "done", "stdin_waiters", "console",
        "open_stdin", "state",
    )

    def __init__(self, tty: bool) -> None:
        self.state: State = CREATED
        self.pid = 0
        self.tty = tty
        self.master = -1
        self.stdin_fd = -1
        self.outputs: dict[int, int] = {}  # fd -> stream (1|2) still open for reading
        self.stdin_buf = bytearray()
        self.stdin_eof = False
        self.started = False  # it has run (a fact that outlives the state)
        self.status: int | None = None  # wait status, once reaped
        self.conns: list[Conn] = []  # where its output goes (and, for the init, its exit event)
        self.log: LogWriter | None = None
        self.throttled = False  # output not read: a client holds too much of it unsent
        self.drain: Timer | None = None  # after the exit: the deadline for its output's EOF
        self.done = False
        self.stdin_waiters: list[Conn] = []  # connections not read while stdin_buf is too full
        self.console: socket.socket | None = None  # our end of the console socket, until take_master
        self.open_stdin = False

    @property
    def exited(self) -> bool:
        return self.status is not None


def exit_code_of(status: int) -> int:
    """Docker's exit code: the process's status, or 128+N after signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code
