"""Events kept in SQLite (``<data-root>/events.db``), so ``docker events --since/--until`` reaches
back over days and across daemon restarts (dockerd keeps its last 256 in memory).

One writer thread takes events from a queue and writes them in batches (the event loop never
waits on SQLite); ``flush()`` returns once everything published before it is written, which is
what a query does first. Kept: the last :data:`KEEP_DAYS` days, at most :data:`KEEP_EVENTS`
events (older ones are pruned at start-up and every :data:`PRUNE_EVERY` events).

    log = EventLog(data_root / "events.db"); bus.sinks.append(log.append)
    await log.flush(); rows = log.query(since_ns, until_ns)
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from berth.daemon.failures import db_error_text
from berth.errors import SystemFailure

log = logging.getLogger("berth.daemon")
KEEP_DAYS = 30
KEEP_EVENTS = 500_000
PRUNE_EVERY = 10_000
_BATCH = 512
_STOP = object()


class EventLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))  # -wal/-shm inherit it
        try:
            self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=5000")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS events ("
                " id INTEGER PRIMARY KEY AUTOINCREMENT, time_nano INTEGER NOT NULL, body TEXT NOT NULL)"
            )
            self.db.execute("CREATE INDEX IF NOT EXISTS events_time ON events (time_nano)")
        except sqlite3.Error as exc:
            raise SystemFailure(f"open the event log: {db_error_text(exc, path)}") from exc
        self._lock = threading.Lock()
        self._queue: queue.Queue[Any] = queue.Queue()
        self._written = 0
        self.prune()
        self._thread = threading.Thread(target=self._writer, name="berth-eventlog", daemon=True)
        self._thread.start()

    # -- writing ------------------------------------------------------------------------------
    def append(self, event: dict[str, Any]) -> None:
        """The bus's sink: never blocks the event loop."""
        self._queue.put(event)

    def _writer(self) -> None:
        while True:
            item = self._queue.get()
            batch = [item]
            while len(batch) < _BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            events = [e for e in batch if isinstance(e, dict)]
            if events:
                self._write(events)
            for e in batch:
                if isinstance(e, threading.Event):
                    e.set()
            if any(e is _STOP for e in batch):
                return

    def _write(self, events: list[dict[str, Any]]) -> None:
        rows = [(e["timeNano"], json.dumps(e, separators=(",", ":"))) for e in events]
        try:
            with self._lock:
                self.db.execute("BEGIN")
                self.db.executemany("INSERT INTO events (time_nano, body) VALUES (?, ?)", rows)
                self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            # a full disk: the events stay visible live; only their record is lost
            log.error("write %d events: %s", len(rows), db_error_text(exc, self.path))
            try:
                with self._lock:
                    self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # no transaction left open to roll back
            return
        self._written += len(rows)
        if self._written >= PRUNE_EVERY:
            self._written = 0
            self.prune()

    async def flush(self) -> None:
        """Wait until every event appended before this call is written."""
        done = threading.Event()
        self._queue.put(done)
        await asyncio.to_thread(done.wait, 10.0)

    def prune(self) -> None:
        cutoff = time.time_ns() - KEEP_DAYS * 86400 * 1_000_000_000
        try:
            with self._lock:
                self.db.execute("DELETE FROM events WHERE time_nano < ?", (cutoff,))
                self.db.execute(
                    "DELETE FROM events WHERE id <= (SELECT max(id) FROM events) - ?", (KEEP_EVENTS,)
                )
        except sqlite3.Error as exc:
            log.error("prune the event log: %s", db_error_text(exc, self.path))

    # -- reading ------------------------------------------------------------------------------
    def query(self, since_ns: int, until_ns: int | None) -> list[dict[str, Any]]:
        """The kept events with ``since_ns <= timeNano <= until_ns``, oldest first."""
        sql = "SELECT body FROM events WHERE time_nano >= ?"
        args: list[int] = [since_ns]
        if until_ns is not None:
            sql += " AND time_nano <= ?"
            args.append(until_ns)
        sql += " ORDER BY id"
        with self._lock:
            rows = self.db.execute(sql, args).fetchall()
        return [json.loads(body) for (body,) in rows]

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(10)
        with self._lock:
            self.db.close()
