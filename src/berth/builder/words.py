"""Splitting an instruction's text: builder flags, quoted words, JSON or shell forms.

These are BuildKit's parser helpers (``extractBuilderFlags``, ``parseWords``,
``parseMaybeJSON``, ``parseNameVal``) as pure functions over one instruction's text::

    >>> extract_flags('--from=build --chown="a b" src /dst')
    ('src /dst', ['from=build', 'chown=a b'])
    >>> parse_words('A="hello world" B=x\\\\ y', "\\\\")
    ['A="hello world"', 'B=x\\\\ y']
    >>> maybe_json('["sh", "-c", "echo"]')
    (['sh', '-c', 'echo'], True)
"""

from __future__ import annotations

import json
import re

_WHITESPACE = re.compile(r"[\t\v\f\r ]+")


class NotStringArray(ValueError):
    def __init__(self) -> None:
        super().__init__("when using JSON array syntax, arrays must be comprised of strings only")


def extract_flags(line: str) -> tuple[str, list[str]]:
    """Leading ``--name[=value]`` words (quotes and backslashes processed, the ``--`` dropped)
    and the rest of the line."""
    words: list[str] = []
    pos = 0
    n = len(line)
    while True:
        while pos < n and line[pos].isspace():
            pos += 1
        if pos >= n:
            return "", words
        if not line.startswith("--", pos):
            return line[pos:], words
        word = ""
        blank_ok = False
        quote = ""
        pos += 2
        while pos < n:
            ch = line[pos]
            if quote:
                if ch == quote:
                    quote = ""
                elif ch == "\\" and pos + 1 < n:
                    pos += 1
                    word += line[pos]
                elif ch != "\\":
                    word += ch
                pos += 1
                continue
            if ch.isspace():
                break
            if ch in "'\"":
                quote = ch
                blank_ok = True
            elif ch == "\\":
                if pos + 1 < n:
                    pos += 1
                    word += line[pos]
            else:
                word += ch
            pos += 1
        if word == "" and not blank_ok:
            return line[pos:].lstrip(), words  # a bare "--" ends the flags
        words.append(word)


def parse_words(rest: str, escape: str) -> list[str]:
    """Words split on blanks outside quotes; quotes and escapes are kept for the lexer."""
    words: list[str] = []
    word = ""
    blank_ok = False
    quote = ""
    in_word = False
    i = 0
    n = len(rest)
    while i < n:
        ch = rest[i]
        if not in_word:
            if ch.isspace():
                i += 1
                continue
            in_word = True
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if i + 1 == n:
                    i += 1
                    continue
                word += ch
                i += 1
                ch = rest[i]
            word += ch
            i += 1
            continue
        if ch.isspace():
            if blank_ok or word:
                words.append(word)
            word, blank_ok, in_word = "", False, False
            i += 1
            continue
        if ch in "'\"":
            quote = ch
            blank_ok = True
        if ch == escape:
            if i + 1 == n:
                i += 1
                continue
            word += ch
            i += 1
            ch = rest[i]
        word += ch
        i += 1
    if in_word and (blank_ok or word):
        words.append(word)
    return words


def maybe_json(rest: str) -> tuple[list[str], bool] | None:
    """``(args, True)`` for a JSON array of strings (trailing text ignored, as Go's decoder
    does), ``None`` when ``rest`` is not JSON; :class:`NotStringArray` for a JSON array with
    other values."""
    text = rest.lstrip()
    if not text.startswith("["):
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise NotStringArray()
    return value, True


def json_or_shell(rest: str) -> tuple[list[str], bool]:
    """``parseMaybeJSON``: the JSON array, or the whole text as one shell-form argument."""
    found = maybe_json(rest)
    if found is not None:
        return found
    return ([rest] if rest else []), False


def json_or_words(rest: str) -> tuple[list[str], bool]:
    """``parseMaybeJSONToList``: the JSON array, or the text split on blanks (no quoting)."""
    found = maybe_json(rest)
    if found is not None:
        return found
    stripped = rest.strip()
    return (_WHITESPACE.split(stripped) if stripped else []), False


def name_values(rest: str, escape: str, keyword: str) -> list[tuple[str, str]]:
    """ENV and LABEL: ``k=v ...`` pairs, or the legacy ``k value with blanks``."""
    words = parse_words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = _WHITESPACE.split(rest.strip(), 1)
        if len(parts) < 2:
            raise ValueError(f"{keyword} must have two arguments")
        return [(parts[0], parts[1])]
    pairs = []
    for word in words:
        if "=" not in word:
            raise ValueError(f'Syntax error - can\'t find = in "{word}". Must be of the form: name=value')
        key, _, value = word.partition("=")
        pairs.append((key, value))
    return pairs


def go_quote(value: str) -> str:
    """Go's ``%q`` of a string (what Docker writes into ``CMD ["a" "b"]`` history lines)."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_quote_list(values: list[str] | None) -> str:
    """Go's ``%q`` of a ``[]string``: ``["a" "b"]``."""
    return "[" + " ".join(go_quote(v) for v in values or []) + "]"
