"""Values and functions of the ``--format`` templates: Go's ``%v`` printing, docker's ``json``,
and the function table (Go's builtins plus docker's join, split, upper, lower, title, pad,
truncate).

    >>> go_str({"b": [1, None], "a": True})
    'map[a:true b:[1 <nil>]]'
    >>> FUNCS["join"](["a", "b"], ",")
    'a,b'
"""

from __future__ import annotations

import json

from berth.errors import InvalidParameter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class _NoValue:
    def __str__(self) -> str:
        return "<no value>"

    def __bool__(self) -> bool:
        return False


NO_VALUE = _NoValue()


def go_str(value: Any) -> str:
    """Go's ``%v`` for JSON-like values."""
    if value is None:
        return "<nil>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{go_str(k)}:{go_str(value[k])}" for k in sorted(value, key=str)) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    return str(value)


def _go_float(value: float) -> str:
    """strconv.FormatFloat(v, 'g', -1, 64) as %v uses it: shortest digits, %e when exp < -4 or >= 6."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    from decimal import Decimal

    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    exp = len(digits) + int(exponent) - 1
    neg = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mant = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{neg}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return f"{neg}0.{'0' * (-exp - 1)}{text}"
    if len(text) <= exp + 1:
        return neg + text + "0" * (exp + 1 - len(text))
    return f"{neg}{text[: exp + 1]}.{text[exp + 1 :]}"


def go_json(value: Any) -> str:
    """docker's ``json`` function: compact, no HTML escaping, UTF-8 kept.

    Row contexts (ps, images) serialize through their ``json_fields()``, HTML-escaped as
    their Go MarshalJSON does."""
    if hasattr(value, "json_fields"):
        return go_json_marshal(value.json_fields())
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def go_json_marshal(value: Any) -> str:
    """Go's json.Marshal: like go_json but HTML characters escaped (row contexts marshal
    themselves with it, so ``{{json .}}`` on a ps/images row shows ``\u003cnone\u003e``)."""
    text = go_json(value)
    for ch, esc in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(ch, esc)
    return text


def _json_default(value: Any) -> Any:
    if hasattr(value, "json_fields"):
        return value.json_fields()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def truth(value: Any) -> bool:
    if value is NO_VALUE or value is None:
        return False
    if isinstance(value, bool | int | float | str | list | tuple | dict):
        return bool(value)
    return True


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(item, dict):
            item = item.get(key)
        elif isinstance(item, list | tuple | str):
            try:
                item = item[int(key)]
            except (IndexError, ValueError, TypeError):
                raise InvalidParameter(
                    f"template: executing: error calling index: index out of range: {key}"
                ) from None
        elif item is None:
            return None
        else:
            raise InvalidParameter(
                f"template: executing: error calling index: can't index item of type {type(item).__name__}"
            )
    return item


def _printf(fmt: str, *args: Any) -> str:
    out = []
    i = 0
    it = iter(args)
    while i < len(fmt):
        c = fmt[i]
        if c == "%" and i + 1 < len(fmt):
            j = i + 1
            while j < len(fmt) and fmt[j] in "-+ #0123456789.":
                j += 1
            verb = fmt[j] if j < len(fmt) else "v"
            spec = fmt[i + 1 : j]
            if verb == "%":
                out.append("%")
            else:
                arg = next(it, None)
                if verb in "vs":
                    out.append(("%" + spec + "s") % go_str(arg))
                elif verb == "q":
                    out.append(json.dumps(go_str(arg), ensure_ascii=False))
                elif verb in "dxXo" and isinstance(arg, int | float):
                    out.append(("%" + spec + verb) % int(arg))
                elif verb in "feEgG" and isinstance(arg, int | float):
                    out.append(("%" + spec + verb) % arg)
                elif verb == "t":
                    out.append(go_str(bool(arg)))
                else:
                    out.append(f"%!{verb}({go_str(arg)})")
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _println(*args: Any) -> str:
    return " ".join(go_str(a) for a in args) + "\n"


def _print(*args: Any) -> str:
    # Go's Sprint adds spaces only between operands when neither is a string
    out = ""
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out += " "
        out += go_str(a)
    return out


def _compare(op: str) -> Any:
    def fn(a: Any, *bs: Any) -> bool:
        if op == "eq":
            return any(a == b for b in bs)
        b = bs[0] if bs else None
        try:
            return bool({"ne": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op])
        except TypeError:
            raise InvalidParameter(
                f"template: executing: error calling {op}: incompatible types for comparison"
            ) from None

    return fn


def _truncate(text: Any, n: int) -> str:
    s = go_str(text)
    return s[: int(n)]


FUNCS: dict[str, Any] = {
    "json": go_json,
    "index": _index,
    "join": lambda items, sep: sep.join(go_str(i) for i in (items or [])),
    "split": lambda s, sep: go_str(s).split(sep),
    "upper": lambda s: go_str(s).upper(),
    "lower": lambda s: go_str(s).lower(),
    "title": lambda s: go_str(s).title(),
    "pad": lambda s, left, right: " " * int(left) + go_str(s) + " " * int(right),
    "truncate": _truncate,
    "len": lambda v: len(v) if v is not None else 0,
    "print": _print,
    "printf": _printf,
    "println": _println,
    "not": lambda v: not truth(v),
    "and": lambda *vs: next((v for v in vs if not truth(v)), vs[-1] if vs else None),
    "or": lambda *vs: next((v for v in vs if truth(v)), vs[-1] if vs else None),
    **{op: _compare(op) for op in ("eq", "ne", "lt", "le", "gt", "ge")},
}
