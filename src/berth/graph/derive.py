"""Images made without a container: a build step's new config, optionally with one new layer.

The builder's metadata steps (ENV, LABEL, CMD ...) change only the config; COPY, ADD and
WORKDIR add a layer tar they wrote themselves. Both become an image whose parent is the
previous step's, with the parent's history plus one entry, in one transaction::

    derive_image(images, layers, content, parent_id, None, config, container_config, "/bin/sh -c #(nop)  ENV A=1")
    with open(layer_tar, "rb") as f:
        derive_image(images, layers, content, parent_id, f, config, container_config, "... COPY file:...")
"""

from __future__ import annotations

from typing import Any, BinaryIO

from berth.graph.content import ContentStore
from berth.graph.image import encode, new_config, now_ns
from berth.graph.imagestore import ImageStore
from berth.graph.layerstore import LayerStore
from berth.graph.registration import register_image


def derive_image(
    images: ImageStore,
    layers: LayerStore,
    content: ContentStore,
    parent_id: str,
    layer: BinaryIO | None,
    config: dict[str, Any],
    container_config: dict[str, Any],
    created_by: str,
    author: str = "",
) -> str:
    parent_doc = images.config_doc(parent_id) if parent_id else None
    diff_ids = list(((parent_doc or {}).get("rootfs") or {}).get("diff_ids") or [])
    top = None
    if parent_id:
        row = images.get(parent_id)
        top = layers.get(row.top_layer) if row.top_layer else None
    pending = []
    if layer is not None:
        pending = [layers.apply(layer, top)]
        diff_ids.append(pending[0].diff_id)
    doc = new_config(
        diff_ids=diff_ids,
        config=config,
        created_ns=now_ns(),
        created_by=created_by,
        author=author,
        parent_config=parent_doc if parent_doc is not None else {},
        container_config_values=container_config,
        empty_layer=not pending,
    )
    if parent_doc is not None:
        for key in ("variant", "os.version", "os.features"):
            if parent_doc.get(key):
                doc[key] = parent_doc[key]
        doc["architecture"] = parent_doc.get("architecture") or doc["architecture"]
    return register_image(images, layers, content, encode(doc), pending, None, parent_id)
