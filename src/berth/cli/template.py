"""The subset of Go's text/template that ``--format`` uses, with docker's extra functions.

Model: ``Template(text)`` parses once into a tree of text, actions, ``range`` and ``if`` nodes;
``render(data)`` walks it. An action is a pipeline: ``cmd | cmd ...``, where each command is a
function call (``json .``, ``index .Labels "k"``, ``join .Names ","``), a field chain
(``.A.B``, ``.Label "k"`` calls a method with arguments) or a literal; a later command gets the
earlier result as its last argument. Values print as Go's ``%v`` does: ``<nil>``, ``true``,
``map[k:v]``, ``[a b]``, and a missing map key as ``<no value>``.

    >>> Template('{{.Name}} {{json .Labels}} {{index .Labels "k"}}').render(
    ...     {"Name": "web", "Labels": {"k": "v"}})
    'web {"k":"v"} v'
    >>> Template("{{range .X}}[{{.}}]{{end}}").render({"X": [1, 2]})
    '[1][2]'

Functions: json, index, join, split, upper, lower, title, pad, truncate, len, print, printf,
println, not, and, or, eq, ne, lt, le, gt, ge. ``{{-``/``-}}`` trim spaces; ``$`` is the root.
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
    for ch, esc in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def _json_default(value: Any) -> Any:
    if hasattr(value, "json_fields"):
        return value.json_fields()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# -- lexing ---------------------------------------------------------------------------------


def _split_actions(text: str) -> list[tuple[str, str]]:
    """[('text', ...), ('action', ...)], applying {{- and -}} trimming."""
    parts: list[tuple[str, str]] = []
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            parts.append(("text", text[pos:]))
            break
        end = text.find("}}", start + 2)
        if end < 0:
            raise InvalidParameter(f"template parsing error: unclosed action in {text!r}")
        chunk = text[pos:start]
        inner = text[start + 2 : end]
        if inner.startswith("- ") or inner == "-":
            chunk = chunk.rstrip()
            inner = inner[1:]
        trim_after = inner.endswith(" -")
        if trim_after:
            inner = inner[:-1]
        parts.append(("text", chunk))
        parts.append(("action", inner.strip()))
        pos = end + 2
        if trim_after:
            while pos < len(text) and text[pos] in " \t\r\n":
                pos += 1
    return [p for p in parts if p != ("text", "")]


def _tokens(src: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    i = 0
    while i < len(src):
        c = src[i]
        if c in " \t\r\n":
            i += 1
        elif c in "|()":
            out.append((c, c))
            i += 1
        elif c == '"':
            j = i + 1
            while j < len(src) and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            if j >= len(src):
                raise InvalidParameter(f"template parsing error: unterminated quoted string in {src!r}")
            out.append(("lit", json.loads(src[i : j + 1])))
            i = j + 1
        elif c == "`":
            j = src.find("`", i + 1)
            if j < 0:
                raise InvalidParameter(f"template parsing error: unterminated raw quoted string in {src!r}")
            out.append(("lit", src[i + 1 : j]))
            i = j + 1
        else:
            j = i
            while j < len(src) and src[j] not in " \t\r\n|()":
                j += 1
            word = src[i:j]
            i = j
            if word.startswith("."):
                out.append(("field", [p for p in word.split(".")[1:] if p]))
            elif word.startswith("$"):
                name, _, rest = word.partition(".")
                out.append(("var", (name, [p for p in rest.split(".") if p])))
            elif word in ("true", "false"):
                out.append(("lit", word == "true"))
            elif word == "nil":
                out.append(("lit", None))
            elif word[0].isdigit() or (word[0] == "-" and len(word) > 1):
                try:
                    out.append(("lit", float(word) if "." in word or "e" in word else int(word)))
                except ValueError:
                    raise InvalidParameter(f"template parsing error: bad number syntax: {word!r}") from None
            else:
                out.append(("ident", word))
    return out


# -- parsing --------------------------------------------------------------------------------

# Node shapes: ("text", s) | ("pipe", pipeline) | ("range"|"if"|"with", pipeline, body, else_body)
# A pipeline is a list of commands; a command is a list of operands; an operand is a token or
# ("sub", pipeline) for a parenthesized pipeline.


def _parse_pipeline(tokens: list[tuple[str, Any]]) -> list[list[Any]]:
    pipeline: list[list[Any]] = [[]]
    stack: list[list[list[Any]]] = []
    for tok in tokens:
        if tok[0] == "|":
            pipeline.append([])
        elif tok[0] == "(":
            stack.append(pipeline)
            pipeline = [[]]
        elif tok[0] == ")":
            if not stack:
                raise InvalidParameter("template parsing error: unexpected right paren")
            inner = pipeline
            pipeline = stack.pop()
            pipeline[-1].append(("sub", inner))
        else:
            pipeline[-1].append(tok)
    if stack:
        raise InvalidParameter("template parsing error: unclosed left paren")
    if any(not cmd for cmd in pipeline):
        raise InvalidParameter("template parsing error: missing command in pipeline")
    return pipeline


def _parse(parts: list[tuple[str, str]], pos: int, closers: tuple[str, ...]) -> tuple[list[Any], int, str]:
    nodes: list[Any] = []
    while pos < len(parts):
        kind, text = parts[pos]
        pos += 1
        if kind == "text":
            nodes.append(("text", text))
            continue
        if text.startswith("/*"):
            continue
        word = text.split(None, 1)[0] if text else ""
        if word in closers:
            return nodes, pos, text
        if word in ("range", "if", "with"):
            expr = text[len(word) :].strip()
            if word == "range" and ":=" in expr:
                names, _, expr = expr.partition(":=")
                var_names = [n.strip() for n in names.split(",")]
            else:
                var_names = []
            pipeline = _parse_pipeline(_tokens(expr))
            body, pos, closer = _parse(parts, pos, ("end", "else"))
            else_body: list[Any] = []
            if closer.startswith("else"):
                else_body, pos, closer = _parse(parts, pos, ("end",))
            if closer != "end":
                raise InvalidParameter(f"template parsing error: unexpected EOF in {word}")
            nodes.append((word, pipeline, body, else_body, var_names))
            continue
        if word in ("end", "else"):
            raise InvalidParameter(f"template parsing error: unexpected {{{{{word}}}}}")
        if not text:
            raise InvalidParameter("template parsing error: missing value for command")
        nodes.append(("pipe", _parse_pipeline(_tokens(text))))
    if closers:
        raise InvalidParameter("template parsing error: unexpected EOF")
    return nodes, pos, ""


# -- evaluation -----------------------------------------------------------------------------


def _truth(value: Any) -> bool:
    if value is NO_VALUE or value is None:
        return False
    if isinstance(value, bool | int | float | str | list | tuple | dict):
        return bool(value)
    return True


def executing_error(name: str, cause: str) -> InvalidParameter:
    """Go's text for a failed field lookup (docker adds its own prefix before it)."""
    return InvalidParameter(f'template: :1: executing "" at <.{name}>: {cause}')


def field_value(value: Any, name: str, args: list[Any] | None = None, missing_error: bool = False) -> Any:
    """``.name`` on a value: a map key (``<no value>`` if absent, or an error with
    ``missingkey=error``), else an attribute; a method is called with ``args``."""
    if isinstance(value, dict):
        if name not in value and missing_error:
            raise executing_error(name, f'map has no entry for key "{name}"')
        result = value.get(name, NO_VALUE)
    elif value is None or value is NO_VALUE:
        raise executing_error(name, f"nil pointer evaluating .{name}")
    else:
        attr = getattr(value, name, NO_VALUE) if not name.startswith("_") else NO_VALUE
        if attr is NO_VALUE:
            raise executing_error(name, f"can't evaluate field {name} in type {type(value).__name__}")
        return attr(*(args or [])) if callable(attr) else attr
    if args:
        raise InvalidParameter(f"template: executing: {name} is not a method but has arguments")
    return result


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(item, dict):
            item = item.get(key)
        elif isinstance(item, list | tuple | str):
            try:
                item = item[int(key)]
            except (IndexError, ValueError, TypeError):
                raise InvalidParameter(f"template: executing: error calling index: index out of range: {key}") from None
        elif item is None:
            return None
        else:
            raise InvalidParameter(f"template: executing: error calling index: can't index item of type {type(item).__name__}")
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
            return {"ne": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]
        except TypeError:
            raise InvalidParameter(f"template: executing: error calling {op}: incompatible types for comparison") from None

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
    "not": lambda v: not _truth(v),
    "and": lambda *vs: next((v for v in vs if not _truth(v)), vs[-1] if vs else None),
    "or": lambda *vs: next((v for v in vs if _truth(v)), vs[-1] if vs else None),
    **{op: _compare(op) for op in ("eq", "ne", "lt", "le", "gt", "ge")},
}


class Template:
    """``missing_key_error=True`` is Go's ``missingkey=error`` (docker inspect uses it)."""

    def __init__(self, text: str, missing_key_error: bool = False) -> None:
        self.text = text
        self.missing_key_error = missing_key_error
        self.nodes, _, _ = _parse(_split_actions(text), 0, ())

    def render(self, data: Any) -> str:
        out: list[str] = []
        self._exec(self.nodes, data, {"$": data}, out)
        return "".join(out)

    def _exec(self, nodes: list[Any], dot: Any, scope: dict[str, Any], out: list[str]) -> None:
        for node in nodes:
            kind = node[0]
            if kind == "text":
                out.append(node[1])
            elif kind == "pipe":
                value = self._pipeline(node[1], dot, scope)
                out.append(go_str(value))
            elif kind == "if":
                value = self._pipeline(node[1], dot, scope)
                self._exec(node[2] if _truth(value) else node[3], dot, scope, out)
            elif kind == "with":
                value = self._pipeline(node[1], dot, scope)
                if _truth(value):
                    self._exec(node[2], value, scope, out)
                else:
                    self._exec(node[3], dot, scope, out)
            elif kind == "range":
                value = self._pipeline(node[1], dot, scope)
                names = node[4]
                if isinstance(value, dict):
                    items = [(k, value[k]) for k in sorted(value, key=str)]
                elif isinstance(value, list | tuple):
                    items = list(enumerate(value))
                elif value is None or value is NO_VALUE:
                    items = []
                elif isinstance(value, int):
                    items = [(i, i) for i in range(value)]
                else:
                    raise InvalidParameter(f"template: executing: range can't iterate over {go_str(value)}")
                if not items:
                    self._exec(node[3], dot, scope, out)
                for key, item in items:
                    inner = dict(scope)
                    if len(names) == 1:
                        inner[names[0]] = item
                    elif len(names) == 2:
                        inner[names[0]], inner[names[1]] = key, item
                    self._exec(node[2], item, inner, out)

    def _pipeline(self, pipeline: list[list[Any]], dot: Any, scope: dict[str, Any]) -> Any:
        result: Any = NO_VALUE
        for n, cmd in enumerate(pipeline):
            result = self._command(cmd, dot, scope, [result] if n else [])
        return result

    def _operand(self, tok: Any, dot: Any, scope: dict[str, Any]) -> Any:
        kind, val = tok
        if kind == "lit":
            return val
        if kind == "field":
            value = dot
            for name in val:
                value = field_value(value, name, missing_error=self.missing_key_error)
            return value
        if kind == "var":
            name, chain = val
            if name not in scope:
                raise InvalidParameter(f"template parsing error: undefined variable {name!r}")
            value = scope[name]
            for part in chain:
                value = field_value(value, part, missing_error=self.missing_key_error)
            return value
        if kind == "sub":
            return self._pipeline(val, dot, scope)
        if kind == "ident":
            if val not in FUNCS:
                raise InvalidParameter(f'template parsing error: function "{val}" not defined')
            return FUNCS[val]()
        raise InvalidParameter(f"template parsing error: unexpected {val!r}")

    def _command(self, cmd: list[Any], dot: Any, scope: dict[str, Any], piped: list[Any]) -> Any:
        head = cmd[0]
        if head[0] == "ident":
            fn = FUNCS.get(head[1])
            if fn is None:
                raise InvalidParameter(f'template parsing error: function "{head[1]}" not defined')
            args = [self._operand(t, dot, scope) for t in cmd[1:]] + piped
            try:
                return fn(*args)
            except TypeError as exc:
                raise InvalidParameter(f"template: executing: wrong arguments for {head[1]}: {exc}") from exc
        if head[0] == "field" and (len(cmd) > 1 or piped) and head[1]:
            value = dot
            for name in head[1][:-1]:
                value = field_value(value, name, missing_error=self.missing_key_error)
            args = [self._operand(t, dot, scope) for t in cmd[1:]] + piped
            return field_value(value, head[1][-1], args, self.missing_key_error)
        if len(cmd) > 1 or piped:
            raise InvalidParameter("template: executing: can't give argument to non-function")
        return self._operand(head, dot, scope)
