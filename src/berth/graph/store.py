"""GraphDB: the image graph's records in SQLite (WAL), next to the daemon's own tables.

The model: rows are small and immutable except tags. A *layer* is keyed by its chain id
(``sha256(parent chain id + " " + diff id)``, the OCI definition) and names the driver dir
that holds it (``cache_id``); an *image* is keyed by its id (the config digest) and points at
its top layer; tags and digests map repository references to image ids; a container's
read-write layer is recorded with the image it was made from. Schema (version 1)::

    graph_schema(version)
    layers(chain_id PK, diff_id, parent, size, cache_id UNIQUE, created)
    images(id PK, config_digest, created, created_ns, size, parent, top_layer, last_tag_time)
    image_tags(repository, tag, image_id)         PK (repository, tag)
    image_digests(repository, digest, image_id)   PK (repository, digest)
    layer_blobs(diff_id, digest, media_type, size)  PK (diff_id, digest): compressed forms
    blob_sources(digest, registry, repository)    PK (all three): where a blob was pulled from or
                                                  pushed to (push mounts it from there)
    rw_layers(container_id PK, image_id, top_layer, cache_id)

The daemon opens its own connection to the same file, so every table name here is the
graph's. One connection is shared by the daemon's worker threads behind a lock; every
multi-row change runs in one ``BEGIN IMMEDIATE`` transaction (:meth:`GraphDB.transaction`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from berth.errors import SystemFailure

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS graph_schema (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS layers (
    chain_id TEXT PRIMARY KEY,
    diff_id TEXT NOT NULL,
    parent TEXT,
    size INTEGER NOT NULL,
    cache_id TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    config_digest TEXT NOT NULL,
    created TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    size INTEGER NOT NULL,
    parent TEXT NOT NULL DEFAULT '',
    top_layer TEXT,
    last_tag_time TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS image_tags (
    repository TEXT NOT NULL,
    tag TEXT NOT NULL,
    image_id TEXT NOT NULL,
    PRIMARY KEY (repository, tag)
);
CREATE INDEX IF NOT EXISTS image_tags_by_image ON image_tags (image_id);
CREATE TABLE IF NOT EXISTS image_digests (
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    image_id TEXT NOT NULL,
    PRIMARY KEY (repository, digest)
);
CREATE INDEX IF NOT EXISTS image_digests_by_image ON image_digests (image_id);
CREATE TABLE IF NOT EXISTS layer_blobs (
    diff_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (diff_id, digest)
);
CREATE TABLE IF NOT EXISTS blob_sources (
    digest TEXT NOT NULL,
    registry TEXT NOT NULL,
    repository TEXT NOT NULL,
    PRIMARY KEY (digest, registry, repository)
);
CREATE TABLE IF NOT EXISTS rw_layers (
    container_id TEXT PRIMARY KEY,
    image_id TEXT NOT NULL,
    top_layer TEXT,
    cache_id TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class LayerRow:
    chain_id: str
    diff_id: str
    parent: str | None
    size: int
    cache_id: str
    created: str


@dataclass(frozen=True)
class ImageRow:
    id: str
    config_digest: str
    created: str
    created_ns: int
    size: int
    parent: str
    top_layer: str | None
    last_tag_time: str


@dataclass(frozen=True)
class RwLayerRow:
    container_id: str
    image_id: str
    top_layer: str | None
    cache_id: str


class GraphDB:
    """The graph's tables in ``db_path``; safe to share between threads."""

    def __init__(self, db_path: Path) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # counts the writes to the names' tables (images, image_tags, image_digests): a name
        # resolved at one count still resolves the same while it has not moved
        # (Graph.resolve_cached); this process is the tables' only writer
        self.names_generation = 0
        try:
            self._conn = sqlite3.connect(
                str(db_path), isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA busy_timeout=30000")
            with self.transaction():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._conn.execute(statement)
                row = self._conn.execute("SELECT version FROM graph_schema").fetchone()
                if row is None:
                    self._conn.execute("INSERT INTO graph_schema (version) VALUES (?)", (SCHEMA_VERSION,))
                elif row[0] != SCHEMA_VERSION:
                    raise SystemFailure(
                        f"open graph db {db_path}: schema version {row[0]}, this berth reads {SCHEMA_VERSION}"
                    )
        except sqlite3.Error as exc:
            raise SystemFailure(f"open graph db {db_path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic change; nests (inner blocks join the outer transaction)."""
        with self._lock:
            if self._conn.in_transaction:
                yield
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                # a COMMIT that fails (SQLITE_FULL on a full disk) leaves the transaction open:
                # it must be rolled back too, or every later change would join it, uncommitted
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                self.names_generation += 1  # what was read inside it may be gone again
                raise

    def _all(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple]:  # type: ignore[type-arg]
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def _one(self, sql: str, args: tuple[object, ...] = ()) -> tuple | None:  # type: ignore[type-arg]
        with self._lock:
            row: tuple[Any, ...] | None = self._conn.execute(sql, args).fetchone()
            return row

    def _run(self, sql: str, args: tuple[object, ...] = ()) -> int:
        with self._lock:
            if "image" in sql:  # images, image_tags, image_digests (not layers, rw_layers, blobs)
                self.names_generation += 1
            return self._conn.execute(sql, args).rowcount

    # layers
    def layer(self, chain_id: str) -> LayerRow | None:
        row = self._one("SELECT * FROM layers WHERE chain_id = ?", (chain_id,))
        return LayerRow(*row) if row else None

    def layers(self) -> list[LayerRow]:
        return [LayerRow(*row) for row in self._all("SELECT * FROM layers")]

    def layers_with_diff(self, diff_id: str) -> int:
        row = self._one("SELECT COUNT(*) FROM layers WHERE diff_id = ?", (diff_id,))
        return int(row[0]) if row else 0

    def add_layer(self, layer: LayerRow) -> None:
        self._run(
            "INSERT INTO layers VALUES (?, ?, ?, ?, ?, ?)",
            (layer.chain_id, layer.diff_id, layer.parent, layer.size, layer.cache_id, layer.created),
        )

    def delete_layer(self, chain_id: str) -> None:
        self._run("DELETE FROM layers WHERE chain_id = ?", (chain_id,))

    # images
    def image(self, image_id: str) -> ImageRow | None:
        row = self._one("SELECT * FROM images WHERE id = ?", (image_id,))
        return ImageRow(*row) if row else None

    def images(self) -> list[ImageRow]:
        return [ImageRow(*row) for row in self._all("SELECT * FROM images ORDER BY created_ns DESC, id")]

    def image_ids_with_prefix(self, hex_prefix: str) -> list[str]:
        like = "sha256:" + hex_prefix.replace("%", "").replace("_", "") + "%"
        return [row[0] for row in self._all("SELECT id FROM images WHERE id LIKE ? LIMIT 2", (like,))]

    def add_image(self, image: ImageRow) -> None:
        self._run(
            "INSERT INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                image.id,
                image.config_digest,
                image.created,
                image.created_ns,
                image.size,
                image.parent,
                image.top_layer,
                image.last_tag_time,
            ),
        )

    def set_last_tag_time(self, image_id: str, when: str) -> None:
        self._run("UPDATE images SET last_tag_time = ? WHERE id = ?", (when, image_id))

    def delete_image(self, image_id: str) -> None:
        self._run("DELETE FROM images WHERE id = ?", (image_id,))

    def children(self, image_id: str) -> list[str]:
        return [row[0] for row in self._all("SELECT id FROM images WHERE parent = ?", (image_id,))]

    # tags and digests
    def tag_target(self, repository: str, tag: str) -> str | None:
        row = self._one("SELECT image_id FROM image_tags WHERE repository = ? AND tag = ?", (repository, tag))
        return row[0] if row else None

    def digest_target(self, repository: str, digest: str) -> str | None:
        row = self._one(
            "SELECT image_id FROM image_digests WHERE repository = ? AND digest = ?", (repository, digest)
        )
        return row[0] if row else None

    def set_tag(self, repository: str, tag: str, image_id: str) -> None:
        self._run(
            "INSERT INTO image_tags VALUES (?, ?, ?) "
            "ON CONFLICT (repository, tag) DO UPDATE SET image_id = excluded.image_id",
            (repository, tag, image_id),
        )

    def set_digest(self, repository: str, digest: str, image_id: str) -> None:
        self._run(
            "INSERT INTO image_digests VALUES (?, ?, ?) "
            "ON CONFLICT (repository, digest) DO UPDATE SET image_id = excluded.image_id",
            (repository, digest, image_id),
        )

    def delete_tag(self, repository: str, tag: str) -> None:
        self._run("DELETE FROM image_tags WHERE repository = ? AND tag = ?", (repository, tag))

    def delete_digest(self, repository: str, digest: str) -> None:
        self._run("DELETE FROM image_digests WHERE repository = ? AND digest = ?", (repository, digest))

    def tags_of(self, image_id: str) -> list[tuple[str, str]]:
        return [
            (row[0], row[1])
            for row in self._all(
                "SELECT repository, tag FROM image_tags WHERE image_id = ? ORDER BY repository, tag",
                (image_id,),
            )
        ]

    def digests_of(self, image_id: str) -> list[tuple[str, str]]:
        return [
            (row[0], row[1])
            for row in self._all(
                "SELECT repository, digest FROM image_digests WHERE image_id = ? ORDER BY repository, digest",
                (image_id,),
            )
        ]

    def tags_in_repository(self, repository: str) -> list[str]:
        return [
            row[0]
            for row in self._all(
                "SELECT tag FROM image_tags WHERE repository = ? ORDER BY tag", (repository,)
            )
        ]

    def all_tags(self) -> dict[str, list[tuple[str, str]]]:
        out: dict[str, list[tuple[str, str]]] = {}
        for repo, tag, image_id in self._all(
            "SELECT repository, tag, image_id FROM image_tags ORDER BY 1, 2"
        ):
            out.setdefault(image_id, []).append((repo, tag))
        return out

    def all_digests(self) -> dict[str, list[tuple[str, str]]]:
        out: dict[str, list[tuple[str, str]]] = {}
        for repo, digest, image_id in self._all(
            "SELECT repository, digest, image_id FROM image_digests ORDER BY 1, 2"
        ):
            out.setdefault(image_id, []).append((repo, digest))
        return out

    # compressed forms of layer tars (push, pull)
    def layer_blobs(self, diff_id: str) -> list[tuple[str, str, int]]:
        """(digest, media type, size) of the recorded compressed forms of ``diff_id``."""
        return [
            (row[0], row[1], int(row[2]))
            for row in self._all(
                "SELECT digest, media_type, size FROM layer_blobs WHERE diff_id = ? ORDER BY digest",
                (diff_id,),
            )
        ]

    def add_layer_blob(self, diff_id: str, digest: str, media_type: str, size: int) -> None:
        self._run(
            "INSERT OR REPLACE INTO layer_blobs VALUES (?, ?, ?, ?)", (diff_id, digest, media_type, size)
        )

    def delete_layer_blobs(self, diff_id: str) -> list[str]:
        digests = [
            row[0] for row in self._all("SELECT digest FROM layer_blobs WHERE diff_id = ?", (diff_id,))
        ]
        self._run("DELETE FROM layer_blobs WHERE diff_id = ?", (diff_id,))
        return digests

    # container read-write layers
    def add_blob_source(self, digest: str, registry: str, repository: str) -> None:
        self._run("INSERT OR IGNORE INTO blob_sources VALUES (?, ?, ?)", (digest, registry, repository))

    def blob_sources(self, digest: str, registry: str) -> list[str]:
        """The repositories of ``registry`` known to hold blob ``digest``."""
        rows = self._all("SELECT repository FROM blob_sources WHERE digest=? AND registry=? ORDER BY repository",
                         (digest, registry))
        return [str(r[0]) for r in rows]

    def rw_layer(self, container_id: str) -> RwLayerRow | None:
        row = self._one("SELECT * FROM rw_layers WHERE container_id = ?", (container_id,))
        return RwLayerRow(*row) if row else None

    def rw_layers(self) -> list[RwLayerRow]:
        return [RwLayerRow(*row) for row in self._all("SELECT * FROM rw_layers")]

    def add_rw_layer(self, rw: RwLayerRow) -> None:
        self._run(
            "INSERT INTO rw_layers VALUES (?, ?, ?, ?)",
            (rw.container_id, rw.image_id, rw.top_layer, rw.cache_id),
        )

    def delete_rw_layer(self, container_id: str) -> None:
        self._run("DELETE FROM rw_layers WHERE container_id = ?", (container_id,))
