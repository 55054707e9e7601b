"""The layer store: image layers and containers' read-write layers, the driver's dirs and their rows.

A layer is a driver directory (``cache_id``) recorded under its chain id; its uncompressed tar
is kept in the content store under its diff id, with any compressed forms a pull fetched or a
push made (``compressed_forms``). Layers are applied before anything is recorded
(:meth:`LayerStore.apply`, no lock held) and recorded with the image that uses them
(:meth:`LayerStore.commit`, inside the caller's transaction). What no image, container or
image being built uses is garbage (:meth:`LayerStore.prune` with the images' top layers)::

    pending = layers.apply(stream, parent=None)
    with txn.locked(images, layers), layers.transaction():
        rows, drop = layers.commit([pending]); images.add(...)
    layers.remove_dirs(drop)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from berth.drivers.graph import GraphDriver
from berth.errors import NotFound
from berth.graph.budget import UnpackBudget
from berth.graph.content import ContentStore
from berth.graph.layers import (
    PendingLayer,
    apply_into,
    apply_layer,
    commit_layers,
    drop_blobs,
    layer_chain,
    referenced_layers,
)
from berth.graph.store import GraphDB, LayerRow, RwLayerRow
from berth.libcontainer import Mount

INIT_SUFFIX = "-init"
SCRATCH_INIT = "scratch-init"  # the init layer of images without layers


def init_id(top_cache_id: str | None) -> str:
    """The driver id of the init layer over an image whose top layer is ``top_cache_id``."""
    return top_cache_id + INIT_SUFFIX if top_cache_id else SCRATCH_INIT


class LayerHolds:
    """Chain ids held by images being built, and chains some build is applying right now."""

    def __init__(self, layers: LayerStore) -> None:
        self._layers = layers
        self._lock = layers.lock
        self._held: dict[str, int] = {}
        self._applying: set[str] = set()
        self._changed = threading.Condition(layers.lock)

    def held(self) -> set[str]:
        with self._lock:
            return set(self._held)

    def hold(self, chain: str) -> None:
        with self._lock:
            self._held[chain] = self._held.get(chain, 0) + 1

    def release(self, chains: list[str]) -> None:
        with self._lock:
            for chain in chains:
                self._held[chain] -= 1
                if not self._held[chain]:
                    del self._held[chain]

    def claim(self, chain: str) -> LayerRow | None:
        """The recorded layer ``chain``, now held for the caller (after waiting while another
        build applies it); or None, and the caller must apply it and call :meth:`applied`."""
        with self._changed:
            while chain in self._applying:
                self._changed.wait()
            row = self._layers.get(chain)
            if row is not None and self._layers.driver.exists(row.cache_id):
                self.hold(chain)
                return row
            self._applying.add(chain)
            return None

    def applied(self, chain: str) -> None:
        with self._changed:
            self._applying.discard(chain)
            self._changed.notify_all()


class LayerStore:
    def __init__(self, db: GraphDB, driver: GraphDriver, content: ContentStore) -> None:
        self._db = db
        self.driver = driver
        self._content = content
        self.lock = threading.RLock()
        self.holds = LayerHolds(self)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction of the graph's database (images and layers are in the same one)."""
        with self._db.transaction():
            yield

    # -- rows -------------------------------------------------------------------------------------
    def get(self, chain_id: str) -> LayerRow | None:
        return self._db.layer(chain_id)

    def rows(self) -> list[LayerRow]:
        return self._db.layers()

    def chain(self, top: str | None) -> list[LayerRow]:
        """The layers from ``top`` down to the base, top first."""
        return layer_chain(self._db, top)

    def total_size(self) -> int:
        """Bytes of all image layers, each counted once (``docker system df``'s LayersSize)."""
        return sum(row.size for row in self._db.layers())

    def tar(self, diff_id: str) -> Path:
        """The uncompressed tar of a layer, exactly as imported or pulled (its sha256 is ``diff_id``)."""
        path = self._content.path(diff_id)
        if not path.is_file():
            raise NotFound(f"layer tar {diff_id} not found")
        return path

    def dirs(self, top: str | None) -> list[Path]:
        """The directories of the layer ``top`` (a chain id) and those below it, top first."""
        row = self._db.layer(top) if top else None
        return self.driver.layer_dirs(row.cache_id) if row else []

    def metadata(self, top: str | None) -> dict[str, str]:
        row = self._db.layer(top) if top else None
        return self.driver.metadata(row.cache_id) if row else {}

    # -- applying ---------------------------------------------------------------------------------
    def apply(self, stream: BinaryIO, parent: LayerRow | None, budget: UnpackBudget | None = None) -> PendingLayer:
        """A new layer on ``parent`` from a tar (heavy I/O, no lock held; nothing recorded)."""
        return apply_layer(self.driver, self._content, stream, parent, budget)

    def create_dir(self, cache_id: str, parent_cache_id: str | None) -> None:
        self.driver.create_layer(cache_id, parent_cache_id)

    def set_parent(self, cache_id: str, parent_cache_id: str | None) -> None:
        """Put a layer dir made without a parent onto ``parent_cache_id`` (:meth:`GraphDriver.set_parent`)."""
        self.driver.set_parent(cache_id, parent_cache_id)

    def apply_into(self, stream: BinaryIO, cache_id: str, budget: UnpackBudget | None = None,
                   digest: str | None = None) -> PendingLayer:
        return apply_into(self.driver, self._content, stream, cache_id, None, budget, digest)

    def has_diff(self, diff_id: str) -> bool:
        """Some recorded layer has the diff ``diff_id``."""
        return bool(self._db.layers_with_diff(diff_id))

    def commit(self, pending: list[PendingLayer]) -> tuple[list[LayerRow], list[str]]:
        """Record ``pending`` layers (inside the caller's transaction); the rows, and the driver
        dirs of duplicates to remove once it committed (:meth:`remove_dirs`)."""
        return commit_layers(self._db, self.driver, pending)

    def remove_dirs(self, cache_ids: Iterable[str]) -> None:
        for cache_id in cache_ids:
            self.driver.remove_layer(cache_id)

    def undo(self, pending: list[PendingLayer]) -> None:
        """A registration failed: remove the dirs of ``pending`` layers no row adopted, and
        their blobs."""
        for layer in pending:
            recorded = self._db.layer(layer.chain_id)  # the transaction rolled back
            if recorded is None or recorded.cache_id != layer.cache_id:
                self.driver.remove_layer(layer.cache_id)
        self.drop_blobs([layer.diff_id for layer in pending])

    def drop_blobs(self, diff_ids: list[str]) -> None:
        """Delete the tars (and compressed forms) of ``diff_ids`` no recorded layer uses."""
        with self.lock:
            drop_blobs(self._db, self._content, diff_ids)

    # -- compressed forms and where they came from --------------------------------------------------
    def compressed_forms(self, diff_id: str) -> list[tuple[str, str, int]]:
        """(digest, media type, size) of the blobs that are compressed forms of the layer."""
        return self._db.layer_blobs(diff_id)

    def record_blob(self, diff_id: str, digest: str, media_type: str, size: int) -> None:
        """Blob ``digest`` (already in the content store) is a form of the layer ``diff_id``."""
        with self.lock, self._db.transaction():
            if not self._db.layers_with_diff(diff_id):
                raise NotFound(f"record layer blob {digest}: layer {diff_id} not found")
            self._db.add_layer_blob(diff_id, digest, media_type, size)

    def blob_sources(self, digest: str, registry: str) -> list[str]:
        """The repositories of ``registry`` the blob was pulled from or pushed to."""
        return self._db.blob_sources(digest, registry)

    def add_blob_sources(self, digests: list[str], registry: str, repository: str) -> None:
        with self.lock, self._db.transaction():
            for digest in digests:
                self._db.add_blob_source(digest, registry, repository)

    # -- containers' layers -------------------------------------------------------------------------
    def rw(self, container_id: str) -> RwLayerRow | None:
        return self._db.rw_layer(container_id)

    def require_rw(self, container_id: str) -> RwLayerRow:
        row = self._db.rw_layer(container_id)
        if row is None:
            raise NotFound(f"container {container_id}: no read-write layer")
        return row

    def add_rw(self, row: RwLayerRow) -> None:
        with self.lock, self._db.transaction():
            self._db.add_rw_layer(row)

    def delete_rw(self, container_id: str) -> None:
        with self.lock:
            self.driver.remove_rw(container_id)
            with self._db.transaction():
                self._db.delete_rw_layer(container_id)

    def init_of(self, rw: RwLayerRow) -> str:
        """The driver id of the init layer under a container's read-write layer."""
        top = self._db.layer(rw.top_layer) if rw.top_layer else None
        return init_id(top.cache_id if top else None)

    def mounts(self, container_id: str, target: str | Path) -> list[Mount]:
        """The mount plan that makes ``target`` the container's root file system."""
        if self._db.rw_layer(container_id) is None:
            raise NotFound(f"rootfs of container {container_id}: no read-write layer")
        return self.driver.mounts(container_id, str(target))

    def rw_size(self, container_id: str) -> int:
        return self.driver.size(container_id)

    def rw_metadata(self, container_id: str) -> dict[str, str]:
        return self.driver.metadata(container_id)

    def release(self, chain: list[LayerRow], image_tops: Iterable[str | None]) -> list[LayerRow]:
        """Forget the layers of ``chain`` nothing uses any more (inside the caller's transaction,
        after the image that used them is gone); the caller then calls :meth:`discard`."""
        used = referenced_layers(self._db, self.holds.held(), tops=image_tops)
        freed = [row for row in chain if row.chain_id not in used]
        for row in freed:
            self._db.delete_layer(row.chain_id)
        return freed

    def discard(self, rows: list[LayerRow]) -> None:
        """The dirs (and init layers) and blobs of layers :meth:`release` forgot."""
        for row in rows:
            self.driver.remove_layer(init_id(row.cache_id))
            self.driver.remove_layer(row.cache_id)
        self.drop_blobs([row.diff_id for row in rows])

    # -- garbage ------------------------------------------------------------------------------------
    def prune(self, image_tops: Callable[[], Iterable[str | None]]) -> list[str]:
        """Delete layers no image (``image_tops()``, read under this store's lock: an image
        recorded meanwhile recorded its layers under it too), container or build in progress
        uses; return their chain ids (top first)."""
        with self.lock:
            used = referenced_layers(self._db, self.holds.held(), tops=image_tops())
            rows = {row.chain_id: row for row in self._db.layers()}
            unused = sorted(
                (row for row in rows.values() if row.chain_id not in used),
                key=lambda row: -len(layer_chain(self._db, row.chain_id)),
            )
            with self._db.transaction():
                for row in unused:
                    self._db.delete_layer(row.chain_id)
            for row in unused:
                self.driver.remove_layer(init_id(row.cache_id))
                self.driver.remove_layer(row.cache_id)
            drop_blobs(self._db, self._content, [row.diff_id for row in unused])
            return [row.chain_id for row in unused]

    def collect_garbage(self, image_tops: Callable[[], Iterable[str | None]]) -> None:
        """At start-up: drop driver dirs with no row (an import cut short), layers nothing uses
        (rows a pull recorded before it was cut short) and temporary blobs."""
        with self.lock:
            known = {SCRATCH_INIT} | {rw.cache_id for rw in self._db.rw_layers()}
            for row in self._db.layers():
                known |= {row.cache_id, init_id(row.cache_id)}
            for cache_id in self.driver.layers():
                if cache_id not in known:
                    self.driver.remove_layer(cache_id)
            self.prune(image_tops)
            self._content.gc(keep=set(self._content.digests()))
