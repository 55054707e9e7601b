"""``docker import``: a root file system tar becomes a one-layer image.

The model (Docker's ``ImportImage``): validate the changes and the name first, apply the tar
into a new layer (no lock held, nothing recorded), build the config -- Docker's zero config
with the ``--change`` instructions applied, one history entry whose comment is the message
(``Imported from -`` by default) -- and register layer, config and tag in one transaction.
A tar that is not a tar, or is cut short, raises ``InvalidParameter`` and leaves nothing::

    image_id = import_stream(images, layers, content, open("rootfs.tar.gz", "rb"), "bbx:v1", ['CMD ["sh"]'], "",
                             UnpackBudget(limit, "import"))
"""

from __future__ import annotations

from typing import BinaryIO

from berth.graph import reference
from berth.graph.budget import UnpackBudget
from berth.graph.changes import apply_changes
from berth.graph.content import ContentStore
from berth.graph.image import container_config, encode, new_config, now_ns
from berth.graph.imagestore import ImageStore
from berth.graph.layerstore import LayerStore
from berth.graph.registration import register_image

DEFAULT_COMMENT = "Imported from -"


def import_stream(
    images: ImageStore,
    layers: LayerStore,
    content: ContentStore,
    stream: BinaryIO,
    repo_tag: str | None,
    changes: list[str],
    message: str,
    budget: UnpackBudget,
) -> str:
    """Import the tar ``stream``; return the new image id (``sha256:...``)."""
    config = apply_changes(container_config(), changes)
    if repo_tag:
        reference.parse_repository(repo_tag)  # a bad name fails before any I/O
    pending = layers.apply(stream, None, budget)
    doc = new_config(
        diff_ids=[pending.diff_id],
        config=config,
        created_ns=now_ns(),
        comment=message or DEFAULT_COMMENT,
    )
    return register_image(images, layers, content, encode(doc), [pending], repo_tag or None, "")
