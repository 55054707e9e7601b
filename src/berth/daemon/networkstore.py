"""Network records: Docker's network objects in SQLite (the ``networks`` table of ``berth.db``).

Until the network driver lands, the only networks are the three a dockerd always has, made on
the first start of a data root and kept from then on, so their ids are stable per daemon::

    none    driver "null"    (a container gets a network namespace with only ``lo``)
    host    driver "host"    (the host's network namespace)
    bridge  driver "bridge"  (the default; for now it acts as ``none``: docs/decisions.md)

A record is Docker's ``NetworkResource`` without ``Containers`` (those follow from the
container records when a network is inspected)::

    store = NetworkStore(data_root / "berth.db")
    store.all()            # [{"Name": "none", "Id": "<64 hex>", "Driver": "null", ...}, ...]
    store.find("bridge")   # by full id, full name, or a unique id prefix
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from pathlib import Path
from typing import Any

from berth.container.record import now_rfc3339
from berth.errors import InvalidParameter, NotFound

SCHEMA_VERSION = 1
PREDEFINED = ("none", "host", "bridge")  # Docker's order of creation
DRIVERS = {"none": "null", "host": "host", "bridge": "bridge"}


def _record(name: str) -> dict[str, Any]:
    options: dict[str, str] = {}
    if name == "bridge":
        options = {"com.docker.network.bridge.default_bridge": "true"}
    return {
        "Name": name,
        "Id": secrets.token_hex(32),
        "Created": now_rfc3339(),
        "Scope": "local",
        "Driver": DRIVERS[name],
        "EnableIPv6": False,
        # No subnet: there is no bridge (and so no address pool) until the driver lands.
        "IPAM": {"Driver": "default", "Options": None, "Config": []},
        "Internal": False,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Options": options,
        "Labels": {},
    }


class NetworkStore:
    def __init__(self, db_path: Path) -> None:
        self._lock = threading.Lock()
        self.db = sqlite3.connect(str(db_path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA busy_timeout=5000")
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute("CREATE TABLE IF NOT EXISTS network_schema (version INTEGER NOT NULL)")
                if self.db.execute("SELECT count(*) FROM network_schema").fetchone()[0] == 0:
                    self.db.execute("INSERT INTO network_schema VALUES (?)", (SCHEMA_VERSION,))
                self.db.execute(
                    "CREATE TABLE IF NOT EXISTS networks"
                    " (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,"
                    " name TEXT UNIQUE NOT NULL, data TEXT NOT NULL)"
                )
                for name in PREDEFINED:
                    if self.db.execute("SELECT 1 FROM networks WHERE name = ?", (name,)).fetchone() is None:
                        rec = _record(name)
                        self.db.execute(
                            "INSERT INTO networks (id, name, data) VALUES (?, ?, ?)",
                            (rec["Id"], name, json.dumps(rec)),
                        )
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self.db.execute("SELECT data FROM networks ORDER BY seq").fetchall()
        return [json.loads(r[0]) for r in rows]

    def find(self, ref: str) -> dict[str, Any]:
        """Docker's lookup order: full id, then full name, then a unique id prefix."""
        nets = self.all()
        for key in ("Id", "Name"):
            for n in nets:
                if n[key] == ref:
                    return n
        matches = [n for n in nets if ref and n["Id"].startswith(ref)]
        if len(matches) > 1:
            raise InvalidParameter(f"network {ref} is ambiguous ({len(matches)} matches found based on ID prefix)")
        if not matches:
            raise NotFound(f"network {ref} not found")
        return matches[0]

    def id_of(self, name: str) -> str:
        """The id of the network named ``name``; ``""`` when there is none."""
        try:
            return str(self.find(name)["Id"])
        except (NotFound, InvalidParameter):
            return ""

    def close(self) -> None:
        self.db.close()
