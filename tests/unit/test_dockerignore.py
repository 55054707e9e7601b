"""``.dockerignore`` rules (berth.dockerignore), as moby's patternmatcher applies them."""

from __future__ import annotations

import pytest

from berth.dockerignore import Matcher, read_patterns


def test_read_patterns_cleans_lines() -> None:
    text = "# comment\n\n  *.log  \n!  keep.log\n/abs/path\n./dot//x/\n!\n"
    assert read_patterns(text) == ["*.log", "!keep.log", "abs/path", "dot/x", "!"]
    with pytest.raises(ValueError, match="illegal exclusion pattern"):
        Matcher(read_patterns(text))


@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        (["*.log"], "a.log", True),
        (["*.log"], "dir/a.log", False),  # * does not cross /
        (["**/*.log"], "dir/sub/a.log", True),
        (["**/*.log"], "a.log", True),
        (["build"], "build/x/y.o", True),  # a parent matches
        (["build/**"], "build/x/y.o", True),
        (["*.log", "!keep.log"], "keep.log", False),
        (["*.log", "!keep.log", "keep*"], "keep.log", True),  # the last match wins
        (["docs", "!docs/README.md"], "docs/README.md", False),
        (["docs", "!docs/README.md"], "docs/other.md", True),
        (["a?c"], "abc", True),
        (["a?c"], "a/c", False),
        (["[a-c]x"], "bx", True),
        (["[!a-c]x"], "bx", False),
        (["**"], "anything/at/all", True),
        (["foo.bar"], "fooXbar", False),  # regexp characters are literal
        (["Dockerfile"], "Dockerfile", True),
        (["\\*star"], "*star", True),
    ],
)
def test_excluded(patterns: list[str], path: str, excluded: bool) -> None:
    assert Matcher(read_patterns("\n".join(patterns))).excluded(path) is excluded


def test_may_include_under() -> None:
    m = Matcher(read_patterns("docs\n!docs/keep\n"))
    assert m.may_include_under("docs")
    assert not m.may_include_under("src")
    assert not Matcher(["docs"]).may_include_under("docs")
