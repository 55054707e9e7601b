"""``--since``/``--until`` values the way docker's ``timetypes.GetTimestamp`` reads them.

A Go duration (``10s``, ``5m``, ``1h30m``, ``1.5h``, ``300ms``) means that long before now and
becomes whole Unix seconds; an RFC3339 time (with or without fraction and zone; a date alone;
no zone means local time) becomes ``"<seconds>.<nanoseconds:09>"``; a Unix timestamp
(``1795840368`` or ``1795840368.123``) passes through unchanged, as docker sends them.

    >>> get_timestamp("10s", now=1000.5)
    '990'
    >>> get_timestamp("2026-11-28T04:32:48.5Z", now=0)
    '1795840368.500000000'
"""

from __future__ import annotations

import math
import time

from berth.errors import InvalidParameter

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> float:
    """Go's time.ParseDuration, in seconds; ValueError when it is not one."""
    s = text
    if s in ("0", "+0", "-0"):
        return 0.0
    neg = s.startswith("-")
    s = s.lstrip("+-")
    if not s:
        raise ValueError(text)
    total = 0.0
    while s:
        i = 0
        while i < len(s) and (s[i].isdigit() or s[i] == "."):
            i += 1
        if i == 0:
            raise ValueError(text)
        number = float(s[:i])
        j = i
        while j < len(s) and not (s[j].isdigit() or s[j] == "."):
            j += 1
        unit = s[i:j]
        if unit not in _UNITS:
            raise ValueError(text)
        total += number * _UNITS[unit]
        s = s[j:]
    return -total if neg else total


def _split_ns(seconds_ns: int) -> str:
    secs, ns = divmod(seconds_ns, 1_000_000_000)
    return f"{secs}.{ns:09d}"


def parse_rfc3339(text: str) -> int:
    """RFC3339 (and the shorter layouts docker accepts) -> Unix nanoseconds."""
    import calendar

    s = text.strip()
    date, sep, clock = s.partition("T")
    if not sep:
        date, sep, clock = s.partition(" ")
    try:
        year, month, day = (int(p) for p in date.split("-"))
    except ValueError:
        raise ValueError(text) from None
    offset: int | None = None
    frac_ns = 0
    hh = mm = ss = 0
    if clock:
        zone = ""
        if clock.endswith(("Z", "z")):
            zone, clock = "Z", clock[:-1]
        else:
            for k in range(len(clock) - 1, 0, -1):
                if clock[k] in "+-":
                    zone, clock = clock[k:], clock[:k]
                    break
        if zone == "Z":
            offset = 0
        elif zone:
            zh, _, zm = zone[1:].partition(":")
            if len(zh) == 4 and not zm:
                zh, zm = zh[:2], zh[2:]
            offset = (int(zh) * 3600 + int(zm or 0) * 60) * (1 if zone[0] == "+" else -1)
        main, _, frac = clock.partition(".")
        parts = main.split(":")
        if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
            raise ValueError(text)
        hh = int(parts[0])
        mm = int(parts[1]) if len(parts) > 1 else 0
        ss = int(parts[2]) if len(parts) > 2 else 0
        if frac:
            if not frac.isdigit():
                raise ValueError(text)
            frac_ns = int(frac[:9].ljust(9, "0"))
    fields = (year, month, day, hh, mm, ss)
    if offset is None:
        secs = int(time.mktime((*fields, 0, 0, -1)))
    else:
        secs = calendar.timegm((*fields, 0, 0, 0)) - offset
    return secs * 1_000_000_000 + frac_ns


def get_timestamp(value: str, now: float | None = None) -> str:
    """timetypes.GetTimestamp(value, now): a duration gives whole Unix seconds, an RFC3339
    time ``sec.nanos``, a Unix timestamp passes through unchanged; else InvalidParameter."""
    if not value:
        return value
    now = time.time() if now is None else now
    if value != "0":
        try:
            delta = parse_go_duration(value)
        except ValueError:
            pass
        else:
            return str(math.floor(now - delta))
    if "-" in value[1:]:
        try:
            return _split_ns(parse_rfc3339(value))
        except ValueError:
            raise InvalidParameter(f'parsing time "{value}": not an RFC3339 time') from None
    secs, dot, frac = value.partition(".")
    if secs.lstrip("-").isdigit() and (not dot or frac.isdigit()):
        return value
    raise InvalidParameter(f'failed to parse value as time or duration: "{value}"')
