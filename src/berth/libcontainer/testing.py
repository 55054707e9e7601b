"""Test helpers that ship with the package: a busybox root file system and a Docker-like spec.

    root = busybox_rootfs(tmp_path / "rootfs")      # needs /bin/busybox (busybox-static)
    spec = docker_like_spec(str(root), ["sh", "-c", "echo hi"], hostname="c1")

``docker_like_spec`` writes what Docker's default OCI spec holds (mounts, masked and read-only
paths, namespaces, the default capabilities), so tests exercise the same paths as berthd.
``child_subreaper()`` makes the test process the reaper of the processes ``exec_process`` starts
(they are children of its throwaway launcher)::

    with child_subreaper():
        pid = exec_process(init.pid, {"args": ["true"]}, stdio, None, spec)
        os.waitpid(pid, 0)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from berth.libcontainer import kernel
from berth.libcontainer.capabilities import DEFAULT_CAPS
from berth.libcontainer.defaultmounts import default_mounts
from berth.libcontainer.spec import MASKED_PATHS, READONLY_PATHS

BUSYBOX = "/bin/busybox"


@contextlib.contextmanager
def child_subreaper() -> Iterator[None]:
    """The calling process is a child subreaper inside the block (orphans of its descendants
    become its children); restored afterwards (children it already got stay its own)."""
    kernel.prctl(kernel.PR_SET_CHILD_SUBREAPER, 1)
    try:
        yield
    finally:
        kernel.prctl(kernel.PR_SET_CHILD_SUBREAPER, 0)


def busybox_rootfs(root: Path, busybox: str = BUSYBOX) -> Path:
    """A minimal image: /bin/busybox plus a symlink per applet, /etc/passwd and /etc/group."""
    (root / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    applets = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True).stdout.split()
    for applet in applets:
        link = root / "bin" / applet
        if applet != "busybox" and not link.exists():
            os.symlink("busybox", link)
    for d in ("etc", "tmp", "root", "proc", "sys", "dev", "home"):
        (root / d).mkdir(exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return root


def docker_like_spec(
    root: str,
    args: list[str],
    *,
    hostname: str | None = "berth",
    env: list[str] | None = None,
    cwd: str = "/",
    uid: int = 0,
    gid: int = 0,
    additional_gids: list[int] | None = None,
    network: bool = True,
    readonly: bool = False,
) -> dict[str, Any]:
    caps = list(DEFAULT_CAPS)
    namespaces: list[dict[str, str]] = [{"type": t} for t in ("pid", "mount", "uts", "ipc")]
    if network:
        namespaces.append({"type": "network"})
    return {
        "ociVersion": "1.0.2",
        "root": {"path": root, "readonly": readonly},
        "hostname": hostname,
        "process": {
            "args": args,
            "env": env
            if env is not None
            else ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": cwd,
            "user": {"uid": uid, "gid": gid, "additionalGids": additional_gids or []},
            "terminal": False,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps, "inheritable": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}],
            "noNewPrivileges": False,
        },
        # the daemon's table, without the cgroup mount (these tests join no cgroup by default)
        "mounts": default_mounts(cgroup=False),
        "linux": {
            "namespaces": namespaces,
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }
