"""The network driver's records in SQLite (``berth.db``, WAL): networks, sandboxes, endpoints.

An endpoint row is an IP lease: the unique index on (network, ip) makes a double allocation
impossible even if two allocations raced. A sandbox row is a running container's network
namespace and its published ports. Attaching a container writes its sandbox and endpoints in one
transaction, releasing deletes them in one, so a daemon killed at any moment restarts with a
container either fully attached or not at all (the kernel side is then reconciled to the rows).

    store = NetworkStore(data_root / "berth.db")
    store.put_network(net); store.networks(); store.attach(sandbox, [endpoint]); store.release(cid)
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from berth.drivers.network.model import Endpoint, Network, PortMapping
from berth.errors import Conflict

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Sandbox:
    """A running container's network namespace (``path``) and published ports."""

    container_id: str
    path: str
    ports: tuple[PortMapping, ...] = ()
    dns: bool = False  # the embedded DNS server answers inside it
    owner: str = ""  # container:NAME mode: the id whose namespace this is ("" = its own)
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["ports"] = [asdict(p) for p in self.ports]
        return d

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sandbox:
        data = dict(data)
        data["ports"] = tuple(PortMapping(**p) for p in data.get("ports") or ())
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


class NetworkStore:
    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        with self._lock:
            self.db.execute("CREATE TABLE IF NOT EXISTS network_schema (version INTEGER NOT NULL)")
            if self.db.execute("SELECT count(*) FROM network_schema").fetchone()[0] == 0:
                self.db.execute("INSERT INTO network_schema VALUES (?)", (SCHEMA_VERSION,))
            # seq keeps the order of creation (network ls lists the oldest first, as dockerd)
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS networks (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                " id TEXT UNIQUE NOT NULL, name TEXT UNIQUE NOT NULL, data TEXT NOT NULL)"
            )
            self.db.execute("CREATE TABLE IF NOT EXISTS sandboxes (container_id TEXT PRIMARY KEY, data TEXT NOT NULL)")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS endpoints (id TEXT PRIMARY KEY, network_id TEXT NOT NULL,"
                " container_id TEXT NOT NULL, ip TEXT, data TEXT NOT NULL)"
            )
            self.db.execute("CREATE UNIQUE INDEX IF NOT EXISTS endpoints_lease ON endpoints (network_id, ip)")
            self.db.execute(
                "CREATE UNIQUE INDEX IF NOT EXISTS endpoints_once ON endpoints (network_id, container_id)"
            )

    # networks ------------------------------------------------------------------------------
    def put_network(self, net: Network) -> None:
        with self._lock:
            try:
                self.db.execute(
                    "INSERT INTO networks (id, name, data) VALUES (?, ?, ?)"
                    " ON CONFLICT(id) DO UPDATE SET name = excluded.name, data = excluded.data",
                    (net.id, net.name, _dump(net.to_json())),
                )
            except sqlite3.IntegrityError as exc:
                raise Conflict(f"network with name {net.name} already exists") from exc

    def delete_network(self, nid: str) -> None:
        with self._lock:
            self.db.execute("DELETE FROM networks WHERE id = ?", (nid,))

    def networks(self) -> list[Network]:
        """Oldest first. A record written before the network driver (Docker's own shape, for the
        three pre-defined networks) keeps its id and creation time."""
        with self._lock:
            rows = self.db.execute("SELECT data FROM networks ORDER BY seq").fetchall()
        out = []
        for (text,) in rows:
            data = json.loads(text)
            if "Name" in data:
                data = {"id": data["Id"], "name": data["Name"], "driver": data["Driver"], "created": data["Created"]}
            out.append(Network.from_json(data))
        return out

    # sandboxes and endpoints ---------------------------------------------------------------
    def attach(self, sandbox: Sandbox | None, endpoints: list[Endpoint]) -> None:
        """Record a sandbox (if given) and endpoints in one transaction."""
        with self._lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                if sandbox is not None:
                    self.db.execute(
                        "INSERT OR REPLACE INTO sandboxes VALUES (?, ?)",
                        (sandbox.container_id, _dump(sandbox.to_json())),
                    )
                for ep in endpoints:
                    self.db.execute(
                        "INSERT INTO endpoints VALUES (?, ?, ?, ?, ?)",
                        (ep.id, ep.network_id, ep.container_id, ep.ip or None, _dump(ep.to_json())),
                    )
                self.db.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                self._rollback()
                raise Conflict(f"record endpoint: {exc}") from exc
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        # SQLite may have rolled back already (SQLITE_FULL, SQLITE_IOERR end the transaction):
        # a second ROLLBACK must not hide the error that caused it
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    def put_sandbox(self, sandbox: Sandbox) -> None:
        with self._lock:
            self.db.execute(
                "INSERT OR REPLACE INTO sandboxes VALUES (?, ?)", (sandbox.container_id, _dump(sandbox.to_json()))
            )

    def release(self, cid: str) -> None:
        """Forget a container's sandbox and all its endpoints (one transaction)."""
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute("DELETE FROM endpoints WHERE container_id = ?", (cid,))
                self.db.execute("DELETE FROM sandboxes WHERE container_id = ?", (cid,))
                self.db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def delete_endpoint(self, eid: str) -> None:
        with self._lock:
            self.db.execute("DELETE FROM endpoints WHERE id = ?", (eid,))

    def sandboxes(self) -> list[Sandbox]:
        with self._lock:
            rows = self.db.execute("SELECT data FROM sandboxes").fetchall()
        return [Sandbox.from_json(json.loads(r[0])) for r in rows]

    def endpoints(self) -> list[Endpoint]:
        with self._lock:
            rows = self.db.execute("SELECT data FROM endpoints").fetchall()
        return [Endpoint.from_json(json.loads(r[0])) for r in rows]

    def close(self) -> None:
        self.db.close()
