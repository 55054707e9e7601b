"""How a container init that fails before exec reports why.

The init child writes one JSON object ``{"message": ..., "exit_code": N}`` on a close-on-exec
pipe and exits; the parent reads it and raises :class:`ContainerInitError`. A clean ``execve``
closes the pipe, so EOF with nothing read means the process runs.

    >>> err = ContainerInitError('exec: "foo": executable file not found in $PATH', 127)
    >>> ContainerInitError.from_wire(err.to_wire()).exit_code
    127

Exit codes follow runc/Docker: 127 not found, 126 not executable or permission denied,
128 any other failure before the process could start.
"""

from __future__ import annotations

import os

from berth.errors import ContainerStartError
from berth.libcontainer import fastjson as json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

EXIT_NOT_FOUND = 127
EXIT_CANNOT_EXECUTE = 126
EXIT_OTHER = 128

# What init writes on the report pipe when it waits at the barrier (an error is a JSON object).
READY = b"ready\n"
# init asks its caller to run the runtime's create hooks (prestart, createRuntime), then waits
# for one byte on its barrier: after its mounts, before createContainer hooks and pivot_root
HOOKS = b"hooks\n"


class ContainerInitError(ContainerStartError):
    """A step of container init failed before the user's process could start."""

    def __init__(self, message: str, exit_code: int = EXIT_OTHER) -> None:
        super().__init__(message, exit_code)

    def to_wire(self) -> bytes:
        return json.dumps({"message": self.message, "exit_code": self.exit_code}).encode() + b"\n"

    @classmethod
    def from_wire(cls, data: bytes) -> ContainerInitError:
        """Decode what :meth:`to_wire` wrote; garbage becomes an error that quotes it."""
        try:
            obj = json.loads(data.decode("utf-8", "replace"))
            return cls(str(obj["message"]), int(obj["exit_code"]))
        except (ValueError, KeyError, TypeError):
            return cls(f"container init: unreadable error report: {data[:200]!r}", EXIT_OTHER)


def init_failure(line: bytes, pid: int, why: str = "") -> ContainerInitError:
    """What init's line on the report pipe other than READY says: the error it reported, or
    (EOF: nothing) that it died before it was ready (``why``: how, where the caller knows).

        >>> init_failure(b"", 7).message
        'container init 7 died before it was ready'
    """
    if line:
        return ContainerInitError.from_wire(line)
    return ContainerInitError(f"container init {pid} died before it was ready{f' ({why})' if why else ''}", EXIT_OTHER)


def step(op: str, obj: str, fn: Callable[..., object], *args: object) -> None:
    """Run one kernel step of a forked child; an OSError becomes ``op 'obj': strerror``."""
    try:
        fn(*args)
    except OSError as exc:
        raise ContainerInitError(f"{op} '{obj}': {exc.strerror}", EXIT_OTHER) from exc


def die(report_fd: int, exc: BaseException) -> NoReturn:
    """The end of a forked child that failed: the error on ``report_fd``, then ``_exit``."""
    if isinstance(exc, ContainerInitError):
        err = exc
    elif isinstance(exc, OSError):
        where = f" '{exc.filename}'" if exc.filename else ""
        err = ContainerInitError(f"container init{where}: {exc.strerror or exc}", EXIT_OTHER)
    else:
        err = ContainerInitError(f"container init: {type(exc).__name__}: {exc}", EXIT_OTHER)
    try:
        os.write(report_fd, err.to_wire())
    finally:
        os._exit(err.exit_code)
