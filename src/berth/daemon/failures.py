"""Foreign failures (``OSError``, ``sqlite3.Error``) as berth errors with Docker-like text.

A handler that hits the kernel or the database directly may see a raw ``OSError`` or
``sqlite3.OperationalError``; the daemon translates them at one boundary (every job handler
runs behind :func:`translate`), so a client reads what dockerd would print, never a Python
class name::

    >>> import errno
    >>> str(translate("container.create", OSError(errno.ENOSPC, "No space left on device", "/d/hosts")))
    'create container: /d/hosts: no space left on device'

SQLite's "database or disk is full" becomes the write that failed:
``write /var/lib/berth/berth.db: no space left on device``.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from berth.errors import SystemFailure

SQLITE_FULL = 13
SQLITE_IOERR = 10


def go_strerror(code: int) -> str:
    """The errno's text as Go prints it (``no space left on device``)."""
    text = os.strerror(code)
    return text[:1].lower() + text[1:]


def os_error_text(exc: OSError) -> str:
    """``/path: no space left on device`` (Go's PathError without its op)."""
    cause = go_strerror(exc.errno) if exc.errno else str(exc)
    return f"{os.fsdecode(exc.filename)}: {cause}" if exc.filename else cause


def db_error_text(exc: sqlite3.Error, db: Path | str) -> str:
    """What a failed SQLite call means for the file: ENOSPC for SQLITE_FULL, EIO for I/O errors."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code == SQLITE_FULL:
        return f"write {db}: {go_strerror(errno.ENOSPC)}"
    if code is not None and code & 0xFF == SQLITE_IOERR:
        return f"write {db}: {go_strerror(errno.EIO)}"
    return f"database {db}: {exc}"


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL


def describe_job(name: str) -> str:
    """``container.create`` -> ``create container`` (the operation, then the object)."""
    obj, _, op = name.partition(".")
    return f"{op.replace('.', ' ')} {obj}" if op else name


def translate(job: str, exc: OSError | sqlite3.Error, db: Path | str = "berth.db") -> SystemFailure:
    """The SystemFailure (500) for a foreign failure of job ``job``."""
    text = os_error_text(exc) if isinstance(exc, OSError) else db_error_text(exc, db)
    return SystemFailure(f"{describe_job(job)}: {text}")
