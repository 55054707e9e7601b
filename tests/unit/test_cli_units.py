"""Sizes, durations and --since/--until parsing as docker computes them."""

from __future__ import annotations

import pytest

from berth.cli.timespec import get_timestamp, parse_go_duration, parse_rfc3339
from berth.cli.units import bytes_size, format_duration_ms, human_duration, human_size
from berth.errors import InvalidParameter


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (999, "999B"),
        (1000, "1kB"),
        (1982354, "1.98MB"),
        (4260000, "4.26MB"),
        (12_000_000, "12MB"),
        (123_456_789_012, "123GB"),
    ],
)
def test_human_size(size, text):
    assert human_size(size) == text


@pytest.mark.parametrize(
    ("secs", "text"),
    [
        (0.3, "Less than a second"),
        (1, "1 second"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (3599, "59 minutes"),
        (3600, "About an hour"),
        (2 * 3600, "2 hours"),
        (47 * 3600, "47 hours"),
        (3 * 86400, "3 days"),
        (15 * 86400, "2 weeks"),
        (70 * 86400, "2 months"),
        (800 * 86400, "2 years"),
    ],
)
def test_human_duration(secs, text):
    assert human_duration(secs) == text


def test_bytes_size_binary_units():
    assert bytes_size("512m") == 512 * 1024**2
    assert bytes_size("1g") == 1024**3
    assert bytes_size("1.5GiB") == int(1.5 * 1024**3)
    assert bytes_size("100") == 100
    with pytest.raises(InvalidParameter):
        bytes_size("12q")


def test_go_durations():
    assert parse_go_duration("10s") == 10
    assert parse_go_duration("1h30m") == 5400
    assert parse_go_duration("1.5h") == 5400
    assert parse_go_duration("300ms") == pytest.approx(0.3)
    assert parse_go_duration("-2m") == -120
    for bad in ("10", "s", "1x", ""):
        with pytest.raises(ValueError):
            parse_go_duration(bad)


def test_timestamps_relative_rfc3339_and_unix():
    assert get_timestamp("10s", now=1000.0) == "990"
    assert get_timestamp("5m", now=1000.5) == "700"
    assert get_timestamp("2026-11-28T04:32:48.566437740Z") == "1795840368.566437740"
    assert get_timestamp("2026-11-28T05:32:48+01:00") == "1795840368.000000000"
    assert get_timestamp("1795840368") == "1795840368"
    assert get_timestamp("1795840368.5") == "1795840368.5"
    assert get_timestamp("0") == "0"
    with pytest.raises(InvalidParameter, match='failed to parse value as time or duration: "yesterday"'):
        get_timestamp("yesterday")


def test_rfc3339_date_only_is_local_midnight():
    import time

    ns = parse_rfc3339("2026-11-28")
    assert time.localtime(ns // 10**9)[:6] == (2026, 11, 28, 0, 0, 0)


def test_job_durations():
    assert format_duration_ms(0.5) == "500µs"
    assert format_duration_ms(12.34) == "12.3ms"
    assert format_duration_ms(1520) == "1.52s"
    assert format_duration_ms(123_000) == "2m3s"
