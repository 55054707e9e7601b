"""Image list filters: parsing the two wire forms and matching like Docker.

The model: ``filters`` arrives as ``{"key": ["v", ...]}`` (docker-py, and what ``berth.api``
passes on) or ``{"key": {"v": true}}`` (the docker CLI); both normalise to ``key -> [values]``.
Different keys AND together; values under one key OR, except ``label`` whose values all must
match. ``reference`` patterns use Go's ``path.Match`` (``*`` never crosses ``/``)::

    >>> path_match("spy*", "spybuild:1"), path_match("*", "127.0.0.1:5000/bbx")
    (True, False)
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from berth.errors import InvalidParameter

IMAGE_FILTERS = ("before", "dangling", "label", "reference", "since")


def normalise(
    filters: dict[str, Any] | None, allowed: tuple[str, ...] = IMAGE_FILTERS
) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in (filters or {}).items():
        if key not in allowed:
            raise InvalidParameter(f"Invalid filter '{key}'")  # dockerd's text
        if isinstance(value, dict):
            out[key] = [k for k, enabled in value.items() if enabled]
        elif isinstance(value, str):
            out[key] = [value]
        else:
            out[key] = [str(v) for v in value]
    return out


def dangling_value(values: list[str]) -> bool | None:
    """The ``dangling`` filter as a bool (None when absent)."""
    if not values:
        return None
    result = None
    for value in values:
        lowered = value.lower()
        if lowered not in ("true", "false", "1", "0"):
            raise InvalidParameter(f"Invalid filter 'dangling={value}'")
        result = lowered in ("true", "1")
    return result


def labels_match(patterns: list[str], labels: dict[str, str] | None) -> bool:
    """Every ``key`` or ``key=value`` pattern matches ``labels`` (Docker's ``MatchKVList``)."""
    labels = labels or {}
    for pattern in patterns:
        key, sep, value = pattern.partition("=")
        if key not in labels:
            return False
        if sep and labels[key] != value:
            return False
    return True


@lru_cache(maxsize=256)
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif char == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("^", "!") else i + 1)
            if end < 0:
                raise InvalidParameter(f"invalid reference filter {pattern!r}: syntax error in pattern")
            body = pattern[i + 1 : end]
            negate = body[:1] in ("^", "!")
            body = body[1:] if negate else body
            out.append("[" + ("^/" if negate else "") + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("^" + "".join(out) + "$", re.DOTALL)


def path_match(pattern: str, name: str) -> bool:
    """Go's ``path.Match``."""
    return _pattern_regex(pattern).match(name) is not None
