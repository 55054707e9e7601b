"""The Graph: images, their layers and names, over a content store, a GraphDB and a driver.

The model (Docker's image store + layer store + reference store in one object): an image is
a config blob (its digest is the image id) on top of a chain of layers held by the graph
driver; tags and digests name images; containers get a read-write layer on an image's top
layer. The API is synchronous; the daemon calls it from worker threads, and one lock keeps
each operation atomic with respect to the others (heavy tar I/O runs outside it)::

    graph = Graph(Path("/var/lib/berth"), Path("/var/lib/berth/berth.db"), new_driver(None, root))
    image_id = graph.import_tar(Path("rootfs.tar"), "busybox:latest", ['CMD ["sh"]'], "")
    graph.resolve("busybox")                 # 'sha256:...'
    graph.prepare_rw(cid, image_id); graph.rootfs_mounts(cid, "/run/berth/<cid>/rootfs")

On disk: ``<root>/blobs/sha256/<hex>`` (configs), the driver's dirs, and the tables in
``db_path`` (see :mod:`berth.graph.store`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from berth.drivers.graph import GraphDriver
from berth.errors import InvalidParameter, NotFound
from berth.graph import derive, distribution, imagearchive, pruning, reference, registration, rwlayer
from berth.graph.budget import DEFAULT_MAX_IMPORT_SIZE, UnpackBudget
from berth.graph.content import ContentStore
from berth.graph.image import container_config, now_ns, rfc3339_nano
from berth.graph.importer import import_stream
from berth.graph.layers import (
    PendingLayer,
    drop_blobs,
    layer_chain,
    referenced_layers,
)
from berth.graph.removal import remove_image
from berth.graph.store import GraphDB, ImageRow
from berth.graph.views import image_history, inspect_image, list_images
from berth.libcontainer import Mount


class Graph:
    """Images and layers of one daemon (one data root)."""

    def __init__(
        self, root: Path, db_path: Path, driver: GraphDriver, max_import_size: int = DEFAULT_MAX_IMPORT_SIZE
    ) -> None:
        self.root = root
        self.driver = driver
        self.max_import_size = max_import_size  # decompressed bytes one import/load/pull may read
        self.content = ContentStore(root)
        self.db = GraphDB(db_path)
        self.lock = threading.RLock()
        self._configs: dict[str, dict[str, Any]] = {}
        self.holds = registration.LayerHolds(self.lock)  # layers of images being built
        self.collect_garbage()

    def close(self) -> None:
        self.db.close()

    # names -> ids
    def resolve(self, ref_or_id: str) -> str:
        """The image id for a name, digest reference, full id or unique id prefix."""
        full = reference.full_id(ref_or_id)
        if full is not None:
            if self.db.image(full) is None:
                raise NotFound(f"No such image: {full}")
            return full
        ref = reference.parse(ref_or_id).with_default_tag()
        found = (
            self.db.digest_target(ref.name, ref.digest)
            if ref.digest
            else self.db.tag_target(ref.name, ref.tag)
        )
        if found is not None and self.db.image(found) is not None:
            return found
        prefix = reference.id_prefix(ref_or_id)
        if prefix is not None:
            matches = self.db.image_ids_with_prefix(prefix)
            if len(matches) == 1:
                return matches[0]
        raise NotFound(f"No such image: {ref.familiar()}")

    def image(self, image_id_: str) -> ImageRow:
        row = self.db.image(image_id_)
        if row is None:
            raise NotFound(f"No such image: {image_id_}")
        return row

    def image_config(self, image_id_: str) -> dict[str, Any]:
        """The whole image config document (cached; configs never change)."""
        cached = self._configs.get(image_id_)
        if cached is None:
            row = self.image(image_id_)
            cached = json.loads(self.content.get(row.config_digest))
            self._configs[image_id_] = cached
        copy: dict[str, Any] = json.loads(json.dumps(cached))
        return copy

    def forget_config(self, image_id_: str) -> None:
        self._configs.pop(image_id_, None)

    def config_bytes(self, image_id_: str) -> bytes:
        return self.content.get(self.image(image_id_).config_digest)

    def config(self, image_id_: str) -> dict[str, Any]:
        """The image's container config (``Cmd``, ``Env``, ``WorkingDir``...), Docker's shape."""
        return container_config(self.image_config(image_id_).get("config") or {})

    def repo_tags(self, image_id_: str) -> list[str]:
        return [reference.Reference(repo, tag).familiar() for repo, tag in self.db.tags_of(image_id_)]

    def repo_digests(self, image_id_: str) -> list[str]:
        return [reference.Reference(repo, "", dg).familiar() for repo, dg in self.db.digests_of(image_id_)]

    # tags
    def tag(self, ref: str, repo: str, tag: str = "") -> str:
        """Point ``repo:tag`` at the image ``ref`` names; return the familiar new name."""
        target = reference.parse_repository(repo, tag)
        with self.lock:
            found = self.resolve(ref)
            with self.db.transaction():
                self.db.set_tag(target.name, target.tag, found)
                self.db.set_last_tag_time(found, rfc3339_nano(now_ns()))
        return target.familiar()

    def add_digest(self, image_id_: str, repo: str, digest: str) -> None:
        """Record ``repo@digest`` (a pulled manifest) as a name of the image."""
        ref = reference.parse(f"{repo}@{digest}")
        with self.lock, self.db.transaction():
            self.image(image_id_)
            self.db.set_digest(ref.name, ref.digest, image_id_)

    # images
    def register_image(
        self, config: bytes, pending: list[PendingLayer], repo_tag: str | None = None, parent: str = ""
    ) -> str:
        """Record an image whose config bytes are ``config`` and whose new layers are ``pending``
        (the top one last), optionally tagged; one transaction. Returns the image id."""
        return registration.register_image(self, config, pending, repo_tag, parent)

    def create_image(
        self,
        config: bytes,
        open_layer: Callable[[int], BinaryIO],
        repo_tag: str | None = None,
        budget: UnpackBudget | None = None,
    ) -> str:
        """Build an image from its config and its layer tars (``docker load``, a pull); see
        :func:`berth.graph.registration.create_image`."""
        return registration.create_image(self, config, open_layer, repo_tag, budget)

    def held_layers(self) -> set[str]:
        return self.holds.held()

    def manifest(self, image_id_: str) -> bytes:
        """Docker v2 schema 2 manifest for a push (see :mod:`berth.graph.distribution`)."""
        return distribution.manifest(self, image_id_)

    def push_blobs(self, image_id_: str) -> list[distribution.Blob]:
        """The image's compressed layer blobs, base first (made once, then reused)."""
        return distribution.push_blobs(self, image_id_)

    def config_blob(self, image_id_: str) -> distribution.Blob:
        return distribution.config_blob(self, image_id_)

    def record_layer_blob(self, diff_id: str, digest: str, media_type: str, size: int) -> None:
        """After a pull: blob ``digest`` (in :attr:`content`) is a compressed form of ``diff_id``."""
        distribution.record_layer_blob(self, diff_id, digest, media_type, size)

    def layers_size(self) -> int:
        """Bytes of all image layers, each counted once (``docker system df``'s LayersSize)."""
        return sum(row.size for row in self.db.layers())

    def layer_tar(self, diff_id: str) -> Path:
        """The uncompressed tar of a layer, exactly as imported or pulled (its sha256 is ``diff_id``)."""
        path = self.content.path(diff_id)
        if not path.is_file():
            raise NotFound(f"layer tar {diff_id} not found")
        return path

    def import_tar(self, path: Path, repo_tag: str | None, changes: list[str], message: str) -> str:
        """``docker import``: one rootfs tar (plain or compressed) becomes a one-layer image."""
        try:
            stream: BinaryIO = open(path, "rb")
        except OSError as exc:
            raise InvalidParameter(f"import {path}: {exc.strerror or exc}") from exc
        with stream:
            return import_stream(self, stream, repo_tag, changes, message)

    def import_stream(self, stream: BinaryIO, repo_tag: str | None, changes: list[str], message: str) -> str:
        """:meth:`import_tar` from an open stream (an HTTP body)."""
        return import_stream(self, stream, repo_tag, changes, message)

    def prune(
        self, filters: dict[str, Any] | None = None, users: Callable[[str], list[str]] | None = None
    ) -> dict[str, Any]:
        """``docker image prune``: ``{"ImagesDeleted": [...] | None, "SpaceReclaimed": n}``."""
        return pruning.prune(self, filters or {}, users or (lambda _id: []))

    def save(self, names: list[str], out: BinaryIO, oci: bool = False) -> None:
        """``docker save``: write the named images as a docker-archive tar to ``out``."""
        imagearchive.save(self, names, out, oci)

    def load(self, stream: BinaryIO) -> list[str]:
        """``docker load``: returns the lines Docker prints (``Loaded image: busybox:latest``)."""
        return imagearchive.load(self, stream)

    def inspect(self, ref: str) -> dict[str, Any]:
        try:
            found = self.resolve(ref)
        except NotFound as exc:
            raise NotFound(f"no such image: {ref}: {exc.message}") from exc
        return inspect_image(self, found)

    def history(self, ref: str) -> list[dict[str, Any]]:
        return image_history(self, self.resolve(ref))

    def remove(
        self,
        ref: str,
        force: bool = False,
        noprune: bool = False,
        users: Callable[[str], list[str]] | None = None,
    ) -> list[dict[str, str]]:
        """``docker rmi``: ``[{"Untagged": "busybox:latest"}, {"Deleted": "sha256:..."}]``."""
        with self.lock:
            return remove_image(self, ref, force, noprune, users or (lambda _id: []))

    # container layers
    def prepare_rw(self, container_id: str, image_id_: str) -> None:
        """Create the container's init and read-write layers on the image's top layer."""
        with self.lock:
            rwlayer.prepare_rw(self, container_id, image_id_)

    def rootfs_mounts(self, container_id: str, target: str | Path) -> list[Mount]:
        """The mount plan that makes ``target`` the container's root file system."""
        if self.db.rw_layer(container_id) is None:
            raise NotFound(f"rootfs of container {container_id}: no read-write layer")
        return self.driver.mounts(container_id, str(target))

    def read_file(self, container_id: str, path: str) -> bytes | None:
        """A small file as the container sees it (no mount needed); None if absent;
        ``berth.accountfile.AccountFileError`` if it is not a regular file of at most 1 MiB."""
        return rwlayer.read_file(self, container_id, path)

    def mkdir(self, container_id: str, path: str) -> None:
        """Create a missing directory (``WorkingDir``) in a container that is not running."""
        rwlayer.make_dirs(self, container_id, path)

    def copy_dir(self, container_id: str, path: str, target: Path) -> bool:
        """Copy the container's directory ``path`` (its merged view, no mount) into the empty
        directory ``target``: a new volume's copy-up. False if ``path`` is not a directory."""
        return rwlayer.copy_dir(self, container_id, path, target)

    def changes(self, container_id: str) -> list[dict[str, Any]]:
        """``docker diff``: ``[{"Path": "/root", "Kind": 1}, ...]`` (0 changed, 1 added, 2 deleted)."""
        return rwlayer.container_changes(self, container_id)

    def export(self, container_id: str, out: BinaryIO) -> None:
        """``docker export``: the container's file system as a tar written to ``out``."""
        rwlayer.export(self, container_id, out)

    def commit(
        self,
        container_id: str,
        repo_tag: str | None,
        changes: list[str],
        message: str = "",
        author: str = "",
        container_config: dict[str, Any] | None = None,
        image_config: dict[str, Any] | None = None,
        created_by: str | None = None,
    ) -> str:
        """``docker commit``: a new image from the container's changes; returns its id. A build
        step gives the new image's config and history line itself (``image_config``, ``created_by``)."""
        return rwlayer.commit(
            self, container_id, repo_tag, changes, message, author, container_config, image_config, created_by
        )

    def derive(
        self,
        parent_id: str,
        layer: BinaryIO | None,
        config: dict[str, Any],
        container_config: dict[str, Any],
        created_by: str,
        author: str = "",
    ) -> str:
        """A build step's image without a container: ``parent_id`` ("" for none) plus an optional
        layer tar (see :mod:`berth.graph.derive`)."""
        return derive.derive_image(self, parent_id, layer, config, container_config, created_by, author)

    def image_layer_dirs(self, image_id_: str) -> list[Path]:
        """The directories of the image's layers, top first, for reading its files ([] if none)."""
        row = self.image(image_id_)
        top = self.db.layer(row.top_layer) if row.top_layer else None
        return self.driver.layer_dirs(top.cache_id) if top else []

    def has_rw(self, container_id: str) -> bool:
        """Whether the container's read-write layer is recorded (a removal deletes it first)."""
        return self.db.rw_layer(container_id) is not None

    def rw_size(self, container_id: str) -> int:
        """Bytes the container wrote (``SizeRw``)."""
        return self.driver.size(container_id)

    def rw_metadata(self, container_id: str) -> dict[str, str]:
        """``GraphDriver.Data`` of a container's inspect."""
        return self.driver.metadata(container_id)

    def remove_rw(self, container_id: str) -> None:
        """Remove the container's layer, and layers only a removed image still held."""
        with self.lock:
            rwlayer.remove_rw(self, container_id)
            self.prune_layers()

    # garbage
    def prune_layers(self) -> list[str]:
        """Delete layers no image or container uses; return their chain ids (top first)."""
        with self.lock:
            used = referenced_layers(self.db, self.held_layers())
            rows = {row.chain_id: row for row in self.db.layers()}
            unused = sorted(
                (row for row in rows.values() if row.chain_id not in used),
                key=lambda row: -len(layer_chain(self.db, row.chain_id)),
            )
            with self.db.transaction():
                for row in unused:
                    self.db.delete_layer(row.chain_id)
            for row in unused:
                self.driver.remove_layer(rwlayer.init_id(row.cache_id))
                self.driver.remove_layer(row.cache_id)
            drop_blobs(self.db, self.content, [row.diff_id for row in unused])
            return [row.chain_id for row in unused]

    def collect_garbage(self) -> None:
        """At start-up: drop driver dirs with no row (an import cut short) and temp blobs."""
        with self.lock:
            known = {rwlayer.SCRATCH_INIT} | {rw.cache_id for rw in self.db.rw_layers()}
            for row in self.db.layers():
                known |= {row.cache_id, rwlayer.init_id(row.cache_id)}
            for cache_id in self.driver.layers():
                if cache_id not in known:
                    self.driver.remove_layer(cache_id)
            self.prune_layers()  # rows a pull recorded before it was cut short
            self.content.gc(keep=set(self.content.digests()))

    # last in the class body: the name shadows the builtin in annotations below it
    def list(self, all: bool = False, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:  # noqa: A002
        return list_images(self, all, filters or {})
