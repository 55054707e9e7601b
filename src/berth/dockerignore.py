"""``.dockerignore``: Docker's pattern rules, shared by the ``berth build`` client and the builder.

The model is moby's ``patternmatcher`` and ``ignorefile``: one pattern per line, ``#`` starts a
comment line, surrounding blanks are trimmed, a leading ``!`` re-includes what earlier
patterns excluded, each pattern is cleaned like a path (``./a//b/`` is ``a/b``, a leading ``/``
is dropped). A pattern is Go's ``filepath.Match`` (``*`` and ``?`` never cross ``/``, ``[...]``
classes, ``\\`` escapes) plus ``**``, which matches any number of directories. A path is
excluded when the last pattern that matches it or one of its parent directories is not a
``!`` pattern::

    >>> m = Matcher(read_patterns("*.log\\n!keep.log\\nbuild/**\\n"))
    >>> [m.excluded(p) for p in ("a.log", "keep.log", "build/x/y.o", "src/a.log")]
    [True, False, True, False]

``may_include_under(dir)`` tells a walker whether an excluded directory can still hold a
re-included file (then it must descend into it), as the docker CLI's context walker asks.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

_SPECIAL = set(".+()|{}$^")


def read_patterns(text: str) -> list[str]:
    """The patterns of a ``.dockerignore`` file, cleaned as ``ignorefile.ReadAll`` does."""
    out: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        invert = line.startswith("!")
        if invert:
            line = line[1:].strip()
        if line:
            line = posixpath.normpath(line)
            if line.startswith("//"):
                line = "/" + line.lstrip("/")
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
        out.append("!" + line if invert else line)
    return out


@dataclass(frozen=True)
class Pattern:
    text: str
    exclusion: bool
    regex: re.Pattern[str]
    dirs: tuple[str, ...]

    def match(self, path: str) -> bool:
        return self.regex.match(path) is not None


def compile_pattern(text: str) -> Pattern:
    exclusion = text.startswith("!")
    body = text[1:] if exclusion else text
    if not body:
        raise ValueError("illegal exclusion pattern: \"!\"")
    return Pattern(text, exclusion, re.compile(_to_regex(body), re.DOTALL), tuple(body.split("/")))


def _to_regex(pattern: str) -> str:
    out = "^"
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1
                out += ".*" if i >= n else "(.*/)?"
            else:
                out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "\\":
            if i < n:
                out += re.escape(pattern[i])
                i += 1
            else:
                out += "\\\\"
        elif ch == "[":
            end = _class_end(pattern, i)
            if end < 0:
                raise ValueError(f"syntax error in pattern {pattern!r}: unterminated [")
            body = pattern[i:end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out += "[" + body.replace("\\", "\\\\") + "]"
            i = end + 1
        elif ch in _SPECIAL:
            out += "\\" + ch
        else:
            out += re.escape(ch) if not ch.isalnum() and ch not in "/_-" else ch
    return out + "$"


def _class_end(pattern: str, start: int) -> int:
    i = start
    if i < len(pattern) and pattern[i] in "^!":
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        i += 1
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
            continue
        if pattern[i] == "]":
            return i
        i += 1
    return -1


class Matcher:
    def __init__(self, patterns: list[str]) -> None:
        self.patterns = [compile_pattern(p) for p in patterns if p]
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    def excluded(self, path: str) -> bool:
        """moby's ``MatchesOrParentMatches`` for a context-relative, ``/``-separated path."""
        path = posixpath.normpath(path.lstrip("/"))
        parents = path.split("/")[:-1]
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            hit = pattern.match(path)
            if not hit:
                for i in range(len(parents)):
                    if pattern.match("/".join(parents[: i + 1])):
                        hit = True
                        break
            if hit:
                matched = not pattern.exclusion
        return matched

    def may_include_under(self, directory: str) -> bool:
        """Whether a ``!`` pattern could re-include something below the excluded ``directory``
        (the CLI then walks into it instead of skipping it whole)."""
        if not self.has_exclusions:
            return False
        depth = len(directory.strip("/").split("/"))
        for pattern in self.patterns:
            if not pattern.exclusion:
                continue
            if "**" in pattern.text:
                return True
            prefix = "/".join(pattern.dirs[:depth])
            if compile_pattern(prefix).match(directory.strip("/")):
                return True
        return False
