"""Forking the container init and exec'd processes (work in progress: signatures first)."""

from __future__ import annotations

from typing import Any

from berth.libcontainer.spec import Mount, Stdio


class InitProcess:
    """The container's init, waiting at the barrier until :meth:`start`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def start(self) -> None:
        raise NotImplementedError("libcontainer: InitProcess.start is not written yet")


def create(spec: dict[str, Any], rootfs_mounts: list[Mount], stdio: Stdio, cgroup: Any) -> InitProcess:
    raise NotImplementedError("libcontainer: create is not written yet")


def exec_process(init_pid: int, process: dict[str, Any], stdio: Stdio, cgroup: Any) -> int:
    raise NotImplementedError("libcontainer: exec_process is not written yet")
