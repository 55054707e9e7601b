"""overlay2: layers as overlayfs lower directories, Docker's on-disk layout.

The model: each layer owns ``<root>/<id>/diff`` (what it adds, whiteouts as 0/0 character
devices), ``link`` (a short random name) and ``lower`` (its ancestors' short names, nearest
first). ``<root>/l/<short> -> ../<id>/diff`` keeps the ``lowerdir=`` option short, so deep
images stay under the one page the kernel accepts for mount data (with the data root
``/var/lib/berth`` each layer costs 39 bytes: about 100 layers). A container layer adds
``work/`` and no short link (it is never a lower layer); its rootfs is one overlay mount::

    <root>/l/6Q3HTJ4LYB2X -> ../3f1c.../diff
    <root>/3f1c.../{diff/,link,lower}
    <root>/<container id>/{diff/,work/,lower}

    mounts(cid, "/x/rootfs") == [Mount("overlay", "overlay", "/x/rootfs",
        ("lowerdir=<root>/l/6Q3HTJ4LYB2X", "upperdir=<root>/<cid>/diff", "workdir=<root>/<cid>/work",
         "index=off"))]
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import stat
from pathlib import Path
from typing import BinaryIO

from berth.drivers.graph.archive import Applied, WhiteoutFormat, Writer, apply_tar, tree_size
from berth.errors import Conflict, InvalidParameter, NotFound, SystemFailure
from berth.libcontainer import Mount

LINK_DIR = "l"
# mount(2) copies at most one page of option data; keep a margin for the other options.
MAX_MOUNT_DATA = 4096 - 1


SHORT_NAME_LEN = 12  # 60 random bits; Docker uses 26 characters, shorter fits more layers in a page


def _short_name() -> str:
    return base64.b32encode(secrets.token_bytes(10)).decode()[:SHORT_NAME_LEN]


class OverlayDriver:
    """The ``overlay2`` graph driver."""

    name = "overlay2"
    independent_layers = True
    whiteouts: WhiteoutFormat = "overlay"

    def __init__(self, root: Path) -> None:
        if any(c in str(root) for c in ",:"):
            raise InvalidParameter(
                f"overlay2: data root {root} contains ',' or ':', which mount options cannot carry"
            )
        self.root = root
        (root / LINK_DIR).mkdir(mode=0o700, parents=True, exist_ok=True)
        self._make_private()
        # index=off where the kernel knows the option, as Docker does: layers are shared by
        # many overlay mounts, which the inodes index would otherwise refuse (EBUSY).
        self._extra = ("index=off",) if Path("/sys/module/overlay/parameters/index").exists() else ()
        self._drop_dangling_links()

    def _make_private(self) -> None:
        """The root, ``l/`` and every layer dir 0700 (fixing what an older berth left 0755):
        a layer holds what containers wrote, setuid binaries and device nodes included, and only
        root may reach it. ``diff/`` keeps its mode: it is the root directory containers see."""
        for path in (self.root, self.root / LINK_DIR, *(p for p in self.root.iterdir() if p.name != LINK_DIR)):
            info = os.lstat(path)
            if stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) != 0o700:
                os.chmod(path, 0o700)

    def _drop_dangling_links(self) -> None:
        """Short links whose layer is gone (a crash between link and layer removal)."""
        for link in (self.root / LINK_DIR).iterdir():
            if link.is_symlink() and not link.exists():
                link.unlink()

    def _dir(self, layer_id: str) -> Path:
        if not layer_id or "/" in layer_id or layer_id in (".", "..", LINK_DIR):
            raise SystemFailure(f"overlay2: invalid layer id {layer_id!r}")
        return self.root / layer_id

    def create_layer(self, layer_id: str, parent_id: str | None) -> Path:
        return self._create(layer_id, parent_id, linkable=True)

    def _create(self, layer_id: str, parent_id: str | None, linkable: bool) -> Path:
        """The layer dir with ``diff/`` and ``lower``; a ``linkable`` layer (one that can be
        a lower layer: not a container's) also gets its short link."""
        layer = self._dir(layer_id)
        lower = self._lower_chain(parent_id) if parent_id else []
        try:
            layer.mkdir(mode=0o700)
        except FileExistsError as exc:
            raise Conflict(f"overlay2: create layer {layer_id}: already exists") from exc
        (layer / "diff").mkdir()
        os.chmod(layer / "diff", 0o755)  # a container's "/" until a layer tar says otherwise
        if lower:
            (layer / "lower").write_text(":".join(f"{LINK_DIR}/{s}" for s in lower))
        if not linkable:
            return layer / "diff"
        while True:
            short = _short_name()
            try:
                os.symlink(f"../{layer_id}/diff", self.root / LINK_DIR / short)
                break
            except FileExistsError:
                continue  # a 1-in-2**60 collision: draw again
        (layer / "link").write_text(short)
        return layer / "diff"

    def _lower_chain(self, parent_id: str) -> list[str]:
        """Short names of ``parent_id`` and its ancestors, nearest first."""
        parent = self._dir(parent_id)
        try:
            chain = [(parent / "link").read_text().strip()]
        except FileNotFoundError as exc:
            raise NotFound(f"overlay2: parent layer {parent_id} not found") from exc
        lower_file = parent / "lower"
        if lower_file.exists():
            chain += [entry.split("/", 1)[1] for entry in lower_file.read_text().strip().split(":") if entry]
        return chain

    def set_parent(self, layer_id: str, parent_id: str | None) -> None:
        """A layer created without a parent (``docker load`` applies a layer before it knows
        where in an image it goes) now lies on ``parent_id``: its diff is the same, only
        ``lower`` names the new ancestors."""
        if parent_id is None:
            return
        lower = self._dir(layer_id) / "lower"
        if lower.exists():
            raise SystemFailure(f"overlay2: set parent of layer {layer_id}: it has one")
        lower.write_text(":".join(f"{LINK_DIR}/{s}" for s in self._lower_chain(parent_id)))

    def apply_diff(self, layer_id: str, stream: BinaryIO, tee: Writer | None = None,
                   digest: str | None = None) -> Applied:
        return apply_tar(stream, self.diff_dir(layer_id), self.whiteouts, tee, digest)

    def diff_dir(self, layer_id: str) -> Path:
        return self._dir(layer_id) / "diff"

    def layer_dirs(self, layer_id: str) -> list[Path]:
        return [self.diff_dir(layer_id)] + [Path(os.path.realpath(p)) for p in self.lower_dirs(layer_id)]

    def size(self, layer_id: str) -> int:
        return tree_size(self.diff_dir(layer_id))

    def exists(self, layer_id: str) -> bool:
        return (self._dir(layer_id) / "diff").is_dir()

    def remove_layer(self, layer_id: str) -> None:
        layer = self._dir(layer_id)
        try:
            short = (layer / "link").read_text().strip()
        except FileNotFoundError:
            short = ""
        if short:
            try:
                (self.root / LINK_DIR / short).unlink()
            except FileNotFoundError:
                pass  # already gone: the end state we want
        if layer.exists():
            shutil.rmtree(layer)

    def layers(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.name != LINK_DIR and p.is_dir())

    def prepare_rw(self, container_id: str, parent_id: str | None) -> None:
        # Every file-system operation costs ~0.5 ms on this kind of machine: a container layer
        # gets only what an upper dir needs (no short link, no merged/: berth mounts elsewhere).
        self._create(container_id, parent_id, linkable=False)
        layer = self._dir(container_id)
        (layer / "work").mkdir(mode=0o700)
        if parent_id is None:
            (layer / "empty").mkdir(mode=0o700)  # overlayfs needs a lowerdir even for an empty image

    def lower_dirs(self, layer_id: str) -> list[Path]:
        """The lower layers' short-link paths for ``layer_id``, nearest first."""
        lower_file = self._dir(layer_id) / "lower"
        if not lower_file.exists():
            return []
        return [self.root / entry for entry in lower_file.read_text().strip().split(":") if entry]

    def mounts(self, container_id: str, target: str) -> list[Mount]:
        layer = self._dir(container_id)
        if not (layer / "work").is_dir():
            raise NotFound(f"overlay2: read-write layer for container {container_id} not found")
        lowers = [str(p) for p in self.lower_dirs(container_id)] or [str(layer / "empty")]
        options = (
            "lowerdir=" + ":".join(lowers),
            f"upperdir={layer / 'diff'}",
            f"workdir={layer / 'work'}",
            *self._extra,
        )
        if len(",".join(options)) > MAX_MOUNT_DATA:
            raise SystemFailure(
                f"overlay2: mount options for container {container_id}: {len(lowers)} layers "
                f"exceed one page of mount data"
            )
        return [Mount("overlay", "overlay", target, options)]

    def remove_rw(self, container_id: str) -> None:
        self.remove_layer(container_id)

    def metadata(self, layer_id: str) -> dict[str, str]:
        layer = self._dir(layer_id)
        data = {
            "MergedDir": str(layer / "merged"),
            "UpperDir": str(layer / "diff"),
            "WorkDir": str(layer / "work"),
        }
        lowers = [os.path.realpath(p) for p in self.lower_dirs(layer_id)]
        if lowers:
            data["LowerDir"] = ":".join(lowers)
        return data
