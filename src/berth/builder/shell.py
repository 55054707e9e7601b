"""Docker's Dockerfile word lexer: quotes, escapes and ``$VAR`` expansion (no command execution).

The model is BuildKit's ``shell.Lex`` as the classic builder uses it to expand ENV, ARG,
LABEL, COPY/ADD, WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL and FROM words:

- ``'...'`` is literal; ``"..."`` expands ``$`` and lets the escape token escape only ``"``,
  ``$`` and itself; outside quotes the escape token (``\\`` or, with ``# escape=```, a
  backtick) makes the next character literal;
- ``$name``, ``${name}``, and ``${name:-word}``, ``${name-word}``, ``${name:+word}``,
  ``${name+word}``, ``${name:?word}``, ``${name?word}``, ``${name#pat}``, ``${name##pat}``,
  ``${name%pat}``, ``${name%%pat}`` (``word`` is expanded in turn); an unset name is empty::

    >>> Lexer().process_word('"$A b"${B:-x}\\ y', {"A": "1"})
    '1 bx y'

Errors (an unterminated quote, a bad substitution, ``${X:?msg}`` of an unset X) are
:class:`ShellError` with BuildKit's texts.
"""

from __future__ import annotations

import fnmatch

from berth.errors import InvalidParameter

_SPECIAL_PARAMS = set("@*#?-$!0")


class ShellError(InvalidParameter):
    pass


class Lexer:
    def __init__(self, escape: str = "\\") -> None:
        self.escape = escape

    def process_word(self, word: str, env: dict[str, str]) -> str:
        return _Scan(word, env, self.escape).run()

    def process_words(self, words: list[str] | tuple[str, ...], env: dict[str, str]) -> list[str]:
        return [self.process_word(w, env) for w in words]


class _Scan:
    def __init__(self, text: str, env: dict[str, str], escape: str) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch

    def run(self, stop: str = "") -> str:
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return "".join(out)
            if ch == "'":
                out.append(self.single_quote())
            elif ch == '"':
                out.append(self.double_quote())
            elif ch == "$":
                out.append(self.dollar())
            else:
                self.next()
                if ch == self.escape:
                    ch = self.next()
                    if not ch:
                        break
                out.append(ch)
        if stop:
            raise ShellError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out)

    def single_quote(self) -> str:
        self.next()
        out: list[str] = []
        while True:
            ch = self.next()
            if not ch:
                raise ShellError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        self.next()
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise ShellError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.next()
            if ch == self.escape:
                following = self.peek()
                if not following:
                    continue
                if following in ('"', "$", self.escape):
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.peek()
            if not out and ch.isdigit():
                while self.peek().isdigit():
                    out.append(self.next())
                return "".join(out)
            if not out and ch in _SPECIAL_PARAMS:
                return self.next()
            if not (ch.isalnum() or ch == "_"):
                break
            out.append(self.next())
        return "".join(out)

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            return self.env.get(name, "") if name else "$"
        self.next()
        ch = self.peek()
        if not ch:
            raise ShellError("syntax error: missing '}'")
        if ch in "{}:":
            raise ShellError("syntax error: bad substitution")
        name = self.name()
        op = self.next()
        if op == "}":
            return self.env.get(name, "")
        if not op:
            raise ShellError("syntax error: missing '}'")
        colon = op == ":"
        if colon:
            op = self.next()
        if op in ("#", "%") and not colon and self.peek() == op:
            op += self.next()
        if op not in ("-", "+", "?", "#", "##", "%", "%%"):
            raise ShellError(f"unsupported modifier ({op}) in substitution")
        try:
            word = self.run(stop="}")
        except ShellError:
            raise ShellError("syntax error: missing '}'") from None
        value = self.env.get(name)
        present = value is not None and (value != "" or not colon)
        if op == "-":
            return value if present and value is not None else word
        if op == "+":
            return word if present else ""
        if op == "?":
            if not present:
                raise ShellError(f"{name}: {word or 'is not allowed to be unset'}")
            return value or ""
        return _trim(value or "", op, word)


def _trim(value: str, op: str, pattern: str) -> str:
    if op in ("#", "##"):
        cuts = range(len(value) + 1) if op == "#" else range(len(value), -1, -1)
        for i in cuts:
            if fnmatch.fnmatchcase(value[:i], pattern):
                return value[i:]
        return value
    cuts = range(len(value), -1, -1) if op == "%" else range(len(value) + 1)
    for i in cuts:
        if fnmatch.fnmatchcase(value[i:], pattern):
            return value[:i]
    return value


def expand_text(text: str, env: dict[str, str], escape: str = "\\") -> str:
    """Expand ``$VAR`` and ``${VAR...}`` in free text (a heredoc's body), keeping quotes and
    everything else as written; ``<escape>$`` is a literal ``$``."""
    scan = _Scan(text, env, escape)
    out: list[str] = []
    while scan.pos < len(text):
        ch = scan.peek()
        if ch == escape and text[scan.pos + 1 : scan.pos + 2] == "$":
            scan.pos += 2
            out.append("$")
        elif ch == "$":
            out.append(scan.dollar())
        else:
            out.append(scan.next())
    return "".join(out)
