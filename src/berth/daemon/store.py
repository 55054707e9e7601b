"""The daemon's own records in SQLite (WAL): containers, one JSON document each.

The graph keeps its tables (images, tags, layers) in the same ``berth.db``; this module owns
``containers`` and ``daemon_schema``. Every change is one transaction, so a daemon killed at
any moment restarts with each container either fully recorded or not at all.

    store = ContainerStore(data_root / "berth.db")
    store.put(container); store.all(); store.delete(cid)          # in a worker thread
    await store.aput(container); await store.adelete(cid)         # from the event loop

The async methods run on the store's one writer thread, in the order they were called, so the
event loop never waits on SQLite and two changes of one record never overtake each other.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from berth.container.record import Container
from berth.daemon.failures import db_error_text
from berth.errors import Conflict, SystemFailure

SCHEMA_VERSION = 1


class ContainerStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="berth-containers-db")
        self._deleted: set[str] = set()  # a late update of a removed container must not bring it back
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
        self._put(c.id, c.name, json.dumps(c.to_json(), separators=(",", ":")), new)

    def _put(self, cid: str, name: str, data: str, new: bool) -> None:
        with self._lock:
            if not new and cid in self._deleted:
                return
            try:
                if new:
                    self.db.execute("INSERT INTO containers VALUES (?, ?, ?)", (cid, name, data))
                else:
                    self.db.execute("INSERT OR REPLACE INTO containers VALUES (?, ?, ?)", (cid, name, data))
            except sqlite3.IntegrityError as exc:
                raise Conflict(f"store container {cid[:12]}: name {name!r} is taken") from exc
            except sqlite3.Error as exc:  # a full disk, mostly: the caller decides what to keep
                raise SystemFailure(f"store container {cid[:12]}: {db_error_text(exc, self.path)}") from exc

    def delete(self, cid: str) -> None:
        with self._lock:
            try:
                self.db.execute("DELETE FROM containers WHERE id = ?", (cid,))
                self._deleted.add(cid)
            except sqlite3.Error as exc:
                raise SystemFailure(f"remove container {cid[:12]} from the store: "
                                    f"{db_error_text(exc, self.path)}") from exc

    def all(self) -> list[Container]:
        with self._lock:
            rows = self.db.execute("SELECT data FROM containers").fetchall()
        return [Container.from_json(json.loads(r[0])) for r in rows]

    # -- from the event loop: the same, on the writer thread ------------------------------------
    async def aput(self, c: Container, new: bool = False) -> None:
        data = json.dumps(c.to_json(), separators=(",", ":"))  # now: the record may change meanwhile
        await asyncio.get_running_loop().run_in_executor(self._writer, self._put, c.id, c.name, data, new)

    async def adelete(self, cid: str) -> None:
        await asyncio.get_running_loop().run_in_executor(self._writer, self.delete, cid)

    async def aall(self) -> list[Container]:
        return await asyncio.get_running_loop().run_in_executor(self._writer, self.all)

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self.db.close()
