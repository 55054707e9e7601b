"""Layers: apply a tar into a new driver layer, then register it in the GraphDB.

The model: a layer is applied *before* anything is recorded (into a fresh driver dir named
by a random cache id), so a bad tar leaves nothing: the dir is removed and no row exists. A
good one becomes a :class:`PendingLayer`; the caller commits it together with the image that
uses it, in one transaction (:func:`commit_layers`). If the chain id already exists (the
same content was imported before) the new dir is dropped and the existing layer is shared::

    pending = apply_layer(driver, content, stream, parent=None)   # heavy I/O, no lock held
    with db.transaction():
        rows = commit_layers(db, driver, [pending])           # cheap, under the lock
"""

from __future__ import annotations

import hashlib
import mmap
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from berth.drivers.graph import GraphDriver
from berth.errors import SystemFailure
from berth.graph.budget import UnpackBudget
from berth.graph.content import ContentStore
from berth.graph.image import chain_id, now_ns, rfc3339_nano
from berth.graph.store import GraphDB, LayerRow


@dataclass(frozen=True)
class PendingLayer:
    """An applied but unrecorded layer."""

    chain_id: str
    diff_id: str
    parent: LayerRow | None
    size: int
    cache_id: str


@dataclass(frozen=True)
class AheadLayer:
    """A layer applied into the driver dir ``cache_id`` (made without a parent) before the
    image it belongs to was known; ``pending``'s chain id and parent are not yet meaningful."""

    cache_id: str
    pending: PendingLayer


def new_cache_id() -> str:
    return secrets.token_hex(32)


def apply_layer(
    driver: GraphDriver,
    content: ContentStore,
    stream: BinaryIO,
    parent: LayerRow | None,
    budget: UnpackBudget | None = None,
) -> PendingLayer:
    """Create a driver layer on ``parent`` and apply ``stream``, keeping the uncompressed tar
    as the blob named by its diff id (``docker save`` and push need the exact bytes); on any
    failure remove both. ``budget`` is charged with every uncompressed byte (the blob's)."""
    cache_id = new_cache_id()
    try:
        driver.create_layer(cache_id, parent.cache_id if parent else None)
    except OSError as exc:
        driver.remove_layer(cache_id)
        raise os_failure(f"apply layer {cache_id[:12]}", exc) from exc
    try:
        return apply_into(driver, content, stream, cache_id, parent, budget)
    except BaseException:
        driver.remove_layer(cache_id)
        raise


def apply_into(
    driver: GraphDriver,
    content: ContentStore,
    stream: BinaryIO,
    cache_id: str,
    parent: LayerRow | None,
    budget: UnpackBudget | None = None,
    digest: str | None = None,
) -> PendingLayer:
    """Apply ``stream`` into the existing (empty) driver layer ``cache_id``, keeping the tar as
    a blob; on failure the blob is gone and the caller removes the layer dir. The archive code
    hashes the tar for its diff id, so the blob writer does not hash it again. ``digest``: the
    sha256 of a plain :class:`OwnTar` the caller computed (:meth:`OwnTar.sha256`)."""
    if isinstance(stream, OwnTar) and stream.plain():
        # the caller's own file is the tar: it becomes the blob (a link), not a second copy
        if budget:
            budget.charge(stream.size)
        try:
            applied = driver.apply_diff(cache_id, stream, digest=digest)
            content.adopt(stream.fileno(), applied.diff_id)
        except OSError as exc:
            raise os_failure(f"apply layer {cache_id[:12]}", exc) from exc
    else:
        if digest is not None:
            raise SystemFailure("apply layer: a digest from the caller is for a plain OwnTar only")
        with content.ingest(hashed_by_caller=True, durable=False) as blob:
            try:
                applied = driver.apply_diff(cache_id, stream, budget.counting(blob) if budget else blob)
                blob.commit(applied.diff_id)
            except OSError as exc:
                raise os_failure(f"apply layer {cache_id[:12]}", exc) from exc
    return PendingLayer(
        chain_id(parent.chain_id if parent else None, applied.diff_id),
        applied.diff_id,
        parent,
        applied.size,
        cache_id,
    )


class OwnTar:
    """A layer file that belongs to the caller alone (a temp file of ``docker load``), opened
    for reading: where it is a plain tar, applying it links it into the content store as the
    layer's blob instead of writing the same bytes again. A compressed one is read as any stream.
    The blob is the file opened here (linked by its descriptor), whatever ``path`` names by
    then; ``inode`` tells it apart from another file later at the same path."""

    _COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "rb")  # noqa: SIM115  # closed by close()/__exit__
        info = os.fstat(self._file.fileno())
        self.size = info.st_size
        self.inode = (info.st_dev, info.st_ino)

    def sha256(self) -> str:
        """The digest of the whole file (mapped: hashed where the page cache holds it), read
        without moving the read position."""
        sha = hashlib.sha256()
        if self.size:
            with mmap.mmap(self._file.fileno(), self.size, prot=mmap.PROT_READ) as data:
                sha.update(data)
        return "sha256:" + sha.hexdigest()

    def plain(self) -> bool:
        return not self._file.peek(6)[:6].startswith(self._COMPRESSED)

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def peek(self, size: int = 0) -> bytes:
        return self._file.peek(size)

    def fileno(self) -> int:
        return self._file.fileno()

    def seek(self, offset: int) -> int:
        return self._file.seek(offset)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> OwnTar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def os_failure(operation: str, exc: OSError) -> SystemFailure:
    """A kernel error as berth's error: the operation, the path, the cause (crun's habit)."""
    where = f" {exc.filename}" if exc.filename else ""
    return SystemFailure(f"{operation}:{where}: {exc.strerror or exc}")


def commit_layers(
    db: GraphDB, driver: GraphDriver, pending: list[PendingLayer]
) -> tuple[list[LayerRow], list[str]]:
    """Record ``pending`` layers (inside the caller's transaction).

    Returns the rows, and the cache ids of duplicate driver dirs the caller removes once the
    transaction has committed.
    """
    rows: list[LayerRow] = []
    drop: list[str] = []
    for layer in pending:
        existing = db.layer(layer.chain_id)
        if existing is not None and driver.exists(existing.cache_id):
            rows.append(existing)
            drop.append(layer.cache_id)
            continue
        if existing is not None:  # a row whose dir vanished: adopt the fresh dir
            db.delete_layer(existing.chain_id)
        row = LayerRow(
            layer.chain_id,
            layer.diff_id,
            layer.parent.chain_id if layer.parent else None,
            layer.size,
            layer.cache_id,
            rfc3339_nano(now_ns()),
        )
        db.add_layer(row)
        rows.append(row)
    return rows, drop


def drop_blobs(db: GraphDB, content: ContentStore, diff_ids: list[str]) -> None:
    """Delete the layer tar blobs of ``diff_ids`` (and their compressed forms) that no
    recorded layer uses any more."""
    for diff_id in set(diff_ids):
        if not db.layers_with_diff(diff_id):
            for digest in db.delete_layer_blobs(diff_id):
                content.delete(digest)
            content.delete(diff_id)


def layer_chain(db: GraphDB, top: str | None) -> list[LayerRow]:
    """The layers from ``top`` down to the base, top first."""
    chain: list[LayerRow] = []
    current = top
    while current:
        row = db.layer(current)
        if row is None:
            break
        chain.append(row)
        current = row.parent
    return chain


def referenced_layers(
    db: GraphDB, held: set[str] | frozenset[str], tops: Iterable[str | None]
) -> set[str]:
    """Chain ids used by an image (``tops``: the images' top layers), a container's layer, or
    ``held`` by an image being built, with all their ancestors."""
    layers = {row.chain_id: row for row in db.layers()}
    used: set[str] = set()
    for top in [*tops, *(rw.top_layer for rw in db.rw_layers()), *held]:
        current = top
        while current and current not in used:
            used.add(current)
            current = layers[current].parent if current in layers else None
    return used
