"""Control groups for one container: a v1 (or hybrid) and a v2 manager behind one interface.

The model: a cgroup is a name (``"berth-<tag>/<container id>"``) under a root. With v2
(``<root>/cgroup.controllers`` exists) it is one directory ``<root>/<name>`` (:mod:`.v2`); with
v1 it is one directory per mounted hierarchy (``<root>/memory/<name>``, ``<root>/pids/<name>``,
... and ``<root>/unified/<name>`` on a hybrid host) (:mod:`.v1`). Both are :class:`Cgroup`; what
they share (joining, listing, killing, removing) is written once in :mod:`.manager`. Everything
is a file write, so unit tests point ``root`` at a temp dir holding a fake tree::

    cg = open_cgroup("berth-test/abc")          # V1Cgroup or V2Cgroup, from what root holds
    cg.create(Resources(memory=64 << 20, pids_limit=100))
    cg.add(pid)            # or add(0) from the process itself
    cg.update(ResourceUpdate(memory=128 << 20))
    cg.freeze(); cg.thaw(); cg.oom_killed(); cg.stats(); cg.destroy()

The container's limits come from its OCI ``linux.resources`` through one pure function,
:func:`resources_from_oci` (:mod:`.ocispec`), for the daemon's containers and ``berth-runtime``'s.
"""

from __future__ import annotations

import os

from berth.libcontainer.cgroups import files
from berth.libcontainer.cgroups.files import P
from berth.libcontainer.cgroups.manager import Cgroup
from berth.libcontainer.cgroups.ocispec import device_rules_from_oci, resources_from_oci
from berth.libcontainer.cgroups.resources import (
    ALLOW_ALL_DEVICES,
    CFS_PERIOD_US,
    DEFAULT_DEVICE_RULES,
    Resources,
    ResourceUpdate,
    Stats,
)
from berth.libcontainer.cgroups.v1 import V1Cgroup

TYPE_CHECKING = False
if TYPE_CHECKING:
    from berth.libcontainer.cgroups.v2 import V2Cgroup, cpu_max

DEFAULT_ROOT = "/sys/fs/cgroup"

__all__ = [
    "ALLOW_ALL_DEVICES",
    "CFS_PERIOD_US",
    "DEFAULT_DEVICE_RULES",
    "DEFAULT_ROOT",
    "Cgroup",
    "ResourceUpdate",
    "Resources",
    "Stats",
    "V1Cgroup",
    "V2Cgroup",
    "blkio_weight_supported",
    "cpu_max",
    "device_rules_from_oci",
    "is_unified",
    "open_cgroup",
    "resources_from_oci",
]


def is_unified(root: str | os.PathLike[str] = DEFAULT_ROOT) -> bool:
    """Whether ``root`` is a cgroup2 mount (pure v2), rather than v1's tmpfs of hierarchies."""
    return os.path.exists(os.path.join(root, "cgroup.controllers"))


def open_cgroup(name: str, root: str | os.PathLike[str] = DEFAULT_ROOT) -> Cgroup:
    """The manager of cgroup ``name`` under ``root``: v2 on a cgroup2 mount, else v1 (pure or
    hybrid). Nothing is made until ``create``."""
    if is_unified(root):
        from berth.libcontainer.cgroups.v2 import V2Cgroup

        return V2Cgroup(name, root)
    return V1Cgroup(name, root)


def __getattr__(name: str) -> object:
    """The v2 manager's names, loaded on first use (PEP 562): a v1 host's commands need none."""
    if name in ("V2Cgroup", "cpu_max"):
        from berth.libcontainer.cgroups import v2

        return getattr(v2, name)
    raise AttributeError(f"module 'berth.libcontainer.cgroups' has no attribute {name!r}")


def blkio_weight_supported(root: str | os.PathLike[str] = DEFAULT_ROOT) -> bool:
    """Whether the host's block I/O controller takes a weight (CFQ/BFQ); dockerd warns and
    discards ``--blkio-weight`` otherwise."""
    base = P(os.fspath(root))
    if is_unified(base):
        return "io" in files.read_quiet(base / "cgroup.controllers").split()
    return any((base / "blkio" / name).exists() for name in ("blkio.weight", "blkio.bfq.weight"))
