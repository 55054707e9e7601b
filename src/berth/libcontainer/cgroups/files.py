"""Reading and writing cgroup files: one error wording for every write, and the kernel's quirks.

Every cgroup setting is a file write; a failed write is a ``SystemFailure`` naming the value and
the file (``write '64' to '/sys/fs/cgroup/pids/x/pids.max': Invalid argument``). Reads return
the raw ``OSError`` so callers can tell a cgroup removed meanwhile (:data:`GONE`) from a failure.

    >>> number("123\\n"), number("max"), keyed("cache 10\\nrss 20\\n")
    (123, None, {'cache': 10, 'rss': 20})
"""

from __future__ import annotations

import errno
from pathlib import Path

from berth.errors import SystemFailure

# a cgroup file of a cgroup that was removed: ENOENT, or ENODEV when it went between open and read
GONE = (errno.ENOENT, errno.ENODEV)


def read(path: Path) -> str:
    with open(path) as f:
        return f.read()


def read_quiet(path: Path) -> str:
    """The file's text, or "" when the kernel does not offer it."""
    try:
        return read(path)
    except FileNotFoundError:
        return ""


def read_or_fail(path: Path) -> str:
    """The file's text; any failure is a SystemFailure naming the file."""
    try:
        return read(path)
    except OSError as exc:
        raise SystemFailure(f"read '{path}': {exc.strerror}") from exc


def write(path: Path, value: object) -> None:
    try:
        with open(path, "w") as f:
            f.write(str(value))
    except OSError as exc:
        raise SystemFailure(f"write {str(value)!r} to '{path}': {exc.strerror}") from exc


def write_first(paths: tuple[Path, ...], value: object) -> None:
    """Write the first of these files that exists (the kernel offers one or the other)."""
    for path in paths:
        if path.exists():
            write(path, value)
            return


def write_optional(path: Path, value: object) -> None:
    """Write a file the kernel may not offer (swap accounting off): a missing file is no error."""
    try:
        with open(path, "w") as f:
            f.write(str(value))
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.EPERM, errno.EACCES):
            return
        raise SystemFailure(f"write {str(value)!r} to '{path}': {exc.strerror}") from exc


def mkdir(path: Path) -> None:
    try:
        path.mkdir()
    except FileExistsError:
        pass  # shared parents (berth-<tag>) are made once and kept
    except OSError as exc:
        raise SystemFailure(f"create cgroup '{path}': {exc.strerror}") from exc


def number(text: str) -> int | None:
    """A cgroup number file: ``"123\\n"`` -> 123; ``"max"`` or nothing -> None."""
    text = text.strip()
    return int(text) if text.isdigit() else None


def keyed(text: str) -> dict[str, int]:
    """``key value`` lines (memory.stat, cpu.stat, memory.events) as a dict."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out
