"""Manifests and compressed layer blobs for a registry client (berth.graph.distribution)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json

import pytest

from berth.errors import NotFound
from berth.graph.distribution import CONFIG_V1, LAYER_GZIP, MANIFEST_V2
from berth.graph.testing import rootfs_tar, temporary_graph

ROOTFS = rootfs_tar({"bin/": b"", "bin/tool": b"x" * 5000, "etc/hostname": b"h\n"})


def test_manifest_is_dockers_schema2_with_gzip_layers() -> None:
    with temporary_graph() as graph:
        image_id = graph.import_stream(io.BytesIO(ROOTFS), "127.0.0.1:5051/bbx:v1", ['CMD ["sh"]'], "")
        body = graph.manifest(image_id)
        assert body.startswith(b'{\n   "schemaVersion": 2,\n   "mediaType": "' + MANIFEST_V2.encode())
        doc = json.loads(body)
        assert doc["config"] == {
            "mediaType": CONFIG_V1,
            "size": len(graph.config_bytes(image_id)),
            "digest": image_id,
        }
        (layer,) = doc["layers"]
        assert layer["mediaType"] == LAYER_GZIP
        (blob,) = graph.push_blobs(image_id)
        data = blob.path.read_bytes()
        assert (layer["digest"], layer["size"]) == ("sha256:" + hashlib.sha256(data).hexdigest(), len(data))
        assert gzip.decompress(data) == ROOTFS
        # compressed once, then reused; deterministic bytes
        assert graph.manifest(image_id) == body
        # deleting the image drops the layer tar and its compressed form
        graph.remove(image_id, True, False, lambda i: [])
        assert list(graph.content.dir.iterdir()) == []


def test_record_a_pulled_blob_and_push_it_unchanged() -> None:
    with temporary_graph() as graph:
        image_id = graph.import_stream(io.BytesIO(ROOTFS), "x", [], "")
        diff_id = graph.image_config(image_id)["rootfs"]["diff_ids"][0]
        pulled = gzip.compress(ROOTFS, compresslevel=1)
        digest = graph.content.put(pulled)
        graph.record_layer_blob(diff_id, digest, LAYER_GZIP, len(pulled))
        assert [b.digest for b in graph.push_blobs(image_id)] == [digest]
        with pytest.raises(NotFound):
            graph.record_layer_blob("sha256:" + "0" * 64, digest, LAYER_GZIP, 1)
