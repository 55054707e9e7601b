"""vfs: every layer is a full copy of its parent plus its own changes; works on any filesystem.

The model: ``<root>/dir/<id>`` holds the *whole* tree of that layer, so creating a layer copies
the parent (``cp -a``, keeping owners, modes, links, devices and xattrs; reflinks where the
filesystem has them), whiteouts are applied by deleting, and a container's rootfs is a bind
mount of its own copy. Slow and space hungry, and the fallback when overlayfs is missing::

    mounts(cid, "/x/rootfs") == [Mount("bind", "<root>/dir/<cid>", "/x/rootfs", ("rbind", "rw"))]

``cp`` is used rather than a Python copy: it is the one tool that keeps every file type,
hard-link identity and xattr in one pass and can reflink.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import BinaryIO

from berth.drivers.graph.archive import Applied, WhiteoutFormat, Writer, apply_tar, tree_size
from berth.errors import Conflict, NotFound, SystemFailure
from berth.libcontainer import Mount


class VfsDriver:
    """The ``vfs`` graph driver."""

    name = "vfs"
    independent_layers = False
    whiteouts: WhiteoutFormat = "delete"

    def __init__(self, root: Path) -> None:
        self.root = root
        # 0700, fixing what an older berth left 0755: each layer dir is a whole root file system
        # with whatever setuid binaries and devices containers wrote; only root may reach it
        for path in (root, root / "dir"):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            if stat.S_IMODE(os.lstat(path).st_mode) != 0o700:
                os.chmod(path, 0o700)

    def _dir(self, layer_id: str) -> Path:
        if not layer_id or "/" in layer_id or layer_id in (".", ".."):
            raise SystemFailure(f"vfs: invalid layer id {layer_id!r}")
        return self.root / "dir" / layer_id

    def create_layer(self, layer_id: str, parent_id: str | None) -> Path:
        layer = self._dir(layer_id)
        if parent_id is not None and not self.exists(parent_id):
            raise NotFound(f"vfs: parent layer {parent_id} not found")
        try:
            layer.mkdir()
        except FileExistsError as exc:
            raise Conflict(f"vfs: create layer {layer_id}: already exists") from exc
        os.chmod(layer, 0o755)  # a container's "/" (the copy or the layer tar may change it)
        if parent_id is not None:
            _copy_tree(self._dir(parent_id), layer)
        return layer

    def set_parent(self, layer_id: str, parent_id: str | None) -> None:
        if parent_id is not None:  # a vfs layer starts as a copy of its parent's files
            raise SystemFailure(f"vfs: layer {layer_id}: a parent is given when the layer is created")

    def apply_diff(self, layer_id: str, stream: BinaryIO, tee: Writer | None = None,
                   digest: str | None = None) -> Applied:
        return apply_tar(stream, self.diff_dir(layer_id), self.whiteouts, tee, digest)

    def diff_dir(self, layer_id: str) -> Path:
        return self._dir(layer_id)

    def layer_dirs(self, layer_id: str) -> list[Path]:
        return [self._dir(layer_id)]

    def size(self, layer_id: str) -> int:
        return tree_size(self._dir(layer_id))

    def exists(self, layer_id: str) -> bool:
        return self._dir(layer_id).is_dir()

    def remove_layer(self, layer_id: str) -> None:
        layer = self._dir(layer_id)
        if layer.exists():
            shutil.rmtree(layer)

    def layers(self) -> list[str]:
        return sorted(p.name for p in (self.root / "dir").iterdir() if p.is_dir())

    def prepare_rw(self, container_id: str, parent_id: str | None) -> None:
        self.create_layer(container_id, parent_id)

    def mounts(self, container_id: str, target: str) -> list[Mount]:
        layer = self._dir(container_id)
        if not layer.is_dir():
            raise NotFound(f"vfs: read-write layer for container {container_id} not found")
        return [Mount("bind", str(layer), target, ("rbind", "rw"))]

    def remove_rw(self, container_id: str) -> None:
        self.remove_layer(container_id)

    def metadata(self, layer_id: str) -> dict[str, str]:
        return {}


def _copy_tree(source: Path, target: Path) -> None:
    """Copy the contents of ``source`` into the existing directory ``target``."""
    result = subprocess.run(
        ["cp", "-a", "--reflink=auto", f"{source}/.", f"{target}/"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemFailure(f"vfs: copy layer {source} to {target}: {result.stderr.strip()}")
