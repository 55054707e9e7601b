"""What a registry client needs from the graph: manifests and compressed layer blobs.

The model (Docker's distribution metadata): a layer is known by its diff id (the sha256 of
its tar, which the graph keeps) and may have compressed forms, each a blob with its own
digest, recorded in ``layer_blobs``. A push compresses a layer once (gzip, deterministic:
no name, mtime 0) and reuses the blob afterwards; a pull records the blob it fetched so a
later push of the same layer sends it unchanged. The manifest is Docker's v2 schema 2,
formatted as Docker formats it (three-space indent)::

    blobs = push_blobs(graph, image_id)          # [Blob(digest, size, media_type, path), ...]
    body = manifest(graph, image_id)             # bytes; its sha256 is the manifest digest
"""

from __future__ import annotations

import gzip
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from berth.errors import NotFound

if TYPE_CHECKING:
    from berth.graph.graph import Graph

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_V1 = "application/vnd.docker.container.image.v1+json"
LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
GZIP_TYPES = (LAYER_GZIP, OCI_LAYER_GZIP)
# Level 1: several times faster than Docker's 6 for a few percent more bytes; the compressed
# form is made once per layer and kept, so it stays deterministic all the same.
GZIP_LEVEL = 1


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    media_type: str
    path: Path


def compressed_layer(graph: Graph, diff_id: str) -> Blob:
    """A gzip form of the layer ``diff_id``: the recorded one, or made and recorded now."""
    for digest, media_type, size in graph.db.layer_blobs(diff_id):
        if media_type in GZIP_TYPES and graph.content.exists(digest):
            return Blob(digest, size, media_type, graph.content.path(digest))
    source = graph.layer_tar(diff_id)
    with graph.content.ingest() as blob:
        # mtime=0 and no file name: the same layer always compresses to the same bytes
        with open(source, "rb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=blob, mtime=0, compresslevel=GZIP_LEVEL) as out:
            shutil.copyfileobj(raw, out, 1 << 20)
        size = blob.size
        digest = blob.commit()
    record_layer_blob(graph, diff_id, digest, LAYER_GZIP, size)
    return Blob(digest, size, LAYER_GZIP, graph.content.path(digest))


def record_layer_blob(graph: Graph, diff_id: str, digest: str, media_type: str, size: int) -> None:
    """Remember that blob ``digest`` (already in the content store) is a form of ``diff_id``."""
    with graph.lock, graph.db.transaction():
        if not graph.db.layers_with_diff(diff_id):
            raise NotFound(f"record layer blob {digest}: layer {diff_id} not found")
        graph.db.add_layer_blob(diff_id, digest, media_type, size)


def push_blobs(graph: Graph, image_id: str) -> list[Blob]:
    """The layer blobs of an image, base first (compressing the ones never compressed)."""
    diff_ids = (graph.image_config(image_id).get("rootfs") or {}).get("diff_ids") or []
    return [compressed_layer(graph, diff_id) for diff_id in diff_ids]


def config_blob(graph: Graph, image_id: str) -> Blob:
    row = graph.image(image_id)
    path = graph.content.path(row.config_digest)
    return Blob(row.config_digest, path.stat().st_size, CONFIG_V1, path)


def manifest(graph: Graph, image_id: str) -> bytes:
    """The Docker v2 schema 2 manifest of the image (compresses layers if needed)."""
    config = config_blob(graph, image_id)
    body = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_V2,
        "config": {"mediaType": config.media_type, "size": config.size, "digest": config.digest},
        "layers": [
            {"mediaType": blob.media_type, "size": blob.size, "digest": blob.digest}
            for blob in push_blobs(graph, image_id)
        ],
    }
    return json.dumps(body, indent=3).encode()
