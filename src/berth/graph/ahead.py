"""Layers of ``docker load`` applied while the rest of the archive still arrives.

The model: a docker-archive names its layers only in ``manifest.json``, which ``docker save``
writes last, so waiting for it means applying every layer after the whole archive is in. Instead
each extracted file that looks like a layer (``*/layer.tar`` or ``blobs/sha256/*`` holding a tar or
a compressed stream) goes at once to a worker thread, which hashes it (a plain tar) and, where no
recorded layer has that diff id, applies it into a driver dir of its own made without a parent
(with an ``independent_layers`` driver a layer's dir holds its own diff alone, whatever lies
below it) without hashing it again. When the archive is in and its manifest checked,
``create_image`` takes the layers the image needs (:meth:`LayersAhead.take`) and gives each its
parent. A config that comes before the layers (``docker save`` of berth writes it first) whose
layers the store has already means the files are those layers: they are not even hashed.

A layer is found by the inode of its file, opened when it was offered: the extraction never
writes a file again once it is complete (an archive member of the same name is a new file), so
what was applied is what the manifest's path names, or the path names another file and the
layer is not taken. What no image took is removed at the end, its blob too where no recorded
layer uses it; a layer not applied here, or whose apply failed, is applied the ordinary way,
which reports any error. What is applied here is charged to the load's budget, as the ordinary
way does::

    with LayersAhead(graph.layers, budget) as ahead:
        extract(archive, on_file=ahead.offer)          # applying starts as each file completes
        create_image(..., ahead=lambda i: ahead.take(layer_paths[i]))
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import BinaryIO, cast

from berth.errors import BerthError, InvalidParameter
from berth.graph.budget import UnpackBudget
from berth.graph.configcheck import MAX_CONFIG_SIZE, check_config, parse_json
from berth.graph.image import chain_ids
from berth.graph.layers import AheadLayer, OwnTar, new_cache_id
from berth.graph.layerstore import LayerStore

_BLOCK = 512
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


def looks_like_layer(name: str, head: bytes) -> bool:
    """An archive member worth applying ahead: named as a docker-archive or OCI layout names
    layers, and starting as a tar (the ``ustar`` magic) or a compressed stream does."""
    parts = PurePosixPath(name).parts
    if not parts or not (parts[-1] == "layer.tar" or parts[-3:-1] == ("blobs", "sha256")):
        return False
    return head.startswith(_COMPRESSED) or (len(head) >= _BLOCK and head[257:262] == b"ustar")


class _Stoppable(OwnTar):
    """The layer file, read until the load gives up (then the next read fails)."""

    def __init__(self, path: Path, stop: threading.Event) -> None:
        super().__init__(path)
        self._stop = stop

    def read(self, size: int = -1) -> bytes:
        if self._stop.is_set():
            raise InvalidParameter("load: stopped")
        return super().read(size)


class LayersAhead:
    """Applies offered layer files in ``workers`` threads; hands them over by path."""

    def __init__(self, layers: LayerStore, budget: UnpackBudget, workers: int = 2) -> None:
        self._layers = layers
        self._budget = budget
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="load-ahead")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ahead: dict[tuple[int, int], tuple[OwnTar, Future[AheadLayer | None]]] = {}
        self._configs_present: bool | None = None  # every config so far has all its layers

    def offer(self, path: Path, name: str) -> None:
        """``path``, extracted from the archive member ``name``, is complete: apply it if it
        looks like a layer the store lacks."""
        parts = PurePosixPath(name).parts
        if len(parts) == 1 and parts[0].endswith(".json") and parts[0] != "manifest.json":
            self._config(path)
            return
        if self._configs_present:
            return
        try:
            own = _Stoppable(path, self._stop)
        except OSError:
            return
        if not looks_like_layer(name, own.peek(_BLOCK)[:_BLOCK]) or self._stop.is_set():
            own.close()
            return
        with self._lock:
            if own.inode in self._ahead:
                own.close()
                return
            self._ahead[own.inode] = (own, self._pool.submit(self._apply, own))

    def _config(self, path: Path) -> None:
        """A docker-archive's image config: are all its layers in the store?"""
        try:
            if path.stat().st_size > MAX_CONFIG_SIZE:
                return
            diff_ids = check_config(parse_json(path.read_bytes(), "load"), "load")
        except (OSError, BerthError):
            return  # checked again, and refused, with the manifest
        present = all(self._layers.get(chain) is not None for chain in chain_ids(diff_ids))
        self._configs_present = present and self._configs_present is not False

    def _apply(self, own: OwnTar) -> AheadLayer | None:
        digest = None
        if own.plain():
            digest = own.sha256()
            if self._layers.has_diff(digest):
                return None  # the store has the layer: the image most likely takes it from there
        cache_id = new_cache_id()
        try:
            self._layers.create_dir(cache_id, None)
            return AheadLayer(cache_id, self._layers.apply_into(cast(BinaryIO, own), cache_id, self._budget, digest))
        except BaseException:
            self._layers.remove_dirs([cache_id])
            raise

    def take(self, path: Path) -> AheadLayer | None:
        """The layer applied from the file ``path`` names, now the caller's (its dir and blob);
        None where there is none or its apply failed."""
        try:
            info = os.stat(path)
        except OSError:
            return None
        with self._lock:
            entry = self._ahead.pop((info.st_dev, info.st_ino), None)
        if entry is None:
            return None
        own, future = entry
        try:
            return future.result()
        except Exception:  # applied again the ordinary way, which reports what is wrong
            return None
        finally:
            own.close()

    def close(self) -> None:
        """Stop, wait for the workers, and remove what no image took (dirs, and blobs no
        recorded layer uses)."""
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            left, self._ahead = list(self._ahead.values()), {}
        for own, future in left:
            own.close()
            if future.cancelled() or future.exception() is not None:
                continue
            layer = future.result()
            if layer is None:
                continue
            self._layers.remove_dirs([layer.cache_id])
            self._layers.drop_blobs([layer.pending.diff_id])

    def __enter__(self) -> LayersAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
