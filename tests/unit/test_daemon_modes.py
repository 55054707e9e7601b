"""berthd's roots are root's alone (berth.daemon.modes): start-up fixes what was left open."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from berth.daemon.config import parse_args, parse_size
from berth.daemon.modes import secure_data_root, secure_exec_root

CID = "c" * 64


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_open_data_root_is_made_private(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for d in ("containers/" + CID, "volumes/v/_data", "blobs/sha256", "tmp", "overlay2/l"):
        (root / d).mkdir(parents=True)
    for f in (f"containers/{CID}/config.json", f"containers/{CID}/{CID}-json.log", f"containers/{CID}/hosts"):
        (root / f).write_text("x")
    os.chmod(root, 0o755)
    for p in root.rglob("*"):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    secure_data_root(root)
    for d in ("", "containers", "containers/" + CID, "volumes", "volumes/v", "blobs", "blobs/sha256", "tmp", "overlay2", "overlay2/l"):
        assert mode(root / d) == 0o700, d
    assert mode(root / "containers" / CID / "config.json") == 0o600
    assert mode(root / "containers" / CID / f"{CID}-json.log") == 0o640
    assert mode(root / "containers" / CID / "hosts") == 0o644  # the container reads it as any user
    assert mode(root / "volumes" / "v" / "_data") == 0o755  # the container's own
    assert mode(root / "berth.db") == 0o600


def test_the_database_and_its_wal_are_created_private(tmp_path: Path) -> None:
    secure_data_root(tmp_path / "data")
    db = sqlite3.connect(tmp_path / "data" / "berth.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (x)")
    db.execute("INSERT INTO t VALUES (1)")
    db.commit()
    for name in ("berth.db", "berth.db-wal", "berth.db-shm"):
        assert mode(tmp_path / "data" / name) == 0o600, name
    db.close()


def test_open_exec_root_is_made_private(tmp_path: Path) -> None:
    root = tmp_path / "exec"
    (root / CID).mkdir(parents=True)
    for f in ("state.json", "exit.json", "seccomp.json", "monitor.log"):
        (root / CID / f).write_text("{}")
        os.chmod(root / CID / f, 0o644)
    os.chmod(root / CID, 0o755)
    os.chmod(root, 0o755)
    secure_exec_root(root)
    assert mode(root) == mode(root / CID) == 0o700
    assert mode(root / CID / "state.json") == mode(root / CID / "seccomp.json") == 0o600
    assert mode(root / CID / "monitor.log") == 0o640


def test_max_import_size_flag_and_file_key(tmp_path: Path) -> None:
    assert parse_args([]).max_import_size is None  # the graph's default
    assert parse_args(["--max-import-size", "512m"]).max_import_size == 512 << 20
    cfg = tmp_path / "daemon.json"
    cfg.write_text('{"max-import-size": "2g"}')
    assert parse_args(["--config-file", str(cfg)]).max_import_size == 2 << 30
    assert parse_size(0, "x") == 0 and parse_size("1GiB", "x") == 1 << 30
