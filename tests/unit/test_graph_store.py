"""GraphDB (SQLite) and the content store: schema, transactions, threads, atomic blobs."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from berth.errors import InvalidParameter, NotFound, SystemFailure
from berth.graph.content import ContentStore, digest_of
from berth.graph.store import SCHEMA_VERSION, GraphDB, ImageRow, LayerRow

IMG = "sha256:" + "1" * 64


def image(image_id: str = IMG, created_ns: int = 1) -> ImageRow:
    return ImageRow(image_id, image_id, "2026-01-01T00:00:00Z", created_ns, 10, "", None, "")


def test_schema_version_and_table_names(tmp_path: Path) -> None:
    GraphDB(tmp_path / "berth.db").close()
    conn = sqlite3.connect(tmp_path / "berth.db")
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"graph_schema", "images", "image_tags", "layers", "image_digests", "rw_layers"} <= tables
    assert conn.execute("SELECT version FROM graph_schema").fetchall() == [(SCHEMA_VERSION,)]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.execute("UPDATE graph_schema SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(SystemFailure, match="schema version 99"):
        GraphDB(tmp_path / "berth.db")


def test_a_failed_transaction_leaves_no_rows(tmp_path: Path) -> None:
    db = GraphDB(tmp_path / "berth.db")
    with pytest.raises(RuntimeError), db.transaction():
        db.add_image(image())
        db.set_tag("docker.io/library/x", "latest", IMG)
        raise RuntimeError("boom")
    assert db.image(IMG) is None and db.tag_target("docker.io/library/x", "latest") is None
    with db.transaction():
        db.add_image(image())
        db.set_tag("docker.io/library/x", "latest", IMG)
    assert db.tags_of(IMG) == [("docker.io/library/x", "latest")]
    # a second connection (the daemon's) sees committed rows
    other = GraphDB(tmp_path / "berth.db")
    assert other.image(IMG) == image()


def test_layers_and_prefix_lookup(tmp_path: Path) -> None:
    db = GraphDB(tmp_path / "berth.db")
    row = LayerRow("sha256:" + "a" * 64, "sha256:" + "a" * 64, None, 5, "c" * 64, "now")
    with db.transaction():
        db.add_layer(row)
        db.add_image(image())
        db.add_image(image("sha256:" + "12" + "0" * 62, 2))
    assert db.layer(row.chain_id) == row
    assert db.image_ids_with_prefix("11") == [IMG]
    assert len(db.image_ids_with_prefix("1")) == 2
    assert [r.id for r in db.images()] == ["sha256:" + "12" + "0" * 62, IMG]  # newest first


def test_concurrent_writers_from_threads(tmp_path: Path) -> None:
    db = GraphDB(tmp_path / "berth.db")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                with db.transaction():
                    db.set_tag(f"docker.io/library/t{n}", str(i), IMG)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(db.tags_of(IMG)) == 120


def test_content_store_is_atomic_and_verified(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    digest = store.put(b"hello")
    assert digest == digest_of(b"hello")
    assert (tmp_path / "blobs" / "sha256" / digest[7:]).read_bytes() == b"hello"
    assert store.get(digest) == b"hello"
    with pytest.raises(InvalidParameter, match="content digest is"):
        store.put(b"other", expected=digest)
    (store.dir / ".tmp-leftover").write_bytes(b"partial")
    store.gc(keep={digest})
    assert sorted(p.name for p in store.dir.iterdir()) == [digest[7:]]
    store.delete(digest)
    with pytest.raises(NotFound):
        store.get(digest)
    with pytest.raises(InvalidParameter):
        store.path("sha256:xyz")
