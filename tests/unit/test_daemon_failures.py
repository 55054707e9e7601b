"""Foreign failures as Docker-like text; the data root's reserve; the LogWriter on a full disk."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from pathlib import Path

import pytest

from berth.container.logs import LogWriter
from berth.daemon.failures import db_error_text, describe_job, is_disk_full, translate
from berth.daemon.reserve import Reserve
from berth.errors import SystemFailure


def _sqlite_error(code: int, text: str) -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError(text)
    exc.sqlite_errorcode = code
    return exc


def test_os_errors_read_like_go_path_errors() -> None:
    exc = OSError(errno.ENOSPC, "No space left on device", "/d/containers/x/hosts")
    err = translate("container.create", exc)
    assert isinstance(err, SystemFailure)
    assert err.message == "create container: /d/containers/x/hosts: no space left on device"
    assert translate("container.remove", OSError(errno.EIO, "I/O error")).message == (
        "remove container: input/output error"
    )


def test_sqlite_errors_name_the_write_that_failed() -> None:
    full = _sqlite_error(13, "database or disk is full")
    assert db_error_text(full, "/d/berth.db") == "write /d/berth.db: no space left on device"
    assert db_error_text(_sqlite_error(10 | (12 << 8), "disk I/O error"), "/d/berth.db") == (
        "write /d/berth.db: input/output error"
    )
    assert "OperationalError" not in translate("image.commit", full, "/d/berth.db").message
    assert is_disk_full(full) and is_disk_full(OSError(errno.ENOSPC, "x"))
    assert not is_disk_full(_sqlite_error(5, "database is locked"))


def test_job_names_become_operation_then_object() -> None:
    assert describe_job("container.create") == "create container"
    assert describe_job("serveapi") == "serveapi"


def test_reserve_is_allocated_released_and_taken_back(tmp_path: Path) -> None:
    reserve = Reserve(tmp_path / "reserved-space", 64 << 10)
    assert reserve.take() and reserve.held()
    assert (tmp_path / "reserved-space").stat().st_blocks * 512 >= 64 << 10  # real blocks, not sparse
    assert oct((tmp_path / "reserved-space").stat().st_mode & 0o777) == "0o600"
    assert reserve.release() and not reserve.held()
    assert not reserve.release()  # nothing more to free
    assert reserve.take()


def test_reserve_is_not_taken_from_a_nearly_full_disk(tmp_path: Path) -> None:
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    reserve = Reserve(tmp_path / "reserved-space", free)  # 4x that is never free
    assert not reserve.take() and not (tmp_path / "reserved-space").exists()


def test_log_writer_drops_output_it_cannot_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC must not stop the container's monitor: the records are dropped, a record cut short
    is ended, and writing resumes once there is room."""
    log = LogWriter(str(tmp_path / "c-json.log"))
    log.write(1, b"one\n")
    real_write = os.write
    calls = {"n": 0}

    def full(fd: int, data: bytes | memoryview) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data)[:5])  # a partial write, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    log.write(1, b"lost\n")
    log.write(2, b"lost too\n")
    monkeypatch.setattr(os, "write", real_write)
    log.write(1, b"two\n")
    log.close()
    lines = (tmp_path / "c-json.log").read_bytes().splitlines()
    assert [json.loads(line)["log"] for line in (lines[0], lines[-1])] == ["one\n", "two\n"]
    assert len(lines) == 3  # the torn record is a line of its own, which readers skip
