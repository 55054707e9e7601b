"""The daemon's own records in SQLite (WAL): containers, one JSON document each.

The graph keeps its tables (images, tags, layers) in the same ``berth.db``; this module owns
``containers`` and ``daemon_schema``. Every change is one transaction, so a daemon killed at
any moment restarts with each container either fully recorded or not at all.

    store = ContainerStore(data_root / "berth.db")
    store.put(container); store.all(); store.delete(cid)
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from berth.container.record import Container
from berth.daemon.failures import db_error_text
from berth.errors import Conflict, SystemFailure

SCHEMA_VERSION = 1


class ContainerStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=5000")
            with self._lock:
                self.db.execute("CREATE TABLE IF NOT EXISTS daemon_schema (version INTEGER NOT NULL)")
                if self.db.execute("SELECT count(*) FROM daemon_schema").fetchone()[0] == 0:
                    self.db.execute("INSERT INTO daemon_schema VALUES (?)", (SCHEMA_VERSION,))
                self.db.execute(
                    "CREATE TABLE IF NOT EXISTS containers ("
                    " id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, data TEXT NOT NULL)"
                )
        except sqlite3.Error as exc:
            raise SystemFailure(f"open the container store: {db_error_text(exc, path)}") from exc

    def put(self, c: Container, new: bool = False) -> None:
        data = json.dumps(c.to_json(), separators=(",", ":"))
        with self._lock:
            try:
                if new:
                    self.db.execute("INSERT INTO containers VALUES (?, ?, ?)", (c.id, c.name, data))
                else:
                    self.db.execute(
                        "INSERT OR REPLACE INTO containers VALUES (?, ?, ?)", (c.id, c.name, data)
                    )
            except sqlite3.IntegrityError as exc:
                raise Conflict(f"store container {c.id[:12]}: name {c.name!r} is taken") from exc
            except sqlite3.Error as exc:  # a full disk, mostly: the caller decides what to keep
                raise SystemFailure(f"store container {c.id[:12]}: {db_error_text(exc, self.path)}") from exc

    def delete(self, cid: str) -> None:
        with self._lock:
            try:
                self.db.execute("DELETE FROM containers WHERE id = ?", (cid,))
            except sqlite3.Error as exc:
                raise SystemFailure(f"remove container {cid[:12]} from the store: "
                                    f"{db_error_text(exc, self.path)}") from exc

    def all(self) -> list[Container]:
        with self._lock:
            rows = self.db.execute("SELECT data FROM containers").fetchall()
        return [Container.from_json(json.loads(r[0])) for r in rows]

    def close(self) -> None:
        self.db.close()
