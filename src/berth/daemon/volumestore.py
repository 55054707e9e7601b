"""Volumes of the ``local`` driver: a record in SQLite and a directory ``volumes/<name>/_data``.

The record (``volumes`` table in ``berth.db``, ``volume_schema`` holds its version) is Docker's
volume object minus ``Mountpoint``, which follows from the name. A create writes the directory
first and the record second, so a volume that is listed always has its directory; a remove
deletes the record first, then the directory::

    store = VolumeStore(data_root)
    v = store.create("data", labels={"a": "b"})   # {"Name": "data", "Mountpoint": ".../volumes/data/_data", ...}
    store.get("data"); store.all(); store.remove("data")
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from berth.daemon.modes import path_dir_mode, remapped_root
from berth.daemon.mountspec import check_volume_name
from berth.errors import InvalidParameter, NotFound
from berth.libcontainer.removetree import remove_tree

SCHEMA_VERSION = 1
ANONYMOUS_LABEL = "com.docker.volume.anonymous"


LOCAL_OPTIONS = ("type", "device", "o")
_REQUIRED = {"device": "type", "type": "device", "o": "device"}


def check_local_options(name: str, options: dict[str, str]) -> None:
    """The local driver's ``-o``: ``type``, ``device`` and ``o`` (mount(8)'s ``-t``, the source,
    ``-o``), with dockerd's texts; each needs its partners (``o`` needs ``device``)."""
    for key, value in options.items():
        if key not in LOCAL_OPTIONS:
            raise InvalidParameter(f'create {name}: invalid option: "{key}"')
        if not isinstance(value, str):
            raise InvalidParameter(f"create {name}: option {key!r} must be a string")
    for key, needs in _REQUIRED.items():
        if key in options and needs not in options:
            raise InvalidParameter(f'create {name}: missing required option: "{needs}"')


class VolumeStore:
    def __init__(self, data_root: Path) -> None:
        self.root = data_root / "volumes"
        self.root.mkdir(mode=path_dir_mode(), parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.db = sqlite3.connect(str(data_root / "berth.db"), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA busy_timeout=5000")
        with self._lock:
            self.db.execute("CREATE TABLE IF NOT EXISTS volume_schema (version INTEGER NOT NULL)")
            if self.db.execute("SELECT count(*) FROM volume_schema").fetchone()[0] == 0:
                self.db.execute("INSERT INTO volume_schema VALUES (?)", (SCHEMA_VERSION,))
            self.db.execute("CREATE TABLE IF NOT EXISTS volumes (name TEXT PRIMARY KEY, data TEXT NOT NULL)")

    def mountpoint(self, name: str) -> Path:
        return self.root / name / "_data"

    def _view(self, record: dict[str, Any]) -> dict[str, Any]:
        return {
            "CreatedAt": record["CreatedAt"],
            "Driver": "local",
            "Labels": record.get("Labels") or {},
            "Mountpoint": str(self.mountpoint(record["Name"])),
            "Name": record["Name"],
            "Options": record.get("Options") or None,
            "Scope": "local",
        }

    def create(
        self, name: str = "", labels: dict[str, str] | None = None, driver: str = "local",
        options: dict[str, str] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """(the volume, whether it is new). An existing name gives the existing volume, as Docker."""
        if driver not in ("", "local"):
            raise InvalidParameter(f"create {name}: volume driver {driver!r} is not supported: berth has only \"local\"")
        check_local_options(name, options or {})
        anonymous = not name
        name = name or secrets.token_hex(32)
        check_volume_name(name)
        labels = dict(labels or {})
        if anonymous:
            labels[ANONYMOUS_LABEL] = ""
        with self._lock:
            row = self.db.execute("SELECT data FROM volumes WHERE name = ?", (name,)).fetchone()
            if row is not None:
                return self._view(json.loads(row[0])), False
            self.mountpoint(name).parent.mkdir(mode=path_dir_mode(), exist_ok=True)
            self.mountpoint(name).mkdir(exist_ok=True)  # _data: the container's, 0755 as Docker's
            owner = remapped_root()
            if owner is not None:  # --userns-remap: the remapped root's, as dockerd's
                os.chown(self.mountpoint(name), *owner)
            record = {
                "Name": name,
                "CreatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "Labels": labels,
                "Options": dict(options) if options else None,
            }
            self.db.execute("INSERT INTO volumes VALUES (?, ?)", (name, json.dumps(record)))
        return self._view(record), True

    def get(self, name: str) -> dict[str, Any]:
        with self._lock:
            row = self.db.execute("SELECT data FROM volumes WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"get {name}: no such volume")
        return self._view(json.loads(row[0]))

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self.db.execute("SELECT data FROM volumes ORDER BY name").fetchall()
        return [self._view(json.loads(r[0])) for r in rows]

    def remove(self, name: str) -> None:
        with self._lock:
            self.db.execute("DELETE FROM volumes WHERE name = ?", (name,))
        # a mount below the volume (propagated from a container or the host) is not ours to
        # unmount: it stays, with the directories above it, and its files are never deleted
        remove_tree(self.root / name, unmount=False)

    def size(self, name: str) -> int:
        total = 0
        for path in self.mountpoint(name).rglob("*"):
            try:
                if path.is_file() and not path.is_symlink():
                    total += path.stat().st_size
            except OSError:
                continue  # vanished while we counted: it no longer takes space
        return total

    def close(self) -> None:
        self.db.close()
