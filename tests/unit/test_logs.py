"""The json-file log: Docker's line format, partial lines, and the reader's tail/since/until/follow."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

from berth.container.logreader import LogRecord, read_logs
from berth.container.logs import (
    PARTIAL_MAX,
    LogWriter,
    encode_record,
    format_time,
    parse_time,
)


def read_records(path: Path, **kw: object) -> list[LogRecord]:
    async def collect() -> list[LogRecord]:
        return [r async for r in read_logs(path, **kw)]  # type: ignore[arg-type]

    return asyncio.run(collect())


def test_time_format_is_rfc3339_with_nine_digits() -> None:
    assert format_time(1_795_840_368_000_000_007) == "2026-11-28T04:32:48.000000007Z"
    assert parse_time("2026-11-28T04:32:48.566437740Z") == 1_795_840_368_566_437_740
    assert parse_time("2026-11-28T04:32:48.5Z") == 1_795_840_368_500_000_000
    assert parse_time("2026-11-28T04:32:48Z") == 1_795_840_368_000_000_000
    assert parse_time("2026-11-28T05:32:48.1+01:00") == 1_795_840_368_100_000_000


def test_record_is_byte_compatible_with_docker() -> None:
    line = encode_record("stdout", "hi <b> & é\n".encode(), 1_795_840_368_566_437_740)
    assert line == (
        b'{"log":"hi \\u003cb\\u003e \\u0026 \xc3\xa9\\n","stream":"stdout",'
        b'"time":"2026-11-28T04:32:48.566437740Z"}\n'
    )
    bad = encode_record("stderr", b"\xff\x01", 0)
    assert json.loads(bad)["log"] == "\ufffd\x01"


def test_writer_cuts_at_newlines_and_holds_partials(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    w = LogWriter(str(path))
    w.write(1, b"one\ntw")
    w.write(2, b"err\n")
    w.write(1, b"o\nthree")
    assert [json.loads(x)["log"] for x in path.read_text().splitlines()] == ["one\n", "err\n", "two\n"]
    w.close()  # flushes the open line without a newline
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [(r["stream"], r["log"]) for r in lines] == [
        ("stdout", "one\n"),
        ("stderr", "err\n"),
        ("stdout", "two\n"),
        ("stdout", "three"),
    ]


def test_writer_splits_long_lines_at_16k(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    w = LogWriter(str(path))
    w.write(1, b"a" * (PARTIAL_MAX + 10))  # no newline yet: one 16 KiB partial record now
    assert [len(json.loads(x)["log"]) for x in path.read_text().splitlines()] == [PARTIAL_MAX]
    w.write(1, b"b" * (2 * PARTIAL_MAX) + b"\n")
    logs = [json.loads(x)["log"] for x in path.read_text().splitlines()]
    assert [len(x) for x in logs] == [PARTIAL_MAX, PARTIAL_MAX, PARTIAL_MAX, 11]
    assert "".join(logs) == "a" * (PARTIAL_MAX + 10) + "b" * (2 * PARTIAL_MAX) + "\n"
    w.close()


def write_log(path: Path, entries: list[tuple[str, str, int]]) -> None:
    path.write_bytes(b"".join(encode_record(s, d.encode(), ns) for s, d, ns in entries))


BASE = 1_795_840_368_000_000_000


def test_reader_all_tail_since_until_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    write_log(
        path,
        [("stdout", f"line {i}\n", BASE + i * 1_000_000_000) for i in range(10)]
        + [("stderr", "oops\n", BASE + 10_000_000_000)],
    )
    recs = read_records(path)
    assert len(recs) == 11 and recs[0] == LogRecord(1, b"line 0\n", BASE) and recs[-1].stream == 2
    assert [r.data for r in read_records(path, tail=2)] == [b"line 9\n", b"oops\n"]
    assert read_records(path, tail=0) == []
    assert len(read_records(path, tail=100)) == 11
    assert [r.data for r in read_records(path, since=(BASE + 8_000_000_000) / 1e9)] == [
        b"line 8\n",
        b"line 9\n",
        b"oops\n",
    ]
    assert [r.data for r in read_records(path, until=(BASE + 1_000_000_000) / 1e9)] == [
        b"line 0\n",
        b"line 1\n",
    ]
    assert [r.data for r in read_records(path, tail=3, since=(BASE + 9_500_000_000) / 1e9)] == [b"oops\n"]
    stamped = read_records(path, tail=1, timestamps=True)
    assert stamped[0].data == b"2026-11-28T04:32:58.000000000Z oops\n"


def test_reader_tail_across_blocks_and_damaged_lines(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    write_log(path, [("stdout", "x" * 1000 + f"{i}\n", BASE + i) for i in range(300)])
    with path.open("ab") as f:
        f.write(b"not json\n")
    recs = read_records(path, tail=101)
    assert len(recs) == 100 and recs[0].data.endswith(b"200\n")  # the damaged line counts as a line


def test_reader_missing_file_yields_nothing(tmp_path: Path) -> None:
    assert read_records(tmp_path / "nope.log") == []


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def test_reader_follows_until_stopped(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    w = LogWriter(str(path))
    w.write(1, b"before\n")

    async def scenario() -> list[bytes]:
        stop = asyncio.Event()
        got: list[bytes] = []

        async def consume() -> None:
            async for rec in read_logs(path, follow=True, stop=stop, poll_interval=0.01):
                got.append(rec.data)

        task = asyncio.create_task(consume())
        await until(lambda: got == [b"before\n"])
        w.write(1, b"after\npart")  # the writer holds the open line back until it is complete
        await until(lambda: got == [b"before\n", b"after\n"])
        w.write(1, b"ial\n")
        w.write(2, b"last\n")
        stop.set()  # what was appended before the stop is still delivered
        await asyncio.wait_for(task, 5)
        return got

    t0 = time.monotonic()
    assert asyncio.run(scenario()) == [b"before\n", b"after\n", b"partial\n", b"last\n"]
    assert time.monotonic() - t0 < 5
    w.close()


def test_since_until_as_decimal_are_exact(tmp_path: Path) -> None:
    from decimal import Decimal

    path = tmp_path / "c-json.log"
    write_log(path, [("stdout", "a\n", BASE + 1), ("stdout", "b\n", BASE + 2), ("stdout", "c\n", BASE + 3)])
    exact = Decimal("1795840368.000000002")
    assert [r.data for r in read_records(path, since=exact)] == [b"b\n", b"c\n"]
    assert [r.data for r in read_records(path, until=exact)] == [b"a\n", b"b\n"]


def test_writer_rotates_at_max_size_and_keeps_max_files(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    record = len(encode_record("stdout", b"line 00\n", BASE))
    w = LogWriter(str(path), max_size=3 * record, max_files=3)
    for i in range(10):
        w.write(1, f"line {i:02d}\n".encode())
    w.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    assert all(p.stat().st_size <= 3 * record for p in tmp_path.iterdir())
    # 10 written into at most 3 files of 3 records: the oldest 3 were rotated away
    assert [r.data for r in read_records(path)] == [f"line {i:02d}\n".encode() for i in range(3, 10)]
    assert [r.data for r in read_records(path, tail=5)] == [f"line {i:02d}\n".encode() for i in range(5, 10)]
    assert [r.data for r in read_records(path, tail=100)][0] == b"line 03\n"


def test_writer_with_one_file_truncates(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    record = len(encode_record("stdout", b"x\n", BASE))
    w = LogWriter(str(path), max_size=2 * record, max_files=1)
    for _ in range(5):
        w.write(1, b"x\n")
    w.close()
    assert [p.name for p in tmp_path.iterdir()] == ["c-json.log"]
    assert len(read_records(path)) == 1


def test_follow_across_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    record = len(encode_record("stdout", b"n 0\n", BASE))
    w = LogWriter(str(path), max_size=2 * record, max_files=4)

    async def scenario() -> list[bytes]:
        stop = asyncio.Event()
        got: list[bytes] = []

        async def consume() -> None:
            async for rec in read_logs(path, follow=True, stop=stop, poll_interval=0.01):
                got.append(rec.data)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.02)
        for i in range(6):  # rotates twice, the first two quickly: the reader must not skip a file
            w.write(1, f"n {i}\n".encode())
            if i >= 4:
                await asyncio.sleep(0.03)
        await until(lambda: len(got) == 6)
        stop.set()
        await asyncio.wait_for(task, 5)
        return got

    assert asyncio.run(scenario()) == [f"n {i}\n".encode() for i in range(6)]
    w.close()


def test_log_options_like_dockerd() -> None:
    import pytest

    from berth.container.logs import log_options
    from berth.errors import InvalidParameter

    assert log_options({}) == (0, 1)
    assert log_options({"max-size": "10m", "max-file": "3"}) == (10 << 20, 3)
    assert log_options({"max-size": "512k"}) == (512 << 10, 1)
    assert log_options({"max-size": "1.5g", "tag": "x"}) == (int(1.5 * (1 << 30)), 1)
    assert log_options({"max-size": "2048"}) == (2048, 1)
    with pytest.raises(InvalidParameter, match="unknown log opt 'nope'"):
        log_options({"nope": "1"})
    with pytest.raises(InvalidParameter, match="invalid size"):
        log_options({"max-size": "ten"})
    assert log_options({"max-file": "3"}) == (0, 3)  # dockerd takes it; nothing rotates without max-size
    with pytest.raises(InvalidParameter, match="less than 1"):
        log_options({"max-size": "1m", "max-file": "0"})
    from berth.container.logs import log_settings

    assert log_settings("local", {}) == log_settings("local", {"max-size": "20m", "max-file": "5", "compress": "1"})
    assert log_settings("local", {"compress": "false"}).compress is False
    with pytest.raises(InvalidParameter, match="unknown log opt 'tag' for log driver local"):
        log_settings("local", {"tag": "x"})
    with pytest.raises(InvalidParameter, match='strconv.ParseBool: parsing "maybe"'):
        log_settings("json-file", {"compress": "maybe"})
    with pytest.raises(InvalidParameter, match="compress cannot be true"):
        log_settings("json-file", {"compress": "true", "max-size": "1m"})


def test_one_big_write_is_split_across_rotated_files(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    record = len(encode_record("stdout", b"line 00\n", BASE))
    w = LogWriter(str(path), max_size=4 * record, max_files=5)
    w.write(1, b"".join(f"line {i:02d}\n".encode() for i in range(12)))  # one read, 12 lines
    w.close()
    sizes = sorted(p.stat().st_size for p in tmp_path.iterdir())
    assert sizes == [4 * record] * 3
    assert [r.data for r in read_records(path)] == [f"line {i:02d}\n".encode() for i in range(12)]
    big = tmp_path / "big-json.log"
    w = LogWriter(str(big), max_size=10, max_files=2)  # a record larger than max-size still goes out whole
    w.write(1, b"a line longer than ten bytes\n")
    w.close()
    assert [r.data for r in read_records(big)] == [b"a line longer than ten bytes\n"]


def _reference_frames(path: Path, tty: bool = False, timestamps: bool = False) -> bytes:
    """What the stream must be, computed the slow, obvious way (json.loads per line)."""
    import struct

    out = b""
    for line in path.read_bytes().splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        data = obj["log"].encode()
        if timestamps:
            data = format_time(parse_time(obj["time"])).encode() + b" " + data
        stream = 2 if obj["stream"] == "stderr" else 1
        out += data if tty else struct.pack(">BxxxI", stream, len(data)) + data
    return out


def read_stream(path: Path, **kw: object) -> bytes:
    from berth.container.logreader import read_log_stream

    async def collect() -> bytes:
        return b"".join([b async for b in read_log_stream(path, **kw)])  # type: ignore[arg-type]

    return asyncio.run(collect())


def test_stream_fast_path_matches_a_full_json_decode(tmp_path: Path, monkeypatch: object) -> None:
    """Escapes, quotes, non-ASCII, partial lines, 16 KiB cuts, damaged and foreign lines, and
    blocks smaller than a line: the frames equal a per-line json.loads."""
    import random

    from berth.container import logreader

    rng = random.Random(5)
    alphabet = ['a', ' ', '"', '\\', '\t', '<', '&', 'é', '\u2028', '\x01', '","stream":"', 'ž']
    path = tmp_path / "c-json.log"
    w = LogWriter(str(path))
    for i in range(400):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        w.write(1 + i % 2, (text + ("\n" if i % 7 else "")).encode())
        if i == 200:
            w.write(1, b"y" * (PARTIAL_MAX + 10) + b"\n")
    w.close()
    with path.open("ab") as f:
        f.write(b"damaged {\n")
        f.write(b'{"stream":"stderr","log":"other order\\n","attrs":{"a":"b"},"time":"2026-11-28T05:32:48.5+01:00"}\n')
    monkeypatch.setattr(logreader, "BLOCK", 333)  # type: ignore[attr-defined]
    for tty in (False, True):
        assert read_stream(path, tty=tty) == _reference_frames(path, tty=tty)
    assert read_stream(path, tty=False, timestamps=True) == _reference_frames(path, timestamps=True)
    only_err = read_stream(path, tty=False, stdout=False)
    assert only_err and all(only_err[i] == 2 for i in _frame_starts(only_err))


def _frame_starts(data: bytes) -> list[int]:
    import struct

    starts, i = [], 0
    while i < len(data):
        starts.append(i)
        i += 8 + struct.unpack(">I", data[i + 4 : i + 8])[0]
    return starts


def test_stream_tail_since_until(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    write_log(path, [("stdout", f"n{i}\n", BASE + i * 1_000_000_000) for i in range(10)])
    assert read_stream(path, tty=True, tail=2) == b"n8\nn9\n"
    assert read_stream(path, tty=True, since=(BASE + 7_000_000_000) / 1e9, until=(BASE + 8_000_000_000) / 1e9) == b"n7\nn8\n"
    assert read_stream(path, tty=True, tail=0) == b""
