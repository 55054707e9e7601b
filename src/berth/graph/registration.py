"""Recording images: one transaction for config, layers and tag; layer sharing between builds.

The model: :func:`register_image` records an image whose layers are applied (``pending``,
not yet recorded, or already in the GraphDB) in one transaction, so an image is either whole
or absent. :func:`create_image` (pull, load) applies only the layers the graph lacks, checks
each against the config's diff id, records it at once and *holds* it -- a held layer is never
pruned -- until the image is registered. Two builds that need the same layer wait for one
another instead of applying it twice (:class:`LayerHolds`)::

    image_id = create_image(graph, config_bytes, lambda i: open(layer_paths[i], "rb"), "bbx:v1")
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

from berth.errors import InvalidParameter, NotFound
from berth.graph import reference
from berth.graph.budget import UnpackBudget
from berth.graph.configcheck import check_config, parse_json
from berth.graph.image import chain_ids, image_id, now_ns, rfc3339_nano, sortable_ns
from berth.graph.layers import PendingLayer, apply_into, commit_layers, drop_blobs, layer_chain, new_cache_id
from berth.graph.store import ImageRow, LayerRow

if TYPE_CHECKING:
    from berth.graph.graph import Graph


class LayerHolds:
    """Chain ids held by images being built, and chains some build is applying right now."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._held: dict[str, int] = {}
        self._applying: set[str] = set()
        self._changed = threading.Condition(lock)

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

    def claim(self, graph: Graph, chain: str) -> LayerRow | None:
        """The recorded layer ``chain``, now held for the caller (after waiting while another
        build applies it); or None, and the caller must apply it and call :meth:`applied`."""
        with self._changed:
            while chain in self._applying:
                self._changed.wait()
            row = graph.db.layer(chain)
            if row is not None and graph.driver.exists(row.cache_id):
                self.hold(chain)
                return row
            self._applying.add(chain)
            return None

    def applied(self, chain: str) -> None:
        with self._changed:
            self._applying.discard(chain)
            self._changed.notify_all()


def register_image(
    graph: Graph, config: bytes, pending: list[PendingLayer], repo_tag: str | None, parent: str
) -> str:
    doc = json.loads(config)
    target = reference.parse_repository(repo_tag) if repo_tag else None
    diff_ids = list((doc.get("rootfs") or {}).get("diff_ids") or [])
    new_id = image_id(config)
    try:
        created_ns = sortable_ns(doc.get("created"))
    except (ValueError, TypeError) as exc:
        raise InvalidParameter(f"register image {new_id}: bad created time: {exc}") from exc
    drop: list[str] = []
    with graph.lock:
        wrote_blob = not graph.content.exists(new_id)
        try:
            graph.content.put(config, expected=new_id)
            with graph.db.transaction():
                rows, drop = commit_layers(graph.db, graph.driver, pending)
                top = rows[-1].chain_id if rows else _existing_top(graph, diff_ids)
                chain = layer_chain(graph.db, top)
                if [row.diff_id for row in reversed(chain)] != diff_ids:
                    raise InvalidParameter(f"register image {new_id}: layers do not match rootfs.diff_ids")
                stamp = rfc3339_nano(now_ns()) if target else ""
                if graph.db.image(new_id) is None:
                    size = sum(row.size for row in chain)
                    graph.db.add_image(
                        ImageRow(
                            new_id, new_id, doc.get("created") or "", created_ns, size, parent, top, stamp
                        )
                    )
                if target is not None:
                    graph.db.set_tag(target.name, target.tag, new_id)
                    graph.db.set_last_tag_time(new_id, stamp)
        except BaseException:
            for layer in pending:
                recorded = graph.db.layer(layer.chain_id)  # the transaction rolled back
                if recorded is None or recorded.cache_id != layer.cache_id:
                    graph.driver.remove_layer(layer.cache_id)
            drop_blobs(graph.db, graph.content, [layer.diff_id for layer in pending])
            if wrote_blob and graph.db.image(new_id) is None:
                graph.content.delete(new_id)
            raise
        for cache_id in drop:
            graph.driver.remove_layer(cache_id)
    return new_id


def _existing_top(graph: Graph, diff_ids: list[str]) -> str | None:
    if not diff_ids:
        return None
    top = chain_ids(diff_ids)[-1]
    if graph.db.layer(top) is None:
        raise NotFound(f"register image: layer {top} not found")
    return top


def create_image(
    graph: Graph,
    config: bytes,
    open_layer: Callable[[int], BinaryIO],
    repo_tag: str | None,
    budget: UnpackBudget | None = None,
) -> str:
    """Build an image from its config and its layer tars.

    ``open_layer(i)`` returns a file object (closed here) with the tar, plain or compressed, of
    ``rootfs.diff_ids[i]``; it is only called for layers the graph lacks, possibly from several
    threads at once. The layers' unpacked bytes are charged to ``budget`` (by default one of the
    graph's ``max_import_size``). On failure nothing of this build remains (layers other builds
    hold stay).

    The layers the graph lacks are applied in parallel (a pull hands over each one as its download
    ends): their driver dirs are made first, in order (a dir names its parent's), then each diff is
    applied into its own dir by a worker thread, then all are checked against the config's diff
    ids and recorded in one transaction, base first.
    """
    budget = budget or UnpackBudget(graph.max_import_size, "create image")
    diff_ids = check_config(parse_json(config, "create image: config"), "create image: config")
    chains = chain_ids(diff_ids)
    held: list[str] = []
    applying: list[str] = []
    try:
        rows: list[LayerRow | None] = []
        for chain in chains:
            row = graph.holds.claim(graph, chain)
            if row is not None:
                held.append(chain)
            else:
                applying.append(chain)
            rows.append(row)
        missing = [i for i, row in enumerate(rows) if row is None]
        if missing and graph.driver.independent_layers:
            _apply_missing(graph, open_layer, diff_ids, chains, rows, missing, held, budget)
        else:  # one at a time: each layer dir starts as a copy of its parent's
            for i in missing:
                _apply_missing(graph, open_layer, diff_ids, chains, rows, [i], held, budget)
        for chain in applying:
            graph.holds.applied(chain)
        applying = []
        return register_image(graph, config, [], repo_tag, "")
    except BaseException:
        for chain in applying:
            graph.holds.applied(chain)
        graph.holds.release(held)
        held = []
        graph.prune_layers()
        raise
    finally:
        graph.holds.release(held)


def _apply_missing(
    graph: Graph,
    open_layer: Callable[[int], BinaryIO],
    diff_ids: list[str],
    chains: list[str],
    rows: list[LayerRow | None],
    missing: list[int],
    held: list[str],
    budget: UnpackBudget,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    cache: dict[int, str] = {}
    applied: dict[int, PendingLayer] = {}
    try:
        for i in missing:  # in order: a layer dir names its parent's
            prev = rows[i - 1] if i else None
            parent_cache = prev.cache_id if prev is not None else cache.get(i - 1)
            cache[i] = new_cache_id()
            graph.driver.create_layer(cache[i], parent_cache)

        def apply(i: int) -> PendingLayer:
            with open_layer(i) as stream:
                pending = apply_into(graph.driver, graph.content, stream, cache[i], None, budget)
            if pending.diff_id != diff_ids[i]:
                with graph.lock:
                    drop_blobs(graph.db, graph.content, [pending.diff_id])
                raise InvalidParameter(
                    f"create image: layer {i} has diff id {pending.diff_id}, config says {diff_ids[i]}"
                )
            return pending

        workers = min(len(missing), os.cpu_count() or 2, 4)
        with ThreadPoolExecutor(workers, thread_name_prefix="apply-layer") as pool:
            futures = {i: pool.submit(apply, i) for i in missing}
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
        with graph.lock, graph.db.transaction():
            new_rows, drop = commit_layers(graph.db, graph.driver, pendings)
            for i, row in zip(missing, new_rows, strict=True):
                graph.holds.hold(chains[i])  # before any prune can see the new, unreferenced rows
                held.append(chains[i])
                rows[i] = row
    except BaseException:
        for i in reversed(list(cache)):
            graph.driver.remove_layer(cache[i])
        with graph.lock:
            drop_blobs(graph.db, graph.content, [p.diff_id for p in applied.values()])
        raise
    for cache_id in drop:
        graph.driver.remove_layer(cache_id)
