"""JSON through CPython's C accelerator (``_json``) without the ``json`` package, for the paths
started once per container (``berth-runtime``, a container's init): ``json``'s decoder and
encoder compile regular expressions at import, which with ``re`` itself is a noticeable part of
a whole ``berth-runtime run``. Same results as ``json.loads``/``json.dumps`` (the scanner and
encoder are the ones ``json`` uses); where ``_json`` is missing, ``json`` does the work.

    >>> loads(' {"a": [1, 2.5, "x", true, null]} ')
    {'a': [1, 2.5, 'x', True, None]}
    >>> dumps({"a": [1, "é"]}), dumps({"b": 1}, indent=2)
    ('{"a": [1, "\\\\u00e9"]}', '{\\n  "b": 1\\n}')

Errors are ``ValueError`` (a document nested too deep for the scanner is one too).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

try:
    import _json
except ImportError:  # another Python: the json package it is
    _json = None  # type: ignore[assignment]

_WS = " \t\n\r"
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _Context:
    """What ``_json.make_scanner`` reads from a ``json.JSONDecoder``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__
    memo: dict[str, str] = {}


_scan = _json.make_scanner(_Context()) if _json is not None else None  # type: ignore[arg-type]


def loads(text: str | bytes) -> Any:
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if _scan is None:
        import json

        return json.loads(text)
    n, i = len(text), 0
    while i < n and text[i] in _WS:
        i += 1
    try:
        value, end = _scan(text, i)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except (StopIteration, SystemError):
        # Malformed: json's own parser says where and why (the C scanner builds that error
        # from json.decoder, and without it loaded reports nothing: SystemError)
        import json

        return json.loads(text)
    while end < n and text[end] in _WS:
        end += 1
    if end != n:
        raise ValueError(f"extra data after the JSON value at character {end}")
    return value


def _no_default(obj: Any) -> Any:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _encoder(sort_keys: bool) -> Any:
    if _json is None:
        return None
    return _json.make_encoder({}, _no_default, _json.encode_basestring_ascii, None, ": ", ", ", sort_keys, False, True)


_encode, _encode_sorted = _encoder(False), _encoder(True)


def dumps(obj: Any, indent: int | None = None, sort_keys: bool = False) -> str:
    if _encode is None:
        import json

        return json.dumps(obj, indent=indent, sort_keys=sort_keys)
    if indent is None:
        return "".join((_encode_sorted if sort_keys else _encode)(obj, 0))
    return _pretty(obj, indent, 0)


def _pretty(obj: Any, indent: int, level: int) -> str:
    """``json.dumps(obj, indent=indent)``'s layout, for dicts and lists around scalars."""
    pad, inner = " " * (indent * level), " " * (indent * (level + 1))
    if isinstance(obj, dict) and obj:
        items = [f"{inner}{_json.encode_basestring_ascii(str(k))}: {_pretty(v, indent, level + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list | tuple) and obj:
        return "[\n" + ",\n".join(inner + _pretty(v, indent, level + 1) for v in obj) + "\n" + pad + "]"
    assert _encode is not None
    return "".join(_encode(obj, 0))
