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

from berth.cli.templatefuncs import FUNCS, NO_VALUE, go_str, truth
from berth.errors import InvalidParameter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


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
                self._exec(node[2] if truth(value) else node[3], dot, scope, out)
            elif kind == "with":
                value = self._pipeline(node[1], dot, scope)
                if truth(value):
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
