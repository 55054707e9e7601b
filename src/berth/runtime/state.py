"""The runtime's state store: one directory per container under ``--root`` (runc's ``/run/runc``).

    store = Store("/run/berth-runtime")
    store.save({"id": "c1", "pid": 4242, "start_time": start_time(4242), ...})
    store.status(store.load("c1"))     # "created" | "running" | "paused" | "stopped"
    store.oci_state("c1")              # the runtime-spec state object
    store.remove("c1")

A pid alone does not name a process for long: the state keeps its start time (field 22 of
``/proc/<pid>/stat``), and a pid whose start time differs is another process: the container
is ``stopped``. Paths are plain strings (pathlib's import is a measurable part of a command).
"""

from __future__ import annotations

import os

from berth.libcontainer import fastjson as json
from berth.runtime.errors import CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

OCI_VERSION = "1.1.0"
FIFO = "exec.fifo"
STATE = "state.json"
# compiled seccomp programs, under the root beside the containers (berth.libcontainer.seccomp)
SECCOMP_CACHE = ".seccomp"


def start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat, or None when the pid is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def now() -> str:
    """RFC 3339 in UTC with nanoseconds' worth of digits, as runc's ``created``."""
    import time

    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}Z"


class Store:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.fspath(root)

    def dir(self, cid: str) -> str:
        if not cid or "/" in cid or cid in (".", "..", SECCOMP_CACHE) or "\0" in cid:
            raise CommandError(f"invalid container id {cid!r}")
        return os.path.join(self.root, cid)

    def use_seccomp_cache(self) -> None:
        """Compiled seccomp programs kept under the root for later commands (Docker's default
        profile costs libseccomp ~10 ms to compile; reading it back, a fraction of one)."""
        from berth.libcontainer import seccomp

        seccomp.set_cache_dir(os.path.join(self.root, SECCOMP_CACHE))

    def make(self, cid: str) -> str:
        """The container's new directory; CommandError when the id is taken."""
        d = self.dir(cid)
        try:
            os.makedirs(self.root, mode=0o711, exist_ok=True)
            os.mkdir(d, 0o700)
        except FileExistsError as exc:
            raise CommandError(f"container with id exists: {cid}") from exc
        except OSError as exc:
            raise CommandError(f"create state directory '{d}': {exc.strerror}") from exc
        return d

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state.json`` atomically (a reader never sees half of it)."""
        d = self.dir(state["id"])
        tmp = os.path.join(d, STATE + ".tmp")
        with open(tmp, "w") as f:
            f.write(json.dumps(state))
        os.replace(tmp, os.path.join(d, STATE))

    def load(self, cid: str) -> dict[str, Any]:
        try:
            with open(os.path.join(self.dir(cid), STATE)) as f:
                state: dict[str, Any] = json.loads(f.read())
        except FileNotFoundError as exc:
            raise CommandError(f"container {cid} does not exist") from exc
        return state

    def ids(self) -> list[str]:
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        return [n for n in names if os.path.exists(os.path.join(self.root, n, STATE))]

    def remove(self, cid: str) -> None:
        d = self.dir(cid)
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            return
        for name in names:
            os.unlink(os.path.join(d, name))
        os.rmdir(d)

    def status(self, state: dict[str, Any]) -> str:
        if start_time(state["pid"]) != state["start_time"]:
            return "stopped"
        if os.path.exists(os.path.join(self.dir(state["id"]), FIFO)):
            return "created"
        from berth.libcontainer.cgroups import open_cgroup

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
