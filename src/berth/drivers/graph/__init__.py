"""Graph drivers: where image and container layers live on disk, and how a rootfs is mounted.

Two implementations of one :class:`GraphDriver` protocol, passing one conformance suite:
``overlay2`` (default: layers stacked by overlayfs) and ``vfs`` (full copies, bind mounted;
the fallback when overlayfs is unavailable). Drivers return mount plans as data
(:class:`berth.libcontainer.Mount`); libcontainer performs them inside the container::

    driver = new_driver(None, Path("/var/lib/berth"))     # overlay2 if it works here, else vfs
    diff = driver.create_layer(layer_id, parent_id)       # then driver.apply_diff(layer_id, tar)
    driver.prepare_rw(cid, layer_id); driver.mounts(cid, rootfs)

On disk: ``<data_root>/overlay2/...`` or ``<data_root>/vfs/dir/<id>`` (see each module).
"""

from __future__ import annotations

from pathlib import Path

from berth.drivers.graph.archive import Applied, apply_tar, tree_size
from berth.drivers.graph.driver import GraphDriver
from berth.drivers.graph.overlay import OverlayDriver
from berth.drivers.graph.probe import overlay_supported
from berth.drivers.graph.vfs import VfsDriver
from berth.errors import InvalidParameter, Unavailable

DRIVERS = ("overlay2", "vfs")


def new_driver(name: str | None, root: Path) -> GraphDriver:
    """The driver ``name`` (``--storage-driver``) with its dir under the data ``root``.

    ``None`` picks overlay2 when overlayfs works under ``root`` and vfs otherwise; asking for
    overlay2 where it cannot work is an error rather than a silent fallback.
    """
    if name in (None, ""):
        return (
            OverlayDriver(root / "overlay2")
            if overlay_supported(root / "overlay2")
            else VfsDriver(root / "vfs")
        )
    if name == "overlay2":
        if not overlay_supported(root / "overlay2"):
            raise Unavailable(f"storage driver overlay2: overlayfs is not supported under {root}")
        return OverlayDriver(root / "overlay2")
    if name == "vfs":
        return VfsDriver(root / "vfs")
    raise InvalidParameter(f"storage driver {name!r}: unknown driver (want one of {', '.join(DRIVERS)})")


__all__ = [
    "Applied",
    "GraphDriver",
    "OverlayDriver",
    "VfsDriver",
    "apply_tar",
    "new_driver",
    "overlay_supported",
    "tree_size",
]
