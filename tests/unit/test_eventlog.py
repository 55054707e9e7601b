"""The persistent event log: batched writes, flush, time-window queries, pruning."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from berth.daemon import eventlog
from berth.daemon.eventlog import EventLog


def _event(ns: int, action: str = "start") -> dict[str, object]:
    return {"Type": "container", "Action": action, "Actor": {"ID": "x", "Attributes": {}}, "scope": "local",
            "time": ns // 1_000_000_000, "timeNano": ns}


def test_written_in_order_and_queried_by_window(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.db")
    try:
        base = time.time_ns()
        for i in range(1000):
            log.append(_event(base + i, f"a{i}"))
        asyncio.run(log.flush())
        got = log.query(base + 10, base + 19)
        assert [e["Action"] for e in got] == [f"a{i}" for i in range(10, 20)]
        assert len(log.query(base, None)) == 1000
        assert json.dumps(got[0], separators=(",", ":")).startswith('{"Type":"container"')
    finally:
        log.close()
    again = EventLog(tmp_path / "events.db")  # across a restart
    try:
        assert len(again.query(0, None)) == 1000
    finally:
        again.close()


def test_pruned_by_age_and_count(tmp_path: Path, monkeypatch: object) -> None:
    log = EventLog(tmp_path / "events.db")
    try:
        old = time.time_ns() - (eventlog.KEEP_DAYS + 1) * 86400 * 1_000_000_000
        log.append(_event(old, "ancient"))
        now = time.time_ns()
        for i in range(30):
            log.append(_event(now + i))
        asyncio.run(log.flush())
        eventlog.KEEP_EVENTS, saved = 20, eventlog.KEEP_EVENTS
        try:
            log.prune()
        finally:
            eventlog.KEEP_EVENTS = saved
        kept = log.query(0, None)
        assert len(kept) == 20 and all(e["Action"] == "start" for e in kept)
        assert kept[-1]["timeNano"] == now + 29
    finally:
        log.close()
