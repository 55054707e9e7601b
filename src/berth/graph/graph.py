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
from berth.graph import imagearchive, pruning, reference, rwlayer
from berth.graph.content import ContentStore
from berth.graph.image import chain_ids, container_config, image_id, now_ns, parse_rfc3339, rfc3339_nano
from berth.graph.importer import import_stream
from berth.graph.layers import (
    PendingLayer,
    apply_layer,
    commit_layers,
    drop_blobs,
    layer_chain,
    referenced_layers,
)
from berth.graph.removal import remove_image
from berth.graph.store import GraphDB, ImageRow, LayerRow
from berth.graph.views import image_history, inspect_image, list_images
from berth.libcontainer import Mount


class Graph:
    """Images and layers of one daemon (one data root)."""

    def __init__(self, root: Path, db_path: Path, driver: GraphDriver) -> None:
        self.root = root
        self.driver = driver
        self.content = ContentStore(root)
        self.db = GraphDB(db_path)
        self.lock = threading.RLock()
        self._configs: dict[str, dict[str, Any]] = {}
        # Layers of images being built (pull/load): chain id -> holders; and chains being applied.
        self._held: dict[str, int] = {}
        self._applying: set[str] = set()
        self._changed = threading.Condition(self.lock)
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
            self.db.digest_target(ref.name, ref.digest) if ref.digest else self.db.tag_target(ref.name, ref.tag)
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
        return json.loads(json.dumps(cached))

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
        self,
        config: bytes,
        pending: list[PendingLayer],
        repo_tag: str | None = None,
        parent: str = "",
    ) -> str:
        """Record an image whose config bytes are ``config`` and whose new layers are ``pending``
        (the top one last), optionally tagged; one transaction. Returns the image id."""
        doc = json.loads(config)
        target = reference.parse_repository(repo_tag) if repo_tag else None
        diff_ids = list((doc.get("rootfs") or {}).get("diff_ids") or [])
        new_id = image_id(config)
        try:
            created_ns = parse_rfc3339(doc.get("created") or "0001-01-01T00:00:00Z")
        except ValueError as exc:
            raise InvalidParameter(f"register image {new_id}: bad created time: {exc}") from exc
        drop: list[str] = []
        wrote_blob = False
        with self.lock:
            try:
                wrote_blob = not self.content.exists(new_id)
                self.content.put(config, expected=new_id)
                with self.db.transaction():
                    rows, drop = commit_layers(self.db, self.driver, pending)
                    top = rows[-1].chain_id if rows else None
                    if top is None and diff_ids:
                        top = self._existing_chain(diff_ids)
                    chain = layer_chain(self.db, top)
                    if [row.diff_id for row in reversed(chain)] != diff_ids:
                        raise InvalidParameter(f"register image {new_id}: layers do not match rootfs.diff_ids")
                    stamp = rfc3339_nano(now_ns()) if target else ""
                    if self.db.image(new_id) is None:
                        self.db.add_image(
                            ImageRow(new_id, new_id, doc.get("created") or "", created_ns,
                                     sum(row.size for row in chain), parent, top, stamp)
                        )
                    if target is not None:
                        self.db.set_tag(target.name, target.tag, new_id)
                        self.db.set_last_tag_time(new_id, stamp)
            except BaseException:
                for layer in pending:
                    recorded = self.db.layer(layer.chain_id)  # the transaction rolled back
                    if recorded is None or recorded.cache_id != layer.cache_id:
                        self.driver.remove_layer(layer.cache_id)
                drop_blobs(self.db, self.content, [layer.diff_id for layer in pending])
                if wrote_blob and self.db.image(new_id) is None:
                    self.content.delete(new_id)
                raise
            for cache_id in drop:
                self.driver.remove_layer(cache_id)
        return new_id

    def held_layers(self) -> set[str]:
        with self.lock:
            return set(self._held)

    def create_image(
        self, config: bytes, open_layer: Callable[[int], BinaryIO], repo_tag: str | None = None
    ) -> str:
        """Build an image from its config and its layer tars (``docker load``, a pull).

        ``open_layer(i)`` returns a file object (closed here) with the tar, plain or compressed,
        of ``rootfs.diff_ids[i]``; it is only called for layers the graph lacks. Each layer is
        checked against its diff id and recorded as soon as it is applied, held until the
        image is registered, so two builds sharing a base layer apply it once. On failure
        nothing of this build remains.
        """
        try:
            diff_ids = list(json.loads(config)["rootfs"]["diff_ids"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidParameter(f"create image: config has no rootfs.diff_ids: {exc}") from exc
        held: list[str] = []
        try:
            parent = None
            for index, (diff_id, chain) in enumerate(zip(diff_ids, chain_ids(diff_ids), strict=True)):
                row = self._claim(chain)
                if row is not None:
                    held.append(chain)
                else:
                    try:
                        with open_layer(index) as stream:
                            pending = apply_layer(self.driver, self.content, stream, parent)
                        if pending.diff_id != diff_id:
                            self.driver.remove_layer(pending.cache_id)
                            with self.lock:
                                drop_blobs(self.db, self.content, [pending.diff_id])
                            raise InvalidParameter(
                                f"create image: layer {index} has diff id {pending.diff_id}, config says {diff_id}"
                            )
                        with self.lock, self.db.transaction():
                            rows, drop = commit_layers(self.db, self.driver, [pending])
                            self._held[chain] = self._held.get(chain, 0) + 1  # before prune can see it
                            held.append(chain)
                        for cache_id in drop:
                            self.driver.remove_layer(cache_id)
                        row = rows[0]
                    finally:
                        with self._changed:
                            self._applying.discard(chain)
                            self._changed.notify_all()
                parent = row
            return self.register_image(config, [], repo_tag)
        except BaseException:
            self._release(held)
            held = []
            self.prune_layers()
            raise
        finally:
            self._release(held)

    def _claim(self, chain: str) -> LayerRow | None:
        """The recorded layer ``chain``, held for the caller (waiting while another build
        applies it); or None after marking it as being applied by the caller."""
        with self._changed:
            while chain in self._applying:
                self._changed.wait()
            row = self.db.layer(chain)
            if row is not None and self.driver.exists(row.cache_id):
                self._held[chain] = self._held.get(chain, 0) + 1
                return row
            self._applying.add(chain)
            return None

    def _release(self, chains: list[str]) -> None:
        with self.lock:
            for chain in chains:
                self._held[chain] -= 1
                if not self._held[chain]:
                    del self._held[chain]

    def layer_tar(self, diff_id: str) -> Path:
        """The uncompressed tar of a layer, exactly as imported or pulled (its sha256 is ``diff_id``)."""
        path = self.content.path(diff_id)
        if not path.is_file():
            raise NotFound(f"layer tar {diff_id} not found")
        return path

    def _existing_chain(self, diff_ids: list[str]) -> str | None:
        top = chain_ids(diff_ids)[-1]
        if self.db.layer(top) is None:
            raise NotFound(f"register image: layer {top} not found")
        return top

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

    def prune(self, filters: dict[str, Any] | None = None, users: Callable[[str], list[str]] | None = None) -> dict[str, Any]:
        """``docker image prune``: ``{"ImagesDeleted": [...] | None, "SpaceReclaimed": n}``."""
        return pruning.prune(self, filters or {}, users or (lambda _id: []))

    def save(self, names: list[str], out: BinaryIO) -> None:
        """``docker save``: write the named images as a docker-archive tar to ``out``."""
        imagearchive.save(self, names, out)

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
        self, ref: str, force: bool = False, noprune: bool = False, users: Callable[[str], list[str]] | None = None
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
        """A file as the container sees it (no mount needed); None if absent."""
        return rwlayer.read_file(self, container_id, path)

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
    ) -> str:
        """``docker commit``: a new image from the container's changes; returns its id."""
        return rwlayer.commit(self, container_id, repo_tag, changes, message, author, container_config)

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
            unused = sorted((row for row in rows.values() if row.chain_id not in used),
                            key=lambda row: -len(layer_chain(self.db, row.chain_id)))
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
