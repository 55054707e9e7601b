"""Recording images: one transaction for config, layers and tag; layer sharing between builds.

The model: :func:`register_image` records an image whose layers are applied (``pending``,
not yet recorded, or already in the GraphDB) in one transaction, so an image is either whole
or absent. :func:`create_image` (pull, load) applies only the layers the graph lacks, checks
each against the config's diff id, records it at once and *holds* it -- a held layer is never
pruned -- until the image is registered. Two builds that need the same layer wait for one
another instead of applying it twice (:class:`LayerHolds`)::

    image_id = create_image(images, layers, config_bytes, lambda i: open(layer_paths[i], "rb"), "bbx:v1", budget)

Both take the image store and the layer store (and no more): the images record the config and
the name, the layers the layer rows and dirs, in one transaction (:mod:`berth.graph.txn`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import BinaryIO

from berth.errors import InvalidParameter, NotFound
from berth.graph import reference, txn
from berth.graph.budget import UnpackBudget
from berth.graph.configcheck import check_config, parse_json
from berth.graph.content import ContentStore
from berth.graph.image import chain_ids, image_id, now_ns, rfc3339_nano, sortable_ns
from berth.graph.imagestore import ImageStore
from berth.graph.layers import AheadLayer, PendingLayer, new_cache_id
from berth.graph.layerstore import LayerHolds, LayerStore
from berth.graph.store import ImageRow, LayerRow

__all__ = ["LayerHolds", "create_image", "register_image"]


def register_image(
    images: ImageStore,
    layers: LayerStore,
    content: ContentStore,
    config: bytes,
    pending: list[PendingLayer],
    repo_tag: str | None,
    parent: str,
) -> str:
    """Record an image whose config bytes are ``config`` and whose new layers are ``pending``
    (the top one last), optionally tagged; one transaction. Returns the image id."""
    doc = json.loads(config)
    target = reference.parse_repository(repo_tag) if repo_tag else None
    diff_ids = list((doc.get("rootfs") or {}).get("diff_ids") or [])
    new_id = image_id(config)
    try:
        created_ns = sortable_ns(doc.get("created"))
    except (ValueError, TypeError) as exc:
        raise InvalidParameter(f"register image {new_id}: bad created time: {exc}") from exc
    drop: list[str] = []
    with txn.locked(images, layers):
        wrote_blob = not content.exists(new_id)
        try:
            content.put(config, expected=new_id)
            with layers.transaction():
                rows, drop = layers.commit(pending)
                top = rows[-1].chain_id if rows else _existing_top(layers, diff_ids)
                chain = layers.chain(top)
                if [row.diff_id for row in reversed(chain)] != diff_ids:
                    raise InvalidParameter(f"register image {new_id}: layers do not match rootfs.diff_ids")
                stamp = rfc3339_nano(now_ns()) if target else ""
                if images.find(new_id) is None:
                    size = sum(row.size for row in chain)
                    images.add(ImageRow(new_id, new_id, doc.get("created") or "", created_ns, size, parent, top, stamp))
                if target is not None:
                    images.set_tag(target.name, target.tag, new_id, stamp)
        except BaseException:
            layers.undo(pending)
            if wrote_blob and images.find(new_id) is None:
                content.delete(new_id)
            raise
        layers.remove_dirs(drop)
    return new_id


def _existing_top(layers: LayerStore, diff_ids: list[str]) -> str | None:
    if not diff_ids:
        return None
    top = chain_ids(diff_ids)[-1]
    if layers.get(top) is None:
        raise NotFound(f"register image: layer {top} not found")
    return top


def create_image(
    images: ImageStore,
    layers: LayerStore,
    content: ContentStore,
    config: bytes,
    open_layer: Callable[[int], BinaryIO],
    repo_tag: str | None,
    budget: UnpackBudget,
    ahead: Callable[[int], AheadLayer | None] | None = None,
) -> str:
    """Build an image from its config and its layer tars.

    ``open_layer(i)`` returns a file object (closed here) with the tar, plain or compressed, of
    ``rootfs.diff_ids[i]``; it is only called for layers the graph lacks, possibly from several
    threads at once. The layers' unpacked bytes are charged to ``budget``. On failure nothing of
    this build remains (layers other builds hold stay).

    ``ahead(i)`` (``docker load``, with an ``independent_layers`` driver) may instead hand over
    layer ``i`` already applied into a driver dir without a parent; from then on that dir is
    this build's (kept, or removed with the rest on failure) and gets its parent here.

    The layers the graph lacks are applied in parallel (a pull hands over each one as its download
    ends): their driver dirs are made first, in order (a dir names its parent's), then each diff is
    applied into its own dir by a worker thread, then all are checked against the config's diff
    ids and recorded in one transaction, base first.
    """
    diff_ids = check_config(parse_json(config, "create image: config"), "create image: config")
    chains = chain_ids(diff_ids)
    held: list[str] = []
    applying: list[str] = []
    try:
        rows: list[LayerRow | None] = []
        for chain in chains:
            row = layers.holds.claim(chain)
            if row is not None:
                held.append(chain)
            else:
                applying.append(chain)
            rows.append(row)
        missing = [i for i, row in enumerate(rows) if row is None]
        if missing and layers.driver.independent_layers:
            _apply_missing(layers, open_layer, diff_ids, chains, rows, missing, held, budget, ahead)
        else:  # one at a time: each layer dir starts as a copy of its parent's
            for i in missing:
                _apply_missing(layers, open_layer, diff_ids, chains, rows, [i], held, budget)
        for chain in applying:
            layers.holds.applied(chain)
        applying = []
        return register_image(images, layers, content, config, [], repo_tag, "")
    except BaseException:
        for chain in applying:
            layers.holds.applied(chain)
        layers.holds.release(held)
        held = []
        layers.prune(images.tops)
        raise
    finally:
        layers.holds.release(held)


def _apply_missing(
    layers: LayerStore,
    open_layer: Callable[[int], BinaryIO],
    diff_ids: list[str],
    chains: list[str],
    rows: list[LayerRow | None],
    missing: list[int],
    held: list[str],
    budget: UnpackBudget,
    ahead: Callable[[int], AheadLayer | None] | None = None,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    cache: dict[int, str] = {}
    applied: dict[int, PendingLayer] = {}
    try:
        for i in missing:  # in order: a layer dir names its parent's
            prev = rows[i - 1] if i else None
            parent_cache = prev.cache_id if prev is not None else cache.get(i - 1)
            early = ahead(i) if ahead is not None else None
            if early is not None:  # applied while the archive arrived: ours now
                cache[i], applied[i] = early.cache_id, early.pending
                if early.pending.diff_id != diff_ids[i]:
                    raise InvalidParameter(
                        f"create image: layer {i} has diff id {early.pending.diff_id}, config says {diff_ids[i]}"
                    )
                layers.set_parent(cache[i], parent_cache)
                continue
            cache[i] = new_cache_id()
            layers.create_dir(cache[i], parent_cache)

        def apply(i: int) -> PendingLayer:
            with open_layer(i) as stream:
                pending = layers.apply_into(stream, cache[i], budget)
            if pending.diff_id != diff_ids[i]:
                layers.drop_blobs([pending.diff_id])
                raise InvalidParameter(
                    f"create image: layer {i} has diff id {pending.diff_id}, config says {diff_ids[i]}"
                )
            return pending

        todo = [i for i in missing if i not in applied]
        workers = max(min(len(todo), os.cpu_count() or 2, 4), 1)
        with ThreadPoolExecutor(workers, thread_name_prefix="apply-layer") as pool:
            futures = {i: pool.submit(apply, i) for i in todo}
            error: BaseException | None = None
            for i, fut in futures.items():
                try:
                    applied[i] = fut.result()
                except BaseException as exc:  # keep the first; the others finish and are undone
                    error = error or exc
            if error is not None:
                raise error
        pendings = []
        for i in missing:
            prev_row = rows[i - 1] if i else None
            # only the parent's chain id is read when recording
            parent = prev_row if prev_row is not None else (
                LayerRow(chains[i - 1], diff_ids[i - 1], None, 0, cache[i - 1], "") if i else None)
            pendings.append(PendingLayer(chains[i], diff_ids[i], parent, applied[i].size, cache[i]))
        with layers.lock, layers.transaction():
            new_rows, drop = layers.commit(pendings)
            for i, row in zip(missing, new_rows, strict=True):
                layers.holds.hold(chains[i])  # before any prune can see the new, unreferenced rows
                held.append(chains[i])
                rows[i] = row
    except BaseException:
        layers.remove_dirs(reversed(list(cache.values())))
        layers.drop_blobs([p.diff_id for p in applied.values()])
        raise
    layers.remove_dirs(drop)
