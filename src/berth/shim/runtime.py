"""The seam between the shim and whatever makes containers: the :class:`Runtime` protocol.

The shim owns stdio, logs, clients, reaping and the exit record; a Runtime does the container
work, one container per instance: create the init at its barrier, start it, exec a process in
it, signal, pause, resume, delete, and say its state. berth's libcontainer is one
implementation (:mod:`berth.shim.native`); an OCI runtime binary is the other the seam is cut
for: each method maps onto one command, run as a child whose end the shim polls like a helper's
(``runc create --bundle B --console-socket S --pid-file F ID``, ``runc start ID``, ``runc exec
--process P --console-socket S --pid-file F --detach ID``, ``runc kill ID SIG``, ``runc pause``,
``runc resume``, ``runc delete``, ``runc state``). A fake for tests without root ships with the
package (:mod:`berth.shim.fake`).

Every method returns at once with an :class:`Op`: work that goes on in another process (a
helper, a runtime binary) or is done already. The shim's reactor watches ``Op.fd`` and calls
``poll()`` when it is readable, with a deadline; so a slow exec never holds up the container's
output, a stop or another exec::

    op = runtime.exec(process, stdio)
    reactor.watch(op.fd, read=...)      # then op.poll() -> Result | None (more to come);
                                        # with a result: forget op.fd, then op.close()
    ...                                 # at the deadline: op.abandon() (the worker is killed)

Results are plain: ``pid`` (create, exec), ``error`` and ``exit_code`` (126/127 when the
process cannot be executed, 128 otherwise) and ``value`` (``state()``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from berth.libcontainer import Stdio


class Result:
    """What an operation came to: ``error`` empty when it worked."""

    __slots__ = ("pid", "error", "exit_code", "value")

    def __init__(self, pid: int = 0, error: str = "", exit_code: int = 0, value: Any = None) -> None:
        self.pid = pid
        self.error = error
        self.exit_code = exit_code
        self.value = value

    @property
    def ok(self) -> bool:
        return not self.error

    def __repr__(self) -> str:
        return f"Result(pid={self.pid}, error={self.error!r}, exit_code={self.exit_code}, value={self.value!r})"


class Op(Protocol):
    """An operation in progress (or done): the reactor polls it when ``fd`` is readable."""

    fd: int  # readable when poll() may have news; -1 when it is done already

    def poll(self) -> Result | None:
        """The result once there is one (None: not yet). Called when ``fd`` is readable."""
        ...

    def close(self) -> None:
        """After the result was taken (and ``fd`` forgotten by the reactor): close what is done."""
        ...

    def abandon(self) -> None:
        """Give up on it (its deadline passed, or the shim is going): kill its worker, close fds."""
        ...


class Done:
    """An operation that finished as it was asked for (a signal, a fake's pause)."""

    __slots__ = ("result",)
    fd = -1

    def __init__(self, result: Result | None = None) -> None:
        self.result = result if result is not None else Result()

    def poll(self) -> Result:
        return self.result

    def close(self) -> None:
        return None

    def abandon(self) -> None:
        return None


class RuntimeState:
    """What the runtime says of the container: ``status`` is created | running | paused |
    stopped; ``oom_killed`` once it stopped (the kernel's OOM killer hit it)."""

    __slots__ = ("status", "oom_killed")

    def __init__(self, status: str, oom_killed: bool = False) -> None:
        self.status = status
        self.oom_killed = oom_killed


class Runtime(Protocol):
    """One container's runtime, as the shim sees it (every method returns at once)."""

    def create(self, stdio: Stdio) -> Op:
        """Make the container and its init, waiting at its barrier; Result.pid is the init's."""
        ...

    def start(self) -> Op:
        """Release the init: it execs the process. An error (126/127) when it cannot."""
        ...

    def exec(self, process: dict[str, Any], stdio: Stdio) -> Op:
        """Run an OCI process object in the running container; Result.pid is its pid."""
        ...

    def kill(self, pid: int, signum: int) -> Op:
        """Signal the init (``pid`` 0) or an exec'd process."""
        ...

    def pause(self) -> Op: ...

    def resume(self) -> Op: ...

    def state(self) -> Op:
        """Result.value is a :class:`RuntimeState`."""
        ...

    def delete(self) -> Op:
        """After the init exited: remove what the container held (its cgroup)."""
        ...

    def reaped(self, pid: int, status: int) -> bool:
        """The shim reaped a child it does not know: True if it was the runtime's own (a command
        it spawned), whose status it keeps; False otherwise."""
        ...

    def close(self) -> None:
        """Let go of the runtime's own resources (fds), nothing of the container's."""
        ...
