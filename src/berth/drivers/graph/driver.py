"""The graph driver contract: layer directories and rootfs mount plans.

The model (containerd's snapshotter, Docker's graphdriver): a *layer* is a directory tree
identified by an opaque ``layer_id`` with an optional parent; a container gets a read-write
layer on top of its image's top layer. The driver never mounts anything: ``mounts`` returns the
plan as :class:`berth.libcontainer.Mount` values that libcontainer performs later, inside the
container's own mount namespace. ::

    diff = driver.create_layer("a1...", None)           # fill it: archive.apply_tar(f, diff, ...)
    driver.prepare_rw(container_id, "a1...")
    driver.mounts(container_id, "/run/berth/<id>/rootfs")  # -> [Mount("overlay", ...)]
    driver.remove_rw(container_id); driver.remove_layer("a1...")

``whiteouts`` tells ``archive.apply_tar`` how deletions are recorded in this driver's layers.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Protocol

from berth.drivers.graph.archive import Applied, WhiteoutFormat, Writer
from berth.libcontainer import Mount


class GraphDriver(Protocol):
    name: str
    # True when a new layer's dir holds only its own diff (overlay2), so the layers of one image
    # may be applied in parallel; False when create_layer copies the parent's files (vfs)
    independent_layers: bool
    root: Path
    whiteouts: WhiteoutFormat

    def create_layer(self, layer_id: str, parent_id: str | None) -> Path:
        """Create an (empty, or for copying drivers: parent-filled) layer; return its diff dir."""
        ...

    def set_parent(self, layer_id: str, parent_id: str | None) -> None:
        """Put a layer made without a parent onto ``parent_id`` (only ``independent_layers``
        drivers can: their layer holds its own diff alone, whatever lies below)."""
        ...

    def apply_diff(self, layer_id: str, stream: BinaryIO, tee: Writer | None = None,
                   digest: str | None = None) -> Applied:
        """Apply a layer tar to the layer's diff dir; return its diff id and added size.
        ``tee`` gets the uncompressed tar bytes as they are read; ``digest``: the caller
        already hashed exactly these uncompressed bytes (they are not hashed again)."""
        ...

    def diff_dir(self, layer_id: str) -> Path:
        """The directory holding what this layer adds (the whole tree for copying drivers)."""
        ...

    def layer_dirs(self, layer_id: str) -> list[Path]:
        """The directories whose merged view (:mod:`merged`) is the layer's tree, top first."""
        ...

    def size(self, layer_id: str) -> int:
        """Apparent size in bytes of the layer's directory (a container's SizeRw)."""
        ...

    def exists(self, layer_id: str) -> bool: ...

    def remove_layer(self, layer_id: str) -> None:
        """Remove the layer; removing a missing layer is not an error."""
        ...

    def layers(self) -> list[str]:
        """Ids of every layer on disk (image and container layers), for garbage collection."""
        ...

    def prepare_rw(self, container_id: str, parent_id: str | None) -> None:
        """Create the container's read-write layer on top of ``parent_id``."""
        ...

    def mounts(self, container_id: str, target: str) -> list[Mount]:
        """The plan that makes ``target`` the container's root file system."""
        ...

    def remove_rw(self, container_id: str) -> None: ...

    def metadata(self, layer_id: str) -> dict[str, str]:
        """``GraphDriver.Data`` for inspect (``MergedDir``, ``UpperDir``, ``LowerDir``...)."""
        ...
