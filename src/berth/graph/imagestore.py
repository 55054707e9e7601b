"""The image store: images, their configs, and the names (tags, digests) that point at them.

An image is a config blob (in the content store; its digest is the image id) and a row naming
its top layer (in the layer store). Names map a repository's tag or digest to an image id.
Every method locks the store; an operation that changes the images and the layers together
takes both locks, the images' first (:func:`berth.graph.txn.locked`)::

    images.resolve("busybox")                 # 'sha256:...'
    images.config_doc(image_id)["config"]["Cmd"]
    images.tag("sha256:...", "web", "v1")     # 'web:v1'
"""

from __future__ import annotations

import json
import threading
from typing import Any

from berth.errors import NotFound
from berth.graph import reference
from berth.graph.content import ContentStore
from berth.graph.image import container_config, now_ns, rfc3339_nano
from berth.graph.store import GraphDB, ImageRow


class ImageStore:
    def __init__(self, db: GraphDB, content: ContentStore) -> None:
        self._db = db
        self._content = content
        self.lock = threading.RLock()
        self._configs: dict[str, dict[str, Any]] = {}

    # -- names -> ids ---------------------------------------------------------------------------
    def resolve(self, ref_or_id: str) -> str:
        """The image id for a name, digest reference, full id or unique id prefix."""
        full = reference.full_id(ref_or_id)
        if full is not None:
            if self._db.image(full) is None:
                raise NotFound(f"No such image: {full}")
            return full
        ref = reference.parse(ref_or_id).with_default_tag()
        found = self._db.digest_target(ref.name, ref.digest) if ref.digest else self._db.tag_target(ref.name, ref.tag)
        if found is not None and self._db.image(found) is not None:
            return found
        prefix = reference.id_prefix(ref_or_id)
        if prefix is not None:
            matches = self._db.image_ids_with_prefix(prefix)
            if len(matches) == 1:
                return matches[0]
        raise NotFound(f"No such image: {ref.familiar()}")

    def tag_target(self, repository: str, tag: str) -> str | None:
        return self._db.tag_target(repository, tag)

    # -- images -----------------------------------------------------------------------------------
    def get(self, image_id: str) -> ImageRow:
        row = self._db.image(image_id)
        if row is None:
            raise NotFound(f"No such image: {image_id}")
        return row

    def find(self, image_id: str) -> ImageRow | None:
        return self._db.image(image_id)

    def rows(self) -> list[ImageRow]:
        return self._db.images()

    def tops(self) -> list[str | None]:
        """Every image's top layer (what keeps layers alive, with the containers' layers)."""
        return [row.top_layer for row in self._db.images()]

    def children(self, image_id: str) -> list[str]:
        return self._db.children(image_id)

    def add(self, row: ImageRow) -> None:
        """Record an image (inside the caller's transaction)."""
        self._db.add_image(row)

    def delete(self, image_id: str) -> None:
        """Forget an image row (inside the caller's transaction)."""
        self._db.delete_image(image_id)
        self._configs.pop(image_id, None)

    # -- configs ----------------------------------------------------------------------------------
    def config_doc(self, image_id: str) -> dict[str, Any]:
        """The whole image config document (a copy; cached, configs never change)."""
        cached = self._configs.get(image_id)
        if cached is None:
            row = self.get(image_id)
            cached = json.loads(self._content.get(row.config_digest))
            self._configs[image_id] = cached
        copy: dict[str, Any] = json.loads(json.dumps(cached))
        return copy

    def config_loaded(self, image_id: str) -> bool:
        return image_id in self._configs

    def config_bytes(self, image_id: str) -> bytes:
        return self._content.get(self.get(image_id).config_digest)

    def config(self, image_id: str) -> dict[str, Any]:
        """The image's container config (``Cmd``, ``Env``, ``WorkingDir``...), Docker's shape."""
        return container_config(self.config_doc(image_id).get("config") or {})

    # -- names ------------------------------------------------------------------------------------
    def repo_tags(self, image_id: str) -> list[str]:
        return [reference.Reference(repo, tag).familiar() for repo, tag in self._db.tags_of(image_id)]

    def repo_digests(self, image_id: str) -> list[str]:
        return [reference.Reference(repo, "", dg).familiar() for repo, dg in self._db.digests_of(image_id)]

    def names(self, image_id: str) -> list[reference.Reference]:
        tags = [reference.Reference(r, t) for r, t in self._db.tags_of(image_id)]
        return tags + [reference.Reference(r, "", d) for r, d in self._db.digests_of(image_id)]

    def tags_in_repository(self, repository: str) -> list[str]:
        return self._db.tags_in_repository(repository)

    def all_tags(self) -> dict[str, list[tuple[str, str]]]:
        return self._db.all_tags()

    def all_digests(self) -> dict[str, list[tuple[str, str]]]:
        return self._db.all_digests()

    def tag(self, ref: str, repo: str, tag: str = "") -> str:
        """Point ``repo:tag`` at the image ``ref`` names; return the familiar new name."""
        target = reference.parse_repository(repo, tag)
        with self.lock:
            found = self.resolve(ref)
            with self._db.transaction():
                self.set_tag(target.name, target.tag, found)
        return target.familiar()

    def set_tag(self, repository: str, tag: str, image_id: str, stamp: str = "") -> None:
        """Name an image (inside the caller's transaction) and note when it was last tagged."""
        self._db.set_tag(repository, tag, image_id)
        self._db.set_last_tag_time(image_id, stamp or rfc3339_nano(now_ns()))

    def add_digest(self, image_id: str, repo: str, digest: str) -> None:
        """Record ``repo@digest`` (a pulled or pushed manifest) as a name of the image."""
        ref = reference.parse(f"{repo}@{digest}")
        with self.lock, self._db.transaction():
            self.get(image_id)
            self._db.set_digest(ref.name, ref.digest, image_id)

    def remove_name(self, ref: reference.Reference) -> None:
        """Drop a tag or digest reference (inside the caller's transaction)."""
        if ref.digest:
            self._db.delete_digest(ref.name, ref.digest)
        else:
            self._db.delete_tag(ref.name, ref.tag)
