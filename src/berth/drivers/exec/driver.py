"""The exec driver contract: what the daemon asks of any exec driver, and the handles it gets.

``native`` (:class:`~berth.drivers.exec.native.NativeDriver`: berth's libcontainer behind a
monitor per container) is one implementation; the ``oci`` driver (an OCI runtime binary behind
the same monitor) is the other this contract is for. A container's run and an exec share one
interface for what a client does to a process (:class:`Handle`: its output, stdin, the
terminal's size, signals); each adds what only it has::

    handle = await driver.create(request)          # ContainerHandle: the init waits at its barrier
    out = handle.output(); await handle.start()
    proc = await handle.exec(process)              # ExecProcess
    await proc.resize(40, 120); await proc.signal(15); code = await proc.wait()
    status = await handle.wait()                   # ExitStatus
    await driver.cleanup(request.id)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

from berth.drivers.exec.model import CreateRequest, ExitStatus
from berth.drivers.exec.view import View
from berth.libcontainer.cgroups import ResourceUpdate, Stats


class Output(Protocol):
    """A process's frames ``(1|2, bytes)``, as one subscriber sees them; ``close()`` stops them."""

    def __aiter__(self) -> AsyncIterator[tuple[int, bytes]]: ...

    def close(self) -> None: ...


class Handle(Protocol):
    """What a container's run and an exec have in common."""

    @property
    def pid(self) -> int: ...

    def output(self) -> Output: ...

    async def write_stdin(self, data: bytes) -> None: ...

    async def close_stdin(self) -> None: ...

    async def resize(self, h: int, w: int) -> None: ...

    async def signal(self, signum: int) -> None: ...


class ExecProcess(Handle, Protocol):
    """One process exec'd into a running container."""

    async def wait(self) -> int: ...


class ContainerHandle(Handle, Protocol):
    """A created or running container, seen through its monitor."""

    @property
    def id(self) -> str: ...

    async def start(self) -> None: ...

    async def pause(self) -> None: ...

    async def resume(self) -> None: ...

    async def sync_logs(self) -> None: ...

    async def wait(self) -> ExitStatus: ...

    def exited(self) -> bool: ...

    async def closed(self) -> None: ...

    async def close(self) -> None: ...

    async def exec(self, process: dict[str, Any], open_stdin: bool = False) -> ExecProcess: ...


class ExecDriver(Protocol):
    """Runs containers from OCI bundles and finds them again after a daemon restart."""

    async def startup(self) -> None: ...

    def hurry(self) -> None:
        """The daemon serves: whatever the driver still sets up in the background gets its full share."""
        ...

    async def ready(self) -> None: ...

    async def shutdown(self) -> None: ...

    def exec_dir(self, cid: str) -> Path: ...

    def cgroup_name(self, cid: str) -> str: ...

    async def create(self, req: CreateRequest) -> ContainerHandle: ...

    async def reconnect(self, cid: str) -> ContainerHandle | ExitStatus:
        """The live container's handle, or the status its monitor left when it is gone."""
        ...

    async def cleanup(self, cid: str) -> None:
        """Remove what a run left: the monitor's directory and the container's cgroup."""
        ...

    async def pids(self, cid: str) -> list[int]: ...

    async def update(self, cid: str, update: ResourceUpdate) -> None: ...

    async def stats(self, cid: str) -> Stats | None: ...

    async def view(self, request: dict[str, Any]) -> View:
        """The container's file system opened for ``docker cp``."""
        ...
