"""Changes that span the image store and the layer store: both locks and one transaction.

The one lock order every caller keeps: the images' lock, then the layers' lock, then the
database's (a transaction). No store lock is ever taken inside a transaction::

    with txn.both(images, layers):
        rows, drop = layers.commit(pending)
        images.add(row)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from berth.graph.imagestore import ImageStore
from berth.graph.layerstore import LayerStore


@contextmanager
def both(images: ImageStore, layers: LayerStore) -> Iterator[None]:
    with images.lock, layers.lock, layers.transaction():
        yield


@contextmanager
def locked(images: ImageStore, layers: LayerStore) -> Iterator[None]:
    """Both stores locked (a check-then-change sequence), no transaction yet."""
    with images.lock, layers.lock:
        yield
