"""Changes that span the image store and the layer store: both locks, in order.

The one lock order every caller keeps: the images' lock, then the layers' lock, then the
database's (a transaction). No store lock is ever first taken inside a transaction (one the
caller already holds may be taken again: both are RLocks). See :mod:`berth.graph.graph` for
which operation takes which::

    with txn.locked(images, layers):
        content.put(config)                      # outside the transaction, under the locks
        with layers.transaction():
            rows, drop = layers.commit(pending)
            images.add(row)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from berth.graph.imagestore import ImageStore
from berth.graph.layerstore import LayerStore


@contextmanager
def locked(images: ImageStore, layers: LayerStore) -> Iterator[None]:
    """Both stores locked (a check-then-change sequence), no transaction yet."""
    with images.lock, layers.lock:
        yield
