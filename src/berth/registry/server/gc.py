"""Garbage collection: delete the blobs no manifest of any repository references.

Mark: every stored manifest and everything it references (config, layers, index children,
non-distributable layers a client may have pushed anyway). Sweep: repository links to other
blobs are dropped, then blob files that nothing links, and upload sessions older than a day.
Run it with the server stopped (``berth registry gc`` refuses while a server holds the root),
as the CNCF registry requires too::

    report = collect(RegistryStore(root), dry_run=False)   # GcReport(blobs=3, bytes=123, ...)
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from berth.registry.digest import ALGORITHMS
from berth.registry.server.store import RegistryStore

STALE_UPLOAD_SECONDS = 24 * 3600


@dataclass(frozen=True)
class GcReport:
    blobs: int
    bytes: int
    links: int
    uploads: int


def collect(store: RegistryStore, dry_run: bool = False) -> GcReport:
    live = store.referenced_digests()
    links = 0 if dry_run else store.drop_unreferenced_links(live)
    keep = live | store.linked_digests()
    blobs = size = 0
    for algorithm in ALGORITHMS:
        folder = store.root / "blobs" / algorithm
        for entry in os.scandir(folder):
            if f"{algorithm}:{entry.name}" in keep:
                continue
            blobs += 1
            size += entry.stat(follow_symlinks=False).st_size
            if not dry_run:
                os.unlink(entry.path)
    uploads = store.stale_uploads(time.time() - STALE_UPLOAD_SECONDS)
    if not dry_run:
        for upload_id in uploads:
            store.end_upload(upload_id)
    return GcReport(blobs, size, links, len(uploads))
