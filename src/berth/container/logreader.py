"""Reading a json-file log (see :mod:`berth.container.logs` for the format) without starving
the daemon's event loop.

The file is read and parsed in blocks of about 1 MiB on a small thread pool of its own; the
event loop only awaits each block and writes it out, so a 100 MB ``docker logs`` leaves the
loop free for ``_ping`` and ``ps``, and a slow client holds back the reading (the next block
is read only after the previous one was written, and aiohttp's write waits while the
socket's buffer is full). The next block is parsed while the current one is being written.

Two views over one scanner:

- :func:`read_log_stream` yields ready-to-send bytes: Docker's multiplexed frames (one per
  record) or, for a TTY container, the raw output; what ``GET /containers/{id}/logs`` sends.
- :func:`read_logs` yields :class:`LogRecord` objects (tests, tools).

Parsing has a fast path for the lines the monitor writes
(``{"log":"...","stream":"stdout","time":"<30 bytes>"}``): the payload is cut out of the line
without a JSON decode when its only escape is the final ``\\n``; any other line goes through
``json.loads``. A damaged line is skipped (it still counts as a line for ``tail``). Times are
parsed only when ``since``, ``until`` or ``timestamps`` need them.

Model of ``follow``: at the end of the current file the scanner polls every
``poll_interval`` for appended records and moves on to the next file when the writer rotates
this one, until ``stop`` is set; it then reads what was appended up to that moment and ends.
"""

from __future__ import annotations

import asyncio
import calendar
import functools
import gzip
import json
import os
import shutil
import struct
import threading
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Generic, TypeVar

from berth.container.logs import format_time, parse_time

BLOCK = 1 << 20  # bytes read and parsed per step
_HEADER = struct.Struct(">BxxxI").pack
_PREFIX = b'{"log":"'
_STREAM = b'","stream":"'
_TAIL = {b'stdout","time":"': 1, b'stderr","time":"': 2}

T = TypeVar("T")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """The readers' own threads: a few big logs never occupy the default executor, which the
    daemon's SQLite and file work needs."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="berth-logs")
        return _pool


@dataclass(frozen=True)
class LogRecord:
    """One record: ``stream`` is 1 (stdout) or 2 (stderr); ``time`` is ns since the epoch.

    ``data`` is the output bytes, prefixed with ``"<RFC3339NanoFixed> "`` when the reader was
    asked for timestamps (Docker puts the timestamp in the payload).
    """

    stream: int
    data: bytes
    time: int


def parse_record(line: bytes) -> tuple[int, bytes, int] | None:
    """``(stream, data, ns)`` from one json-file line; ``None`` for a damaged line."""
    got = _split(line)
    if got is None:
        return None
    stream, data, stamp = got
    ns = _time_ns(stamp)
    return None if ns is None else (stream, data, ns)


def _split(line: bytes) -> tuple[int, bytes, bytes] | None:
    """``(stream, data, time text)`` of one line, or None when it is damaged."""
    if line.startswith(_PREFIX) and line.endswith(b'"}'):
        # `","stream":"` cannot occur inside the escaped log text (every quote there follows
        # a backslash), so the last one ends the text
        cut = line.rfind(_STREAM)
        stream = _TAIL.get(line[cut + 12 : cut + 28]) if cut > 0 else None
        if stream is not None:
            raw = line[8:cut]
            slash = raw.find(b"\\")
            if slash < 0:
                return stream, raw, line[cut + 28 : -2]
            if slash == len(raw) - 2 and raw[-1:] == b"n":
                return stream, raw[:-2] + b"\n", line[cut + 28 : -2]
            try:
                text = json.loads(b'"' + raw + b'"')
            except ValueError:
                return None
            return stream, text.encode("utf-8", "surrogatepass"), line[cut + 28 : -2]
    try:  # written by something else (other field order, extra fields)
        obj = json.loads(line)
        stream = 2 if obj.get("stream") == "stderr" else 1
        return stream, obj["log"].encode("utf-8", "surrogatepass"), obj["time"].encode()
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


@functools.lru_cache(maxsize=4096)
def _second(prefix: bytes) -> int | None:
    """Seconds since the epoch of ``YYYY-MM-DDTHH:MM:SS`` (cached: lines share seconds)."""
    try:
        t = prefix.decode()
        if t[4] != "-" or t[7] != "-" or t[10] not in "Tt" or t[13] != ":" or t[16] != ":":
            return None
        return calendar.timegm(
            (int(t[0:4]), int(t[5:7]), int(t[8:10]), int(t[11:13]), int(t[14:16]), int(t[17:19]), 0, 0, 0)
        )
    except (ValueError, IndexError, UnicodeDecodeError):
        return None


def _time_ns(stamp: bytes) -> int | None:
    """Nanoseconds of an RFC3339 time; the monitor's fixed form is parsed without strptime."""
    if len(stamp) == 30 and stamp[19:20] == b"." and stamp[29:30] in (b"Z", b"z") and stamp[20:29].isdigit():
        sec = _second(stamp[:19])
        if sec is not None:
            return sec * 1_000_000_000 + int(stamp[20:29])
    try:
        return parse_time(stamp.decode())
    except (ValueError, UnicodeDecodeError, IndexError):
        return None


def _stamp(stamp: bytes, ns: int) -> bytes:
    """The ``logs -t`` prefix: RFC3339 with nine digits in UTC (the monitor's form as it is)."""
    if len(stamp) == 30 and stamp[29:30] == b"Z":
        return stamp + b" "
    return format_time(ns).encode() + b" "


@dataclass(frozen=True)
class Window:
    """What to keep: ``since``/``until`` in ns (inclusive; None = open), and whether each
    payload gets its timestamp."""

    since: int | None = None
    until: int | None = None
    timestamps: bool = False

    @property
    def needs_time(self) -> bool:
        return self.since is not None or self.until is not None or self.timestamps


Converter = Callable[[bytes, Window], tuple[T, bool]]


def _records(block: bytes, w: Window) -> tuple[list[LogRecord], bool]:
    """The records of complete lines; True once past ``until`` (the rest is not wanted)."""
    out: list[LogRecord] = []
    for line in block.splitlines():
        got = _split(line)
        if got is None:
            continue
        stream, data, stamp = got
        ns = _time_ns(stamp)
        if ns is None:
            continue
        if w.since is not None and ns < w.since:
            continue
        if w.until is not None and ns > w.until:
            return out, True
        out.append(LogRecord(stream, _stamp(stamp, ns) + data if w.timestamps else data, ns))
    return out, False


def stream_converter(tty: bool, stdout: bool = True, stderr: bool = True) -> Converter[bytes]:
    """Blocks of lines -> the bytes Docker sends: one multiplexed frame per record, or the
    raw payloads for a TTY container; streams not asked for are left out."""
    want = {1: stdout, 2: stderr}

    def convert(block: bytes, w: Window) -> tuple[bytes, bool]:
        parts: list[bytes] = []
        add = parts.append
        timed = w.needs_time
        for line in block.splitlines():
            got = _split(line)
            if got is None:
                continue
            stream, data, stamp = got
            if timed:
                ns = _time_ns(stamp)
                if ns is None:
                    continue
                if w.since is not None and ns < w.since:
                    continue
                if w.until is not None and ns > w.until:
                    return b"".join(parts), True
                if w.timestamps:
                    data = _stamp(stamp, ns) + data
            if not want[stream]:
                continue
            if not tty:
                add(_HEADER(stream, len(data)))
            add(data)
        return b"".join(parts), False

    return convert


# -- the scanner ---------------------------------------------------------------------------


def log_files(path: str | os.PathLike[str]) -> list[str]:
    """The log and its rotated predecessors, oldest first (``log.N`` ... ``log.1``, ``log``);
    a rotated one may be gzipped (``log.N.gz``: ``compress``)."""
    base = os.fspath(path)
    rotated = []
    i = 1
    while True:
        if os.path.exists(f"{base}.{i}"):
            rotated.append(f"{base}.{i}")
        elif os.path.exists(f"{base}.{i}.gz"):
            rotated.append(f"{base}.{i}.gz")
        else:
            break
        i += 1
    return [*reversed(rotated), base]


def _open_log(name: str) -> int:
    """A descriptor to read ``name``; a gzipped one is inflated into memory first (a rotated
    file is at most ``max-size``), so every reader below works on plain descriptors."""
    if not name.endswith(".gz"):
        return os.open(name, os.O_RDONLY | os.O_CLOEXEC)
    fd = os.memfd_create("berth-log", os.MFD_CLOEXEC)
    try:
        with gzip.open(name, "rb") as src, open(fd, "wb", closefd=False) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except (OSError, EOFError, zlib.error):
        os.close(fd)
        raise FileNotFoundError(name) from None  # damaged or rotated away: read as gone
    return fd


def _tail_offset(fd: int, size: int, tail: int, block: int = 64 * 1024) -> tuple[int, int]:
    """Where the last ``tail`` complete lines of the file start, and how many lines that is
    (fewer than ``tail`` when the file holds fewer: the rest is in older files). Bytes after
    the last newline are a line still being written and do not count."""
    if tail <= 0 or size == 0:
        return size, 0
    pos = size
    found = 0  # newlines seen from the end; the (tail + 1)-th precedes the first wanted line
    while pos > 0:
        start = max(0, pos - block)
        chunk = os.pread(fd, pos - start, start)
        idx = len(chunk)
        while (idx := chunk.rfind(b"\n", 0, idx)) >= 0:
            found += 1
            if found == tail + 1:
                return start + idx + 1, tail
        pos = start
    return 0, found


def _open_all(path: str | os.PathLike[str], tail: int | None) -> tuple[list[int], list[int]]:
    """Open the log's files (-1 where one vanished) and find where reading starts in each:
    all of it, or the last ``tail`` lines across the files. Runs on a reader thread."""
    fds: list[int] = []
    try:
        for name in log_files(path):
            try:
                fds.append(_open_log(name))
            except FileNotFoundError:
                fds.append(-1)  # rotated away meanwhile, or no log yet
        starts = [0] * len(fds)
        if tail is not None and tail >= 0:
            left = tail
            for i in range(len(fds) - 1, -1, -1):
                size = os.fstat(fds[i]).st_size if fds[i] >= 0 else 0
                if left <= 0:
                    starts[i] = size
                    continue
                starts[i], got = _tail_offset(fds[i], size, left) if fds[i] >= 0 else (0, 0)
                left -= got
    except BaseException:
        _close_all(fds)
        raise
    return fds, starts


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        if fd >= 0:
            os.close(fd)


@dataclass
class _Step(Generic[T]):
    size: int  # bytes read from the file (0 = at its end)
    pending: bytes  # an incomplete last line, kept for the next step
    result: T | None
    past_until: bool


def _step(fd: int, offset: int, pending: bytes, convert: Converter[T], w: Window) -> _Step[T]:
    """Read one block at ``offset`` and convert its complete lines (on a reader thread)."""
    chunk = os.pread(fd, BLOCK, offset)
    if not chunk:
        return _Step(0, pending, None, False)
    data = pending + chunk if pending else chunk
    cut = data.rfind(b"\n") + 1
    if not cut:
        return _Step(len(chunk), data, None, False)
    result, past = convert(data[:cut] if cut < len(data) else data, w)
    return _Step(len(chunk), data[cut:], result, past)


def _next_file(path: str | os.PathLike[str], ino: int) -> str | None:
    """The file written after the one with inode ``ino``; None while that one is the current."""
    files = log_files(path)
    inodes = []
    for name in files:
        try:
            inodes.append(os.stat(name).st_ino)
        except FileNotFoundError:
            inodes.append(-1)  # between the writer's rename and its new file
    if ino in inodes:
        i = inodes.index(ino)
        return files[i + 1] if i + 1 < len(files) else None
    if any(name.endswith(".gz") for name in files):
        # compressed logs: ours became log.1.gz at its rotation (a new inode), so what follows
        # it is the current file
        return files[-1]
    return files[0]  # ours was rotated out of existence: go on with the oldest file left


def _to_ns(value: float | Decimal | None) -> int | None:
    """Unix seconds (a float, or a Decimal for exact nanoseconds) as nanoseconds; 0/None = none."""
    if not value:
        return None
    exact = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    return int(exact * 1_000_000_000)


async def _scan(
    path: str | os.PathLike[str], convert: Converter[T], tail: int | None, w: Window, follow: bool,
    stop: asyncio.Event | None, poll_interval: float,
) -> AsyncGenerator[T, None]:
    """Converted blocks of the log's files, oldest file first; see the module docstring."""
    if follow and stop is None:
        raise ValueError("read logs: follow needs a stop event")
    loop = asyncio.get_running_loop()
    pool = _executor()
    fds, starts = await loop.run_in_executor(pool, _open_all, path, tail)
    opened: list[int] = []  # files the follower moved on to
    ahead: Future[_Step[T]] | None = None  # the next block, read while this one is sent
    try:
        last = len(fds) - 1
        for i, fd in enumerate(fds):
            if fd < 0:
                continue
            offset, pending = starts[i], b""
            following = follow and i == last
            while True:
                if ahead is None:
                    ahead = pool.submit(_step, fd, offset, pending, convert, w)
                # shielded: a cancelled request must not cancel the future of a thread that
                # still reads the fd (the finally below closes the fds only once it is done)
                step = await asyncio.shield(asyncio.wrap_future(ahead))
                ahead = None
                if step.size:
                    offset += step.size
                    pending = step.pending
                    if not step.past_until:  # read on while this block goes out
                        ahead = pool.submit(_step, fd, offset, pending, convert, w)
                    if step.result:
                        yield step.result
                    if step.past_until:
                        return
                    continue
                if not following:
                    break
                assert stop is not None
                successor = _next_file(path, os.fstat(fd).st_ino)
                if successor is not None:
                    # rotated: this file is complete (read to its end above); go on in the next
                    try:
                        fd = os.open(successor, os.O_RDONLY | os.O_CLOEXEC)
                    except FileNotFoundError:
                        continue  # rotated again meanwhile: look again at once
                    opened.append(fd)
                    offset, pending = 0, b""
                    continue
                if stop.is_set():
                    # one more read after the stop: the writer appended its last records
                    # before the exit that set the event
                    following = False
                    continue
                try:
                    await asyncio.wait_for(stop.wait(), poll_interval)
                except TimeoutError:
                    pass
    finally:
        every = fds + opened
        if ahead is None:
            _close_all(every)
        else:
            # a block nobody wants any more: the fds are closed once its thread is done
            # with them (its result, or its error, is dropped with it)
            ahead.add_done_callback(lambda _f: _close_all(every))


def read_log_stream(
    path: str | os.PathLike[str], *, tty: bool, stdout: bool = True, stderr: bool = True,
    tail: int | None = None, since: float | Decimal | None = None, until: float | Decimal | None = None,
    follow: bool = False, timestamps: bool = False, stop: asyncio.Event | None = None,
    poll_interval: float = 0.05,
) -> AsyncGenerator[bytes, None]:
    """Blocks of bytes to send for ``GET /containers/{id}/logs`` (frames, or raw for a TTY);
    the parameters are :func:`read_logs`'s."""
    w = Window(_to_ns(since), _to_ns(until), timestamps)
    return _scan(path, stream_converter(tty, stdout, stderr), tail, w, follow, stop, poll_interval)


async def read_logs(
    path: str | os.PathLike[str],
    tail: int | None = None,
    since: float | Decimal | None = None,
    until: float | Decimal | None = None,
    follow: bool = False,
    timestamps: bool = False,
    stop: asyncio.Event | None = None,
    poll_interval: float = 0.05,
) -> AsyncIterator[LogRecord]:
    """Yield the records of a json-file log, its rotated files (``path.N`` ... ``path.1``) first.

    ``tail`` None or negative = all; ``since``/``until`` are Unix seconds, inclusive (a Decimal
    keeps nanoseconds exact; ``until`` ends the stream, even when following). With ``follow`` the
    reader polls for appended records every ``poll_interval`` seconds, following the file across
    rotations, until ``stop`` is set (required with ``follow``), then reads what was appended up
    to that moment and returns. A missing file yields nothing.
    """
    w = Window(_to_ns(since), _to_ns(until), timestamps)
    scan = _scan(path, _records, tail, w, follow, stop, poll_interval)
    try:
        async for batch in scan:
            for record in batch:
                yield record
    finally:
        await scan.aclose()
