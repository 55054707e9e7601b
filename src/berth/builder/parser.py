"""The Dockerfile parser: text to logical lines (nodes), as BuildKit's ``parser.Parse`` does.

The model:

- parser directives (``# escape=``` ``, ``# syntax=...``, ``# check=...``) are read only at the
  very top, until the first line that is not one; ``escape`` picks the escape token (``\\``
  or a backtick), which is also the line continuation character;
- a line ending in the escape token (blanks after it allowed) continues on the next line; the
  pieces are joined as they are (``RUN a \\`` + ``  b`` is ``RUN a   b``); comment lines and
  empty lines inside a continuation are skipped;
- ``RUN``, ``COPY`` and ``ADD`` may carry heredocs: ``<<EOF`` (or ``<<-EOF``, which strips
  leading tabs, or ``<<'EOF'``/``<<"EOF"``, which turns expansion off) takes the following
  lines up to the one that is exactly ``EOF``;
- the first word is the instruction (any case); an unknown one is an error naming it.

Every node keeps its line numbers and its ``original`` text, which the build prints as
``Step N/M : <original>``::

    >>> df = parse("FROM busybox\\nRUN echo a \\\\\\n  && echo b\\n")
    >>> [(n.keyword, n.start_line, n.original) for n in df.nodes]
    [('from', 1, 'FROM busybox'), ('run', 2, 'RUN echo a   && echo b')]

Errors are :class:`DockerfileError`: ``dockerfile parse error line 3: unknown instruction: RUNN``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from berth.errors import InvalidParameter

INSTRUCTIONS = (
    "add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck", "label",
    "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume", "workdir",
)
HEREDOC_INSTRUCTIONS = ("run", "copy", "add")
_DIRECTIVE_RE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_DIRECTIVES = ("escape", "syntax", "check")
_HEREDOC_RE = re.compile(r"^(\d*)<<(-?)(['\"]?)([^<'\"\s]+)\3$")
MAX_DOCKERFILE = 4 << 20  # bytes; dockerd reads the Dockerfile whole, so bound it


class DockerfileError(InvalidParameter):
    """A syntax error, naming the line and the instruction."""

    def __init__(self, line: int, message: str, instruction: str = "") -> None:
        self.line = line
        self.instruction = instruction.upper()
        if self.instruction and self.instruction not in message.upper().split(":")[0].split():
            message = f"{self.instruction}: {message}"
        super().__init__(f"dockerfile parse error line {line}: {message}")


@dataclass(frozen=True)
class Heredoc:
    name: str
    content: str
    expand: bool  # False when the delimiter was quoted
    fd: int = 0   # ``3<<EOF`` feeds fd 3 (RUN only); 0 is stdin


@dataclass(frozen=True)
class Node:
    keyword: str       # the instruction, lower case
    rest: str          # the text after the keyword (flags included)
    original: str      # the logical line as written, continuations joined
    start_line: int
    end_line: int
    heredocs: tuple[Heredoc, ...] = ()

    @property
    def name(self) -> str:
        return self.keyword.upper()


@dataclass(frozen=True)
class Dockerfile:
    nodes: tuple[Node, ...]
    escape: str = "\\"
    warnings: tuple[str, ...] = ()


def parse(text: str) -> Dockerfile:
    if len(text) > MAX_DOCKERFILE:
        raise InvalidParameter(f"dockerfile is {len(text)} bytes, over the limit of {MAX_DOCKERFILE}")
    text = text.removeprefix("\ufeff")
    lines = text.split("\n")
    escape = "\\"
    seen: set[str] = set()
    index = 0
    # directives: only at the top
    while index < len(lines):
        match = _DIRECTIVE_RE.match(lines[index].rstrip("\r").strip())
        if match is None or match.group(1).lower() not in _DIRECTIVES:
            break
        key, value = match.group(1).lower(), match.group(2)
        if key in seen:
            raise DockerfileError(index + 1, f"only one {key} parser directive can be used")
        seen.add(key)
        if key == "escape":
            if value not in ("`", "\\"):
                raise DockerfileError(index + 1, f"invalid escape token '{value}' does not match ` or \\")
            escape = value
        index += 1
    continuation = re.compile(re.escape(escape) + r"[ \t]*$")
    nodes: list[Node] = []
    warnings: list[str] = []
    while index < len(lines):
        raw = lines[index].rstrip("\r")
        index += 1
        start = index
        stripped = raw.lstrip(" \t")
        if not stripped or stripped.startswith("#"):
            continue
        line, more = _trim_continuation(stripped, continuation)
        empty_continuation = False
        while more and index < len(lines):
            nxt = lines[index].rstrip("\r")
            index += 1
            if nxt.lstrip(" \t").startswith("#"):
                continue
            if not nxt.strip():
                empty_continuation = True
                continue
            piece, more = _trim_continuation(nxt, continuation)
            line += piece
        if empty_continuation:
            warnings.append(f"[WARNING]: Empty continuation line found in: {line.strip()[:60]}")
        node = _node(line, start, index, escape)
        if node.keyword in HEREDOC_INSTRUCTIONS:
            markers = heredoc_markers(node.rest)
            if markers:
                docs: list[Heredoc] = []
                for fd, chomp, quoted, name in markers:
                    body: list[str] = []
                    while True:
                        if index >= len(lines):
                            raise DockerfileError(start, f"unterminated heredoc {name}", node.keyword)
                        text_line = lines[index].rstrip("\r")
                        index += 1
                        check = text_line.lstrip("\t") if chomp else text_line
                        if check == name:
                            break
                        body.append(check + "\n")
                    docs.append(Heredoc(name, "".join(body), not quoted, fd))
                node = Node(node.keyword, node.rest, node.original, start, index, tuple(docs))
        nodes.append(node)
    return Dockerfile(tuple(nodes), escape, tuple(warnings))


def _trim_continuation(line: str, pattern: re.Pattern[str]) -> tuple[str, bool]:
    if pattern.search(line):
        return pattern.sub("", line), True
    return line, False


def _node(line: str, start: int, end: int, escape: str) -> Node:
    parts = line.strip().split(None, 1)
    keyword = parts[0].lower()
    rest = parts[1].strip() if len(parts) > 1 else ""
    if keyword not in INSTRUCTIONS:
        raise DockerfileError(start, f"unknown instruction: {parts[0].upper()}")
    return Node(keyword, rest, line.strip(), start, end)


def heredoc_markers(rest: str) -> list[tuple[int, bool, bool, str]]:
    """``(fd, chomp, quoted, name)`` of each ``<<NAME`` word in an instruction's text."""
    out = []
    for word in rest.split():
        match = _HEREDOC_RE.match(word)
        if match:
            fd = int(match.group(1)) if match.group(1) else 0
            out.append((fd, match.group(2) == "-", bool(match.group(3)), match.group(4)))
    return out


def split_command(line: str) -> tuple[str, str]:
    """``ONBUILD RUN x`` -> (``run``, ``x``): the sub-instruction of an ONBUILD or a trigger."""
    parts = line.strip().split(None, 1)
    if not parts:
        return "", ""
    return parts[0].lower(), parts[1].strip() if len(parts) > 1 else ""
