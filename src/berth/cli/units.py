"""Human-readable sizes and durations, as docker's ``go-units`` prints them.

>>> human_size(4260000), human_size(0), human_size(999900)
('4.26MB', '0B', '1e+03kB')
>>> human_duration(1), human_duration(75), human_duration(3600 * 30)
('1 second', 'About a minute', '30 hours')
>>> bytes_size("512m"), bytes_size("1g")
(536870912, 1073741824)
"""

from __future__ import annotations

import time

from berth.errors import InvalidParameter
from berth.humanize import human_duration  # noqa: F401  (re-exported for the commands)

_DECIMAL = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_size(size: float, precision: int = 3) -> str:
    """units.HumanSizeWithPrecision: decimal (1000) units, ``%.{precision}g``."""
    size = float(size)
    i = 0
    while size >= 1000 and i < len(_DECIMAL) - 1:
        size /= 1000
        i += 1
    return f"{size:.{precision}g}{_DECIMAL[i]}"


def since(timestamp: float, now: float | None = None) -> str:
    """``2 minutes ago`` for a Unix time."""
    now = time.time() if now is None else now
    return human_duration(now - timestamp) + " ago"


def go_time_string(timestamp: float) -> str:
    """Go's time.Time.String() in local time: ``2026-11-28 04:32:27 +0000 UTC``."""
    tm = time.localtime(timestamp)
    off = tm.tm_gmtoff or 0
    sign = "+" if off >= 0 else "-"
    off = abs(off)
    return (
        time.strftime("%Y-%m-%d %H:%M:%S", tm)
        + f" {sign}{off // 3600:02d}{off % 3600 // 60:02d} {tm.tm_zone}"
    )


_BINARY = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}


def bytes_size(text: str) -> int:
    """units.RAMInBytes: ``512m``, ``1g``, ``1.5GiB``, ``100`` (binary multiples)."""
    s = text.strip().lower()
    num = s.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = s[len(num) :]
    if unit.endswith("ib"):
        unit = unit[:-2]
    elif unit.endswith("b") and len(unit) == 2:
        unit = unit[:-1]
    try:
        value = float(num)
    except ValueError:
        raise InvalidParameter(f"invalid size: '{text}'") from None
    if unit not in _BINARY and unit != "":
        raise InvalidParameter(f"invalid suffix: '{unit}'")
    return int(value * _BINARY.get(unit, 1))


def format_duration_ms(ms: float | None) -> str:
    """A job's duration: ``-`` while running, ``850µs``, ``12.3ms``, ``1.52s``, ``2m3s``."""
    if ms is None:
        return "-"
    if ms < 1:
        return f"{ms * 1000:.0f}µs"
    if ms < 1000:
        return f"{ms:.3g}ms" if ms < 100 else f"{ms:.0f}ms"
    secs = ms / 1000
    if secs < 60:
        return f"{secs:.3g}s"
    minutes, rest = divmod(int(secs), 60)
    if minutes < 60:
        return f"{minutes}m{rest}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m{rest}s"
