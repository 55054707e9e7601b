"""Reading and writing cgroup files: one error wording for every write, and the kernel's quirks.

Every cgroup setting is a file write; a failed write is a ``SystemFailure`` naming the value and
the file (``write '64' to '/sys/fs/cgroup/pids/x/pids.max': Invalid argument``). Reads return
the raw ``OSError`` so callers can tell a cgroup removed meanwhile (:data:`GONE`) from a failure.

    >>> number("123\\n"), number("max"), keyed("cache 10\\nrss 20\\n")
    (123, None, {'cache': 10, 'rss': 20})
"""

from __future__ import annotations

import errno
import os

from berth.errors import SystemFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator


class P(str):
    """A path as a plain string, with the few pathlib spellings the managers use (``/``,
    ``exists``, ``is_dir``, ``iterdir``, ``name``, ``parent``): importing pathlib (with re,
    fnmatch, urllib ...) was a third of an OCI runtime command's CPU time."""

    __slots__ = ()

    def __truediv__(self, other: str) -> P:
        # os.path.join's result for two strings, without its generality (this runs ~100 times
        # per container start)
        if other.startswith("/"):
            return P(other)
        return P(self + other if not self or self.endswith("/") else self + "/" + other)

    def exists(self) -> bool:
        return os.path.exists(self)

    def is_dir(self) -> bool:
        return os.path.isdir(self)

    def iterdir(self) -> Iterator[P]:
        return (P(os.path.join(self, n)) for n in os.listdir(self))

    @property
    def name(self) -> str:
        return os.path.basename(self)

    @property
    def parent(self) -> P:
        return P(os.path.dirname(self))


# a cgroup file of a cgroup that was removed: ENOENT, or ENODEV when it went between open and read
GONE = (errno.ENOENT, errno.ENODEV)


def read(path: str, errors: str = "strict") -> str:
    """The file's text through plain reads, not open(): no buffered text object for a file read
    once (the container's init reads /proc files right after its fork, where a first open() costs
    ~0.3 ms more)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", errors)


def read_quiet(path: P) -> str:
    """The file's text, or "" when the kernel does not offer it."""
    try:
        return read(path)
    except FileNotFoundError:
        return ""


def read_or_fail(path: P) -> str:
    """The file's text; any failure is a SystemFailure naming the file."""
    try:
        return read(path)
    except OSError as exc:
        raise SystemFailure(f"read '{path}': {exc.strerror}") from exc


def write(path: P, value: object) -> None:
    try:
        _write(path, value)
    except OSError as exc:
        raise SystemFailure(f"write {str(value)!r} to '{path}': {exc.strerror}") from exc


def _write(path: P, value: object) -> None:
    """One write(2) of the value's text, as the kernel wants a cgroup setting (what open(path, "w")
    would do, without a buffered text object); a fake tree's file is made."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def write_first(paths: tuple[P, ...], value: object) -> None:
    """Write the first of these files that exists (the kernel offers one or the other)."""
    for path in paths:
        if path.exists():
            write(path, value)
            return


def write_optional(path: P, value: object) -> None:
    """Write a file the kernel may not offer (swap accounting off): a missing file is no error."""
    try:
        _write(path, value)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.EPERM, errno.EACCES):
            return
        raise SystemFailure(f"write {str(value)!r} to '{path}': {exc.strerror}") from exc


def mkdir(path: P) -> None:
    try:
        os.mkdir(path)
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
