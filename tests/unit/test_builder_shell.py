"""Docker's word lexer (berth.builder.shell)."""

from __future__ import annotations

import pytest

from berth.builder.shell import Lexer, ShellError, expand_text

ENV = {"A": "1", "EMPTY": "", "PATH": "/usr/bin:/bin", "FILE": "archive.tar.gz"}


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("plain", "plain"),
        ("$A", "1"),
        ("${A}x", "1x"),
        ("$NOPE-", "-"),
        ("'$A'", "$A"),
        ('"$A b"', "1 b"),
        ('"a\\"b"', 'a"b'),
        ('"a\\nb"', "a\\nb"),  # only " $ and the escape are escaped inside double quotes
        ("a\\ b", "a b"),
        ("\\$A", "$A"),
        ("${NOPE:-dflt}", "dflt"),
        ("${EMPTY:-dflt}", "dflt"),
        ("${EMPTY-dflt}", ""),
        ("${A:+set}", "set"),
        ("${EMPTY:+set}", ""),
        ("${EMPTY+set}", "set"),
        ("${NOPE:-${A}0}", "10"),
        ("${FILE%.gz}", "archive.tar"),
        ("${FILE%%.*}", "archive"),
        ("${FILE#*.}", "tar.gz"),
        ("${FILE##*.}", "gz"),
        ("$", "$"),
        ("a$", "a$"),
        ("$1x", "x"),
    ],
)
def test_process_word(word: str, expected: str) -> None:
    assert Lexer().process_word(word, ENV) == expected


def test_backtick_escape() -> None:
    assert Lexer("`").process_word("a` b`$A c:\\dir", ENV) == "a b$A c:\\dir"


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ("'open", "matching single-quote"),
        ('"open', "matching double-quote"),
        ("${A", "missing '}'"),
        ("${}", "bad substitution"),
        ("${NOPE:?must be set}", "NOPE: must be set"),
        ("${NOPE?}", "NOPE: is not allowed to be unset"),
        ("${A~x}", "unsupported modifier"),
    ],
)
def test_errors(word: str, message: str) -> None:
    with pytest.raises(ShellError, match=message):
        Lexer().process_word(word, ENV)


def test_expand_text_keeps_quotes() -> None:
    assert expand_text("it's $A and \"${A}\" \\$A\n", ENV) == "it's 1 and \"1\" $A\n"
