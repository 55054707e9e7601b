"""The json-file log: one JSON object per line of container output, as Docker writes it.

The monitor owns a :class:`LogWriter`; the daemon reads with
:mod:`berth.container.logreader`::

    {"log":"hi\\n","stream":"stdout","time":"2026-11-28T04:32:48.566437740Z"}

Model (moby's ``jsonfilelog``): output is cut at newlines; each complete line is one record
whose ``log`` keeps its ``\\n``. A line still open is held per stream and written without a
newline once it exceeds 16 KiB (a "partial" record, the rest follows in later records) or when
the writer is closed at container exit. ``time`` is RFC3339 with exactly nine fraction digits,
UTC. JSON is encoded like Go's ``encoding/json``: non-ASCII stays UTF-8, ``< > &`` and U+2028/9
are escaped, invalid UTF-8 becomes U+FFFD. A TTY container logs its raw pty bytes as stdout.

Reading (tail, since/until, follow) is :mod:`berth.container.logreader`.
"""

from __future__ import annotations

import gzip
import os
import shutil
import sys
import time
from dataclasses import dataclass
from json.encoder import encode_basestring

PARTIAL_MAX = 16 * 1024
WRITE_CHUNK = 16 * 1024  # records are written in batches of about this size  # moby's bufio line reader flushes a line this long as a partial record
STREAM_NAMES = {1: "stdout", 2: "stderr"}
_GO_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


_JSON_FILE_OPTS = {"max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag"}
_LOCAL_OPTS = {"max-size", "max-file", "compress"}
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
# the local driver's defaults (dockerd's): 20 MiB files, 5 of them, the rotated ones gzipped
LOCAL_DEFAULTS = {"max-size": "20m", "max-file": "5", "compress": "true"}
_GO_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_GO_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


@dataclass(frozen=True)
class LogSettings:
    """How the monitor writes a container's log: rotate past ``max_size`` bytes (0: never),
    keep ``max_files`` files, gzip the rotated ones with ``compress``."""

    max_size: int = 0
    max_files: int = 1
    compress: bool = False


def log_settings(driver: str, config: dict[str, str]) -> LogSettings:
    """The writer's settings from a driver's ``--log-opt`` values, checked with dockerd's texts.

    json-file: ``max-size`` (Docker's RAMInBytes: ``10m``, ``512k``), ``max-file`` (needs
    ``max-size`` to matter), ``compress`` (needs both, and at least 2 files); labels/env/tag are accepted
    and shape nothing here. local: the same three, defaulting to :data:`LOCAL_DEFAULTS`.

        >>> log_settings("json-file", {"max-size": "10m", "max-file": "3", "compress": "true"})
        LogSettings(max_size=10485760, max_files=3, compress=True)
    """
    from berth.errors import InvalidParameter

    allowed = _LOCAL_OPTS if driver == "local" else _JSON_FILE_OPTS
    for key in config:
        if key not in allowed:
            # dockerd's two texts
            raise InvalidParameter(f"unknown log opt '{key}' for json-file log driver" if driver == "json-file"
                                   else f"unknown log opt '{key}' for log driver {driver}")
    if driver == "local":
        config = {**LOCAL_DEFAULTS, **config}
    init = "failed to initialize logging driver: "  # dockerd finds these when it starts the container
    max_size = 0
    if config.get("max-size"):
        text = config["max-size"].strip().lower().removesuffix("ib").removesuffix("b")
        number, unit = text.rstrip("bkmgt"), text[len(text.rstrip("bkmgt")):]
        try:
            max_size = int(float(number) * _UNITS[unit])
        except (ValueError, KeyError):
            raise InvalidParameter(f"{init}invalid size: '{config['max-size']}'") from None
        if max_size <= 0:
            raise InvalidParameter(f"{init}invalid size: '{config['max-size']}'")
    max_files = 1
    if config.get("max-file"):
        try:
            max_files = int(config["max-file"])
        except ValueError:
            raise InvalidParameter(f'{init}strconv.Atoi: parsing "{config["max-file"]}": invalid syntax') from None
        if max_files < 1:
            raise InvalidParameter(f"{init}max-file cannot be less than 1")
        # without max-size nothing rotates, and max-file changes nothing (dockerd takes it so)
    compress = False
    if config.get("compress"):
        value = config["compress"]
        if value not in _GO_TRUE | _GO_FALSE:
            raise InvalidParameter(f'{init}strconv.ParseBool: parsing "{value}": invalid syntax')
        compress = value in _GO_TRUE
        if compress and (max_files < 2 or not max_size):
            raise InvalidParameter(f"{init}compress cannot be true when max-file is less than 2 or max-size is not set")
    return LogSettings(max_size, max_files, compress)


def log_options(config: dict[str, str]) -> tuple[int, int]:
    """``(max_size, max_files)`` of json-file's ``--log-opt`` values (:func:`log_settings`).

        >>> log_options({"max-size": "10m", "max-file": "3"})
        (10485760, 3)
    """
    settings = log_settings("json-file", config)
    return settings.max_size, settings.max_files


def format_time(ns: int) -> str:
    """RFC3339 with nine fraction digits in UTC (Docker's ``RFC3339NanoFixed``)."""
    sec, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:09d}Z"


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch from an RFC3339(Nano) UTC or offset timestamp."""
    import calendar

    head, _, rest = text.partition(".")
    if not rest:  # no fraction: the zone follows the seconds directly
        head, zone = text[:19], text[19:]
        frac = ""
    else:
        digits = 0
        while digits < len(rest) and rest[digits].isdigit():
            digits += 1
        frac, zone = rest[:digits], rest[digits:]
    try:
        base = calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S"))
    except ValueError as exc:
        raise ValueError(f"parse time {text!r}: {exc}") from exc
    ns = base * 1_000_000_000 + int((frac + "000000000")[:9] or "0")
    if zone not in ("Z", "z", ""):
        sign = 1 if zone[0] == "+" else -1
        hours, _, minutes = zone[1:].partition(":")
        ns -= sign * (int(hours) * 3600 + int(minutes or 0) * 60) * 1_000_000_000
    return ns


def encode_record(stream: str, data: bytes, ns: int) -> bytes:
    """One log line (with its trailing newline) the way Docker's json-file driver writes it."""
    text = encode_basestring(data.decode("utf-8", "replace"))  # json.dumps(ensure_ascii=False) for a str
    for raw, esc in _GO_ESCAPES:
        if raw in text:
            text = text.replace(raw, esc)
    return b'{"log":' + text.encode() + b',"stream":"' + stream.encode() + b'","time":"' + format_time(ns).encode() + b'"}\n'


class LogWriter:
    """Appends container output to a json-file log; used by the monitor (no asyncio).

    ``max_size`` (bytes, 0 = unbounded) and ``max_files`` are json-file's ``max-size`` and
    ``max-file``: before a write would take the file past ``max_size`` it is rotated
    (``log.1`` -> ``log.2`` ..., ``log`` -> ``log.1``, at most ``max_files`` files in all;
    with ``max_files`` 1 the file is emptied instead).
    """

    __slots__ = ("_fd", "_partial", "path", "max_size", "max_files", "compress", "_size", "_torn", "_dropping")

    def __init__(self, path: str, max_size: int = 0, max_files: int = 1, compress: bool = False) -> None:
        self.path = path
        self.max_size = max_size
        self.max_files = max(1, max_files)
        self.compress = compress and self.max_files > 1
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._size = os.fstat(self._fd).st_size
        self._partial: dict[int, bytes] = {1: b"", 2: b""}
        self._torn = False  # a write failed midway through a record
        self._dropping = False  # writes are failing (a full disk)

    def write(self, stream: int, data: bytes) -> None:
        """Log ``data`` read from stream 1 (stdout) or 2 (stderr)."""
        name = STREAM_NAMES[stream]
        buf = self._partial[stream] + data
        ns = time.time_ns()
        # records go straight into one buffer: each record's temporaries are freed before the
        # next is made, so a burst of short lines reuses a few blocks (the monitor's memory)
        out = bytearray()
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            # a complete line longer than the partial limit is cut the same way an open one is
            while nl + 1 - start > PARTIAL_MAX:
                out += encode_record(name, buf[start : start + PARTIAL_MAX], ns)
                start += PARTIAL_MAX
            out += encode_record(name, buf[start : nl + 1], ns)
            start = nl + 1
            if len(out) >= WRITE_CHUNK:  # bounded: a big buffer would grow the monitor's heap
                self._append(out)
                out = bytearray()
        while len(buf) - start >= PARTIAL_MAX:
            out += encode_record(name, buf[start : start + PARTIAL_MAX], ns)
            start += PARTIAL_MAX
        self._partial[stream] = buf[start:]
        if out:
            self._append(out)

    def flush_partial(self) -> None:
        """Write the lines still open as records without a newline (at container exit)."""
        ns = time.time_ns()
        out = bytearray()
        for s, d in self._partial.items():
            if d:
                out += encode_record(STREAM_NAMES[s], d, ns)
        self._partial = {1: b"", 2: b""}
        if out:
            self._append(out)

    def close(self) -> None:
        self.flush_partial()
        os.close(self._fd)

    def _append(self, records: bytearray) -> None:
        """Write whole records; with ``max_size``, rotate first when this batch would pass it."""
        if self.max_size and self._size + len(records) > self.max_size:
            # split at record boundaries so that each file stays below max_size
            start = 0
            while start < len(records):
                room = self.max_size - self._size
                end = records.rfind(b"\n", start, start + room) + 1 if room > 0 else 0
                if end <= start:
                    if self._size:
                        self._rotate()
                        continue
                    end = records.index(b"\n", start) + 1  # one record larger than max_size
                self._write_all(records[start:end])
                start = end
            return
        self._write_all(records)

    def _write_all(self, data: bytes | bytearray) -> None:
        view = memoryview(data)
        try:
            if self._torn:
                os.write(self._fd, b"\n")  # end the record a failed write cut short
                self._size += 1
                self._torn = False
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
                self._size += n
        except OSError as exc:
            # A full disk (or a failing one) must not stop the container: like dockerd's
            # json-file, drop what cannot be written and say so once per outage (monitor.log).
            if len(view) < len(data):
                self._torn = True  # (if the newline above failed, it is still owed)
            if not self._dropping:
                print(f"monitor: write log {self.path}: {exc.strerror}; dropping output", file=sys.stderr)
            self._dropping = True
            return
        if self._dropping:
            print(f"monitor: write log {self.path}: writing again", file=sys.stderr)
            self._dropping = False

    def _rotate(self) -> None:
        os.close(self._fd)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        if self.max_files > 1:
            suffix = ".gz" if self.compress else ""
            for i in range(self.max_files - 1, 1, -1):
                try:
                    os.rename(f"{self.path}.{i - 1}{suffix}", f"{self.path}.{i}{suffix}")
                except FileNotFoundError:
                    pass  # fewer rotated files than allowed so far
            os.rename(self.path, f"{self.path}.1")
            if self.compress:
                _gzip_file(f"{self.path}.1")
        else:
            flags |= os.O_TRUNC
        self._fd = os.open(self.path, flags, 0o640)
        self._size = 0


def _gzip_file(path: str) -> None:
    """``path`` -> ``path.gz`` (level 1: the monitor waits for it), then ``path`` goes. A file
    that cannot be compressed (a full disk) stays as it is: the reader takes both forms."""
    tmp = f"{path}.gz.tmp"
    try:
        with open(path, "rb") as src, gzip.open(tmp, "wb", compresslevel=1) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.chmod(tmp, 0o640)
        os.rename(tmp, f"{path}.gz")
    except OSError as exc:
        print(f"monitor: compress log {path}: {exc.strerror}; kept uncompressed", file=sys.stderr)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        return
    os.unlink(path)
