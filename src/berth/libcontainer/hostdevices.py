"""The host's device nodes as OCI ``linux.devices`` entries (what ``--privileged`` gets).

Docker gives a privileged container every character and block device under the host's /dev
(containerd's ``HostDevices``): it walks /dev, skips ``pts``, ``shm``, ``fd``, ``mqueue`` and
the ``.lxc``/``.lxd-mounts``/``.udev`` directories, ``/dev/console`` (the container gets its
own), symlinks, FIFOs and anything that vanishes while it looks; each node keeps its path, type,
numbers, mode and owner.

    >>> [d["path"] for d in host_devices("/nonexistent")]
    []
"""

from __future__ import annotations

import os
import stat
from typing import Any

SKIP_DIRS = frozenset({"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"})


def host_devices(root: str = "/dev") -> list[dict[str, Any]]:
    """Every device node under ``root`` (sorted by path); [] when ``root`` does not exist."""
    out: list[dict[str, Any]] = []
    _walk(root, root, out)
    return sorted(out, key=lambda d: d["path"])


def _walk(root: str, path: str, out: list[dict[str, Any]]) -> None:
    try:
        entries = list(os.scandir(path))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # gone since the listing (udev at work)
        if stat.S_ISDIR(st.st_mode):
            if entry.name not in SKIP_DIRS:
                _walk(root, entry.path, out)
            continue
        if entry.name == "console":
            continue
        if stat.S_ISCHR(st.st_mode):
            kind = "c"
        elif stat.S_ISBLK(st.st_mode):
            kind = "b"
        else:
            continue  # regular files, symlinks, sockets, FIFOs
        out.append(
            {
                "path": "/dev/" + os.path.relpath(entry.path, root),
                "type": kind,
                "major": os.major(st.st_rdev),
                "minor": os.minor(st.st_rdev),
                "fileMode": stat.S_IMODE(st.st_mode),
                "uid": st.st_uid,
                "gid": st.st_gid,
            }
        )
