"""The container's /etc/passwd and /etc/group as berth reads them: never blocking, never large.

Both files belong to the container, so they are hostile input (issue 5): a FIFO there blocks
whoever opens it (an exec hung, and every later exec of that container with it), a sparse
100 GB file fills the reader's memory, a symlink may point anywhere. Whoever reads one -- the
daemon (``--user``/``--group-add`` through the graph, which also resolves symlinks inside the
container's layers and opens every component with O_NOFOLLOW) and the container's own init or
exec'd process (HOME, inside the container's mount namespace) -- opens it with :data:`FLAGS`
(O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer), then
:func:`read` checks that what was opened is a regular file of at most :data:`LIMIT` bytes and
reads no more than that::

    fd = os.open("/etc/passwd", FLAGS)
    data = read(fd, "/etc/passwd")      # bytes, or AccountFileError(...)

Dependency-free: the daemon, the graph and libcontainer all use it.
"""

from __future__ import annotations

import os
import stat

# 1 MiB: some 15,000 passwd lines. glibc has no limit; the bound keeps a hostile file from
# costing the daemon (or the exec'd process) more than a moment and a megabyte.
LIMIT = 1 << 20
FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC

_KINDS = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISLNK, "a symbolic link"),
)


class AccountFileError(ValueError):
    """The file is there but berth will not read it; the text says why (no trailing period)."""


def kind(mode: int) -> str:
    """``"a named pipe"`` for a FIFO's st_mode, and so on; ``"a regular file"``."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "a special file"


def read(fd: int, name: str) -> bytes:
    """The content of the open file ``fd`` (not closed here); ``name`` is for the messages."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise AccountFileError(f"{name} is {kind(info.st_mode)}, not a regular file")
    if info.st_size > LIMIT:
        raise AccountFileError(f"{name} is larger than {LIMIT >> 20} MiB ({info.st_size} bytes)")
    chunks: list[bytes] = []
    got = 0
    while got <= LIMIT:
        chunk = os.read(fd, LIMIT + 1 - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    if got > LIMIT:  # it grew while we read
        raise AccountFileError(f"{name} is larger than {LIMIT >> 20} MiB")
    return b"".join(chunks)
