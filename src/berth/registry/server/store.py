"""The registry server's storage: blobs on disk, everything else in one SQLite database.

Layout (schema version 1)::

    ROOT/
      registry.db              repositories' blob links, manifests, tags, uploads (SQLite, WAL)
      blobs/sha256/<hex>       content, OCI image-layout style (manifests are blobs too)
      blobs/sha512/<hex>
      uploads/<uuid>           upload sessions in progress (the bytes received so far)

A blob becomes visible in a repository only when the repository links it (``repo_blobs``),
so a pull names the repositories it may read, as the distribution spec wants. Blob files are
written under ``uploads/`` and renamed into ``blobs/`` only once their digest is verified:
a reader never sees a partial or wrong blob. Every method is synchronous and thread-safe;
the app calls them through ``asyncio.to_thread``::

    store = RegistryStore(Path("/srv/reg"))
    store.link_blob("library/busybox", digest, size)
    store.blob_size("library/busybox", digest)       # size, or None when not linked
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from berth.registry.digest import Digest

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS repo_blobs (
    repo TEXT NOT NULL, digest TEXT NOT NULL, size INTEGER NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (repo, digest));
CREATE INDEX IF NOT EXISTS repo_blobs_digest ON repo_blobs (digest);
CREATE TABLE IF NOT EXISTS manifests (
    repo TEXT NOT NULL, digest TEXT NOT NULL, media_type TEXT NOT NULL, size INTEGER NOT NULL,
    artifact_type TEXT NOT NULL DEFAULT '', subject TEXT NOT NULL DEFAULT '',
    annotations TEXT NOT NULL DEFAULT '', created REAL NOT NULL,
    PRIMARY KEY (repo, digest));
CREATE INDEX IF NOT EXISTS manifests_subject ON manifests (repo, subject);
CREATE TABLE IF NOT EXISTS manifest_refs (
    repo TEXT NOT NULL, digest TEXT NOT NULL, ref TEXT NOT NULL,
    PRIMARY KEY (repo, digest, ref));
CREATE TABLE IF NOT EXISTS tags (
    repo TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (repo, tag));
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY, repo TEXT NOT NULL, started REAL NOT NULL);
"""


@dataclass(frozen=True)
class ManifestRow:
    digest: str
    media_type: str
    size: int
    artifact_type: str
    annotations: dict[str, str]


@dataclass(frozen=True)
class ManifestRecord:
    """What a manifest put records beside its bytes."""

    repo: str
    digest: Digest
    media_type: str
    body: bytes
    refs: tuple[str, ...]  # blobs and manifests it references (for garbage collection)
    subject: str  # the subject's digest, or ""
    artifact_type: str
    annotations: dict[str, str]


class RegistryStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        for sub in ("blobs/sha256", "blobs/sha512", "uploads"):
            (root / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(root / "registry.db", check_same_thread=False, isolation_level=None)
        os.chmod(root / "registry.db", 0o600)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            return list(self._db.execute(sql, args))

    # ---- blobs -------------------------------------------------------------------------------

    def blob_path(self, digest: Digest) -> Path:
        return self.root / "blobs" / digest.algorithm / digest.encoded

    def blob_size(self, repo: str, digest: Digest) -> int | None:
        """The size of blob ``digest`` if repository ``repo`` links it and its file is there."""
        rows = self._query("SELECT size FROM repo_blobs WHERE repo=? AND digest=?", (repo, str(digest)))
        if not rows or not self.blob_path(digest).is_file():
            return None
        return _int(rows[0][0])

    def blob_size_anywhere(self, digest: Digest) -> int | None:
        """The size of the blob if any repository links it (for anonymous mounts)."""
        rows = self._query("SELECT size FROM repo_blobs WHERE digest=? LIMIT 1", (str(digest),))
        if not rows or not self.blob_path(digest).is_file():
            return None
        return _int(rows[0][0])

    def link_blob(self, repo: str, digest: Digest, size: int) -> None:
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO repo_blobs VALUES (?, ?, ?, ?)", (repo, str(digest), size, time.time()))

    def unlink_blob(self, repo: str, digest: Digest) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM repo_blobs WHERE repo=? AND digest=?", (repo, str(digest))).rowcount > 0

    def commit_file(self, path: Path, digest: Digest) -> None:
        """Move a verified file into the blob store (an existing blob of that digest is kept)."""
        target = self.blob_path(digest)
        os.chmod(path, 0o600)
        os.replace(path, target)

    def put_bytes(self, data: bytes, digest: Digest) -> None:
        target = self.blob_path(digest)
        if target.is_file():
            return
        tmp = self.root / "uploads" / f".put-{uuid.uuid4().hex}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)

    # ---- upload sessions ---------------------------------------------------------------------

    def new_upload(self, repo: str) -> str:
        upload_id = str(uuid.uuid4())
        fd = os.open(self.upload_path(upload_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        os.close(fd)
        with self._tx() as db:
            db.execute("INSERT INTO uploads VALUES (?, ?, ?)", (upload_id, repo, time.time()))
        return upload_id

    def upload_path(self, upload_id: str) -> Path:
        return self.root / "uploads" / upload_id

    def upload_repo(self, upload_id: str) -> str | None:
        rows = self._query("SELECT repo FROM uploads WHERE id=?", (upload_id,))
        return str(rows[0][0]) if rows else None

    def end_upload(self, upload_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM uploads WHERE id=?", (upload_id,))
        try:
            os.unlink(self.upload_path(upload_id))
        except FileNotFoundError:
            pass  # the verified file was moved into blobs/ already

    def stale_uploads(self, older_than: float) -> list[str]:
        rows = self._query("SELECT id FROM uploads WHERE started < ?", (older_than,))
        return [str(r[0]) for r in rows]

    # ---- manifests and tags ------------------------------------------------------------------

    def put_manifest(self, rec: ManifestRecord, tags: tuple[str, ...]) -> None:
        self.put_bytes(rec.body, rec.digest)
        now = time.time()
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO manifests VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (rec.repo, str(rec.digest), rec.media_type, len(rec.body), rec.artifact_type, rec.subject,
                 json.dumps(rec.annotations) if rec.annotations else "", now),
            )
            db.execute("DELETE FROM manifest_refs WHERE repo=? AND digest=?", (rec.repo, str(rec.digest)))
            db.executemany(
                "INSERT OR IGNORE INTO manifest_refs VALUES (?, ?, ?)",
                [(rec.repo, str(rec.digest), ref) for ref in rec.refs],
            )
            for tag in tags:
                db.execute("INSERT OR REPLACE INTO tags VALUES (?, ?, ?, ?)", (rec.repo, tag, str(rec.digest), now))

    def manifest(self, repo: str, digest: Digest) -> ManifestRow | None:
        rows = self._query(
            "SELECT digest, media_type, size, artifact_type, annotations FROM manifests WHERE repo=? AND digest=?",
            (repo, str(digest)),
        )
        return _manifest_row(rows[0]) if rows else None

    def has_manifest(self, repo: str, digest: str) -> bool:
        return bool(self._query("SELECT 1 FROM manifests WHERE repo=? AND digest=?", (repo, digest)))

    def resolve_tag(self, repo: str, tag: str) -> Digest | None:
        rows = self._query("SELECT digest FROM tags WHERE repo=? AND tag=?", (repo, tag))
        return Digest.parse(str(rows[0][0])) if rows else None

    def delete_manifest(self, repo: str, digest: Digest) -> bool:
        with self._tx() as db:
            gone = db.execute("DELETE FROM manifests WHERE repo=? AND digest=?", (repo, str(digest))).rowcount
            db.execute("DELETE FROM manifest_refs WHERE repo=? AND digest=?", (repo, str(digest)))
            db.execute("DELETE FROM tags WHERE repo=? AND digest=?", (repo, str(digest)))
        return gone > 0

    def delete_tag(self, repo: str, tag: str) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM tags WHERE repo=? AND tag=?", (repo, tag)).rowcount > 0

    def tags(self, repo: str, limit: int | None, last: str) -> list[str]:
        sql = "SELECT tag FROM tags WHERE repo=? AND tag > ? ORDER BY tag"
        args: tuple[object, ...] = (repo, last)
        if limit is not None:
            sql += " LIMIT ?"
            args += (limit,)
        return [str(r[0]) for r in self._query(sql, args)]

    def repo_exists(self, repo: str) -> bool:
        return bool(
            self._query("SELECT 1 FROM manifests WHERE repo=? LIMIT 1", (repo,))
            or self._query("SELECT 1 FROM repo_blobs WHERE repo=? LIMIT 1", (repo,))
        )

    def repositories(self, limit: int | None, last: str) -> list[str]:
        sql = (
            "SELECT repo FROM (SELECT repo FROM manifests UNION SELECT repo FROM tags)"
            " WHERE repo > ? ORDER BY repo"
        )
        args: tuple[object, ...] = (last,)
        if limit is not None:
            sql += " LIMIT ?"
            args += (limit,)
        return [str(r[0]) for r in self._query(sql, args)]

    def referrers(self, repo: str, subject: Digest) -> list[ManifestRow]:
        rows = self._query(
            "SELECT digest, media_type, size, artifact_type, annotations FROM manifests"
            " WHERE repo=? AND subject=? ORDER BY created, digest",
            (repo, str(subject)),
        )
        return [_manifest_row(r) for r in rows]

    # ---- garbage collection ------------------------------------------------------------------

    def referenced_digests(self) -> set[str]:
        """Every digest a stored manifest is or references, in any repository."""
        live = {str(r[0]) for r in self._query("SELECT digest FROM manifests")}
        live |= {str(r[0]) for r in self._query("SELECT ref FROM manifest_refs")}
        return live

    def drop_unreferenced_links(self, live: set[str]) -> int:
        """Forget repository links to blobs no manifest references; returns how many."""
        rows = self._query("SELECT repo, digest FROM repo_blobs")
        dead = [(str(repo), str(d)) for repo, d in rows if str(d) not in live]
        with self._tx() as db:
            db.executemany("DELETE FROM repo_blobs WHERE repo=? AND digest=?", dead)
        return len(dead)

    def linked_digests(self) -> set[str]:
        return {str(r[0]) for r in self._query("SELECT DISTINCT digest FROM repo_blobs")}


def _manifest_row(row: tuple[object, ...]) -> ManifestRow:
    digest, media_type, size, artifact_type, annotations = row
    return ManifestRow(
        str(digest), str(media_type), int(size),  # type: ignore[call-overload]
        str(artifact_type), json.loads(str(annotations)) if annotations else {},
    )


def _int(value: object) -> int:
    """An INTEGER column's value (SQLite hands back int)."""
    if not isinstance(value, int):
        raise TypeError(f"registry store: expected an integer column, got {type(value).__name__}")
    return value
