"""The runtime's state store: one directory per container under ``--root`` (runc's ``/run/runc``).

    store = Store(Path("/run/berth-runtime"))
    store.save({"id": "c1", "pid": 4242, "start_time": start_time(4242), ...})
    store.status(store.load("c1"))     # "created" | "running" | "paused" | "stopped"
    store.oci_state("c1")              # the runtime-spec state object
    store.remove("c1")

A pid alone does not name a process for long: the state keeps its start time (field 22 of
``/proc/<pid>/stat``), and a pid whose start time differs is another process: the container
is ``stopped``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from berth.libcontainer.cgroups import open_cgroup
from berth.runtime.errors import CommandError

DEFAULT_ROOT = "/run/berth-runtime"
OCI_VERSION = "1.0.2"
FIFO = "exec.fifo"
STATE = "state.json"


def start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat, or None when the pid is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else fields[19]


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root

    def dir(self, cid: str) -> Path:
        if not cid or "/" in cid or cid in (".", ".."):
            raise CommandError(f"invalid container id {cid!r}")
        return self.root / cid

    def make(self, cid: str) -> Path:
        """The container's new directory; CommandError when the id is taken."""
        d = self.dir(cid)
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            d.mkdir(mode=0o700)
        except FileExistsError as exc:
            raise CommandError(f"container with id exists: {cid}") from exc
        return d

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state.json`` atomically (a reader never sees half of it)."""
        d = self.dir(state["id"])
        tmp = d / (STATE + ".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, d / STATE)

    def load(self, cid: str) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads((self.dir(cid) / STATE).read_text())
        except FileNotFoundError as exc:
            raise CommandError(f"container {cid} does not exist") from exc
        return state

    def ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return [d.name for d in sorted(self.root.iterdir()) if (d / STATE).exists()]

    def remove(self, cid: str) -> None:
        d = self.dir(cid)
        for child in d.iterdir() if d.is_dir() else ():
            child.unlink()
        if d.is_dir():
            d.rmdir()

    def status(self, state: dict[str, Any]) -> str:
        if start_time(state["pid"]) != state["start_time"]:
            return "stopped"
        if (self.dir(state["id"]) / FIFO).exists():
            return "created"
        cg = open_cgroup(state["cgroup"])
        try:
            if cg.exists() and cg.frozen():
                return "paused"
        except OSError:
            pass  # no freezer (or removed meanwhile): it cannot be paused
        return "running"

    def oci_state(self, cid: str, status: str | None = None) -> dict[str, Any]:
        """The OCI state (runtime-spec "state"); ``status`` given for a hook's view of it."""
        state = self.load(cid)
        status = status or self.status(state)
        out = {
            "ociVersion": OCI_VERSION,
            "id": cid,
            "pid": state["pid"] if status != "stopped" else 0,
            "status": status,
            "bundle": state["bundle"],
            "rootfs": state["rootfs"],
            "created": state["created"],
            "owner": "",
        }
        if state.get("annotations"):
            out["annotations"] = state["annotations"]
        return out
