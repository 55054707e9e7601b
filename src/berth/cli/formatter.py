"""``--format`` for list commands: docker's ``table`` / template / ``json`` rules, in one place.

Model: a list command hands over row contexts (objects whose attributes are the template fields,
e.g. ``.ID``, ``.Names``; methods take arguments, e.g. ``.Label "k"``) and a header map
(field -> column title). ``render()`` picks the template:

* ``""`` -> the command's default table; ``"table ..."`` -> a table: the header line is the same
  template rendered over the titles, and everything goes through the tabwriter;
* ``"json"`` -> ``{{json .}}`` per row; anything else -> the template per row, no tabwriter.

Literal ``\\t`` and ``\\n`` in a format become a tab and a newline, as in docker.

    >>> class Row:
    ...     ID = "abc"
    ...     Name = "web"
    >>> print(render("table {{.ID}}\\t{{.Name}}", [Row()], {"ID": "CONTAINER ID", "Name": "NAME"}), end="")
    CONTAINER ID   NAME
    abc            web
"""

from __future__ import annotations

from berth.cli.tabwriter import tabwrite

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class _Title(str):
    """A column title that also answers method-style fields (``{{.Label "k"}}``)."""

    __slots__ = ()

    def __call__(self, *args: Any) -> _Title:
        return self


class HeaderContext:
    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    def __getattr__(self, name: str) -> _Title:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Title(self._headers.get(name, name.upper()))

    def json_fields(self) -> dict[str, str]:
        return dict(self._headers)


def normalize(fmt: str) -> tuple[bool, str]:
    """(is_table, template text)."""
    is_table = fmt.startswith("table")
    text = fmt[5:] if is_table else fmt
    if is_table:
        text = text.strip(" ")
    elif text.strip() == "json":
        text = "{{json .}}"
    return is_table, text.replace("\\t", "\t").replace("\\n", "\n")


class FieldTemplate:
    """A template made only of text and ``{{.Field}}`` actions (the default tables, most
    ``--format`` uses) rendered without the template engine: importing and compiling that
    costs more than ``berth ps`` may take when bytecode caching is off."""

    def __init__(self, parts: list[tuple[bool, str]]) -> None:
        self.parts = parts

    @classmethod
    def parse(cls, text: str) -> FieldTemplate | None:
        parts: list[tuple[bool, str]] = []
        rest = text
        while rest:
            start = rest.find("{{")
            if start < 0:
                if "}}" in rest:
                    return None
                parts.append((False, rest))
                break
            end = rest.find("}}", start)
            if end < 0:
                return None
            if start:
                parts.append((False, rest[:start]))
            action = rest[start + 2 : end].strip()
            name = action[1:]
            if not (action.startswith(".") and name.isidentifier() and not name.startswith("_")):
                return None
            parts.append((True, name))
            rest = rest[end + 2 :]
        return cls(parts)

    def render(self, data: Any) -> str:
        out = []
        for is_field, text in self.parts:
            if not is_field:
                out.append(text)
                continue
            if isinstance(data, dict):
                value = data.get(text, "<no value>")
            else:
                value = getattr(data, text, _MISSING)
                if value is _MISSING:
                    from berth.cli.template import executing_error

                    raise executing_error(text, f"can't evaluate field {text} in type {type(data).__name__}")
                if callable(value):
                    value = value()
            out.append(value if isinstance(value, str) else _go_str(value))
        return "".join(out)


_MISSING = object()


def _go_str(value: Any) -> str:
    from berth.cli.templatefuncs import go_str

    return go_str(value)


def _prefixed(prefix: str, message: str) -> str:
    return message if message.startswith(prefix) else prefix + message


def compile_format(text: str) -> Any:
    fast = FieldTemplate.parse(text)
    if fast is not None:
        return fast
    from berth.cli.template import Template

    return Template(text)


def render(fmt: str, rows: list[Any], headers: dict[str, str]) -> str:
    """Render rows with a docker-style format; InvalidParameter for a bad template, with the
    docker CLI's ``template parsing error:`` / ``failed to execute template:`` prefixes."""
    from berth.errors import InvalidParameter

    is_table, text = normalize(fmt)
    try:
        tmpl = compile_format(text)
    except InvalidParameter as exc:
        raise InvalidParameter(_prefixed("template parsing error: ", exc.message)) from exc
    out: list[str] = []
    try:
        if is_table:
            header = tmpl.render(HeaderContext(headers))
            if header.strip():
                out.append(header)
        for row in rows:
            out.append(tmpl.render(row))
    except InvalidParameter as exc:
        raise InvalidParameter(_prefixed("failed to execute template: ", exc.message)) from exc
    if not out:
        return ""
    body = "\n".join(out) + "\n"
    return tabwrite(body) if is_table else body
