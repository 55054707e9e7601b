"""The init `docker run --init` runs as PID 1: which binary, and how a container's spec uses it.

berth builds its own (``csrc/berth-init.c``, installed as ``berth-init`` beside ``berthd`` by
scripts/setup.sh); ``--init-path`` (daemon.json ``init-path``) names another, e.g. Docker's
``docker-init``. As Docker, the binary is bind-mounted read-only at ``/sbin/docker-init`` and the
command becomes ``/sbin/docker-init -- ENTRYPOINT CMD``::

    path = init_path(cfg.init_path)                  # Path or None when none can be found
    args, mount = wrap(args, path)
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from berth.errors import InvalidParameter

TARGET = "/sbin/docker-init"


def init_path(configured: str) -> Path | None:
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise InvalidParameter(f"init-path {configured}: no such file")
        return path
    beside = Path(sys.executable).parent / "berth-init"
    if beside.is_file():
        return beside
    found = shutil.which("berth-init") or shutil.which("docker-init")
    return Path(found) if found else None


def wanted(host_config: dict[str, Any], daemon_default: bool) -> bool:
    """HostConfig.Init: true or false as asked, the daemon's ``--init`` when unset (null)."""
    value = host_config.get("Init")
    return daemon_default if value is None else bool(value)


def wrap(args: tuple[str, ...], path: Path) -> tuple[tuple[str, ...], dict[str, Any]]:
    mount = {"destination": TARGET, "type": "bind", "source": str(path), "options": ["rbind", "ro", "nosuid", "nodev"]}
    return (TARGET, "--", *args), mount
