"""The build cache: which image a step produced on which parent, and why a step missed.

The model is the classic builder's: a step is a hit when an image was built from the same
parent image with the same "probe" config -- the step's container config, whose ``Cmd`` names
the step (``/bin/sh -c #(nop) COPY file:<sha> in /app``, or the RUN command prefixed with the
build arguments it sees, ``|1 X=42 /bin/sh -c make``). The key is the sha256 of the parent id
and that config. Each row also keeps what the step read (its text, the build arguments, the
checksums of the files it copied), so a miss can say in one line what changed::

    cache = BuildCache(data_root / "berth.db")
    key = cache_key(parent_id, probe_config)
    cache.get(key)                      # image id or None
    cache.put(key, parent_id, image_id, Detail("COPY", "COPY app /app", {}, {"app": "..."}))
    cache.why_missed(parent_id, detail) # "file app changed"

Rows live in the ``build_cache`` table of ``berth.db`` (``build_cache_schema`` holds its version).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth.errors import SystemFailure

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS build_cache_schema (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS build_cache (
    key TEXT PRIMARY KEY,
    parent TEXT NOT NULL,
    image TEXT NOT NULL,
    kind TEXT NOT NULL,
    step TEXT NOT NULL,
    detail TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS build_cache_parent ON build_cache(parent);
CREATE INDEX IF NOT EXISTS build_cache_step ON build_cache(step);
CREATE INDEX IF NOT EXISTS build_cache_image ON build_cache(image)
"""


def cache_key(parent: str, probe: dict[str, Any]) -> str:
    text = json.dumps({"parent": parent, "config": probe}, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Detail:
    """What a step read: enough to name what changed on the next build."""

    kind: str                                   # RUN, COPY, ADD, ENV ...
    step: str                                   # the instruction as dispatched (expanded)
    args: dict[str, str] = field(default_factory=dict)   # build arguments the step saw
    files: dict[str, str] = field(default_factory=dict)  # copied path -> checksum
    complete: bool = True                       # False when ``files`` was cut short
    identity: str = ""                          # the step before expansion (same across args)

    def to_json(self) -> str:
        return json.dumps({"args": self.args, "files": self.files, "complete": self.complete,
                           "identity": self.identity})


class BuildCache:
    def __init__(self, db_path: Path) -> None:
        self._lock = threading.Lock()
        try:
            self.db = sqlite3.connect(str(db_path), isolation_level=None, check_same_thread=False, timeout=30.0)
            self.db.execute("PRAGMA busy_timeout=30000")
            with self._lock:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                row = self.db.execute("SELECT version FROM build_cache_schema").fetchone()
                if row is None:
                    self.db.execute("INSERT INTO build_cache_schema (version) VALUES (?)", (SCHEMA_VERSION,))
                elif row[0] != SCHEMA_VERSION:
                    raise SystemFailure(
                        f"open build cache {db_path}: schema version {row[0]}, this berth reads {SCHEMA_VERSION}"
                    )
        except sqlite3.Error as exc:
            raise SystemFailure(f"open build cache {db_path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self.db.execute("SELECT image FROM build_cache WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, parent: str, image: str, detail: Detail) -> None:
        with self._lock:
            self.db.execute(
                "INSERT OR REPLACE INTO build_cache (key, parent, image, kind, step, detail, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, parent, image, detail.kind, detail.step, detail.to_json(), time.time_ns()),
            )

    def forget(self, key: str) -> None:
        with self._lock:
            self.db.execute("DELETE FROM build_cache WHERE key = ?", (key,))

    def forget_images(self, present: set[str]) -> int:
        """Drop rows whose image is gone; returns how many."""
        with self._lock:
            rows = self.db.execute("SELECT key, image FROM build_cache").fetchall()
            gone = [key for key, image in rows if image not in present]
            for key in gone:
                self.db.execute("DELETE FROM build_cache WHERE key = ?", (key,))
        return len(gone)

    def keys(self) -> list[str]:
        with self._lock:
            return [row[0] for row in self.db.execute("SELECT key FROM build_cache")]

    def count(self) -> int:
        with self._lock:
            return int(self.db.execute("SELECT count(*) FROM build_cache").fetchone()[0])

    def why_missed(self, parent: str, detail: Detail, exists: Any = None) -> str:
        """One line naming what changed since the last build of this step on this parent."""
        with self._lock:
            rows = self.db.execute(
                "SELECT image, step, detail FROM build_cache WHERE parent = ? AND kind = ? ORDER BY created DESC",
                (parent, detail.kind),
            ).fetchall()
            same_text = self.db.execute(
                "SELECT parent FROM build_cache WHERE step = ? ORDER BY created DESC LIMIT 1", (detail.step,)
            ).fetchone()
        for image, step, raw in rows:
            old = json.loads(raw)
            if step == detail.step or (detail.identity and old.get("identity") == detail.identity):
                if exists is not None and not exists(image):
                    return "the image this step made last time was removed"
                reason = _compare(old, detail)
                if reason:
                    return reason
                if step != detail.step:
                    return f"the step now reads {_short(detail.step)!r} (was {_short(step)!r})"
                return "the step's configuration changed (an earlier ENV, LABEL, USER, WORKDIR or SHELL)"
        if same_text is not None:
            return "the image it builds on changed (an earlier step was rebuilt or FROM names a new image)"
        if rows:
            return f"no earlier build of {_short(detail.step)!r} on this image"
        return "no earlier build of this step"


def _compare(old: dict[str, Any], new: Detail) -> str:
    old_args: dict[str, str] = old.get("args") or {}
    for name in sorted(set(old_args) | set(new.args)):
        before, after = old_args.get(name), new.args.get(name)
        if before == after:
            continue
        if before is None:
            return f"build argument {name} is new ({_short(after or '')!r})"
        if after is None:
            return f"build argument {name} is no longer set (was {_short(before)!r})"
        return f"build argument {name} changed ({_short(before)!r} -> {_short(after)!r})"
    old_files: dict[str, str] = old.get("files") or {}
    for path in sorted(set(old_files) | set(new.files)):
        before, after = old_files.get(path), new.files.get(path)
        if before == after:
            continue
        if before is None:
            return f"file {path} was added"
        if after is None:
            return f"file {path} was removed"
        return f"file {path} changed" + _how(before, after)
    if not (old.get("complete", True) and new.complete) and old_files.keys() == new.files.keys():
        return "files among the copied sources changed (too many to compare one by one)"
    return ""


def _how(before: str, after: str) -> str:
    kind0, mode0, link0, _ = (before.split(":", 3) + ["", "", "", ""])[:4]
    kind1, mode1, link1, _ = (after.split(":", 3) + ["", "", "", ""])[:4]
    if kind0 != kind1:
        return f" (a {kind0} became a {kind1})"
    if mode0 != mode1:
        return f" (mode {mode0} -> {mode1})"
    if link0 != link1:
        return f" (link target {link0!r} -> {link1!r})"
    return " (content)"


def _short(text: str, keep: int = 60) -> str:
    return text if len(text) <= keep else text[: keep - 1] + "…"
