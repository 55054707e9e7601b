"""Bind propagation (``-v SRC:DST:rshared``, ``--mount ...,bind-propagation=rslave``), as dockerd sets it.

A ``shared``/``rshared`` bind needs its source on a shared mount of the host, a ``slave``/
``rslave`` one on a shared or slave mount (dockerd's ``ensureShared``/``ensureSharedOrSlave``,
with its texts), and the container's root propagation follows: ``shared`` with a shared bind
(so mounts made under the bind in the container reach the host), ``rslave`` otherwise (libcontainer's
default). The mount holding a path is the one with the longest mount point above it in
``/proc/self/mountinfo``; its optional fields say ``shared:N`` or ``master:N``.

    root_propagation([{"Type": "bind", "Source": "/srv", "Propagation": "rshared", ...}])  # "shared"
"""

from __future__ import annotations

import os
from typing import Any

from berth.errors import SystemFailure
from berth.libcontainer.removetree import unescape

SHARED = ("shared", "rshared")
SLAVE = ("slave", "rslave")


def mount_of(path: str, mountinfo: str = "/proc/self/mountinfo") -> tuple[str, set[str]]:
    """The mount point holding ``path`` and its propagation words (``shared``, ``master``)."""
    path = os.path.realpath(path)
    best, words = "/", set()
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            point = os.fsdecode(unescape(os.fsencode(fields[4])))
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                best = point
                optional = fields[6 : fields.index("-")]
                words = {w.split(":", 1)[0] for w in optional}
    return best, words


def check_sources(mounts: list[dict[str, Any]], data_root: str) -> None:
    """At start, dockerd's checks of each bind's propagation against its source's mount."""
    for m in mounts:
        if m.get("Type") != "bind":
            continue
        propagation = m.get("Propagation") or ""
        if propagation in SHARED:
            point, words = mount_of(m["Source"])
            if "shared" not in words:
                raise SystemFailure(f"path {m['Source']} is mounted on {point} but it is not a shared mount")
        elif propagation in SLAVE:
            point, words = mount_of(m["Source"])
            if not words & {"shared", "master"} and not m["Source"].startswith(data_root):
                raise SystemFailure(
                    f"path {m['Source']} is mounted on {point} but it is not a shared or slave mount"
                )


def root_propagation(mounts: list[dict[str, Any]]) -> str:
    """The container's rootfsPropagation: ``shared`` when a bind is shared, else ``rslave``."""
    if any(m.get("Type") == "bind" and (m.get("Propagation") or "") in SHARED for m in mounts):
        return "shared"
    return "rslave"
