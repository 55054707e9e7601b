"""The exec driver's request and result types (shared by the ``native`` and ``oci`` drivers).

    req = CreateRequest(id="c1", bundle=Path("/var/lib/berth/containers/c1"), spec=spec,
                        rootfs_mounts=graph.rootfs_mounts("c1", spec["root"]["path"]),
                        tty=False, open_stdin=False,
                        log_path=Path(".../c1-json.log"))
    ExitStatus(exit_code=0, oom_killed=False, finished_at="2026-11-28T04:32:48.566437740Z")

With ``runtime`` (an :class:`OciRuntime`) the monitor drives that binary instead of berth's
libcontainer: the ``oci`` exec driver (:mod:`berth.shim.oci`).

The container's cgroup limits are the spec's ``linux.resources`` (converted in the monitor's
helper by :func:`berth.libcontainer.cgroups.resources_from_oci`, as ``berth-runtime`` does).

``ExitStatus.error`` is empty normally; it says why when the exit code is not the process's own
(e.g. 128 "daemon went away before start", 255 when a monitor vanished without a status).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from berth.libcontainer import Mount


@dataclass(frozen=True)
class CreateRequest:
    id: str
    bundle: Path
    spec: dict[str, Any]
    rootfs_mounts: list[Mount]
    tty: bool = False
    open_stdin: bool = False
    log_path: Path | None = None
    log_max_size: int = 0  # json-file max-size in bytes (0 = unbounded)
    log_max_files: int = 1  # json-file max-file
    log_compress: bool = False  # gzip the rotated files (compress)
    # the ``oci`` exec driver: an OCI runtime binary runs the container (None: berth's libcontainer)
    runtime: OciRuntime | None = None


@dataclass(frozen=True)
class OciRuntime:
    """An OCI runtime binary (runc, crun, berth-runtime): ``name`` also names its state directory
    (``<exec root>/runtime-<name>``), ``args`` go before its command (daemon.json runtimeArgs)."""

    name: str
    path: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExitStatus:
    exit_code: int
    oom_killed: bool
    finished_at: str
    error: str = ""

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ExitStatus:
        return cls(int(obj["exit_code"]), bool(obj.get("oom_killed", False)), str(obj.get("finished_at", "")),
                   str(obj.get("error", "")))
