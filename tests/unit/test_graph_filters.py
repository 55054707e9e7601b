"""Image list filters (berth.graph.filters)."""

from __future__ import annotations

import pytest

from berth.errors import InvalidParameter
from berth.graph.filters import dangling_value, labels_match, normalise, path_match


def test_both_wire_forms_normalise() -> None:
    cli = {"dangling": {"false": True}, "reference": {"spy*": True, "off": False}}
    assert normalise(cli) == {"dangling": ["false"], "reference": ["spy*"]}
    assert normalise({"label": ["a=b"], "before": "busybox"}) == {"label": ["a=b"], "before": ["busybox"]}


def test_unknown_filter_is_invalid() -> None:
    with pytest.raises(InvalidParameter, match="Invalid filter 'colour'"):
        normalise({"colour": ["red"]})


def test_dangling_values() -> None:
    assert dangling_value([]) is None
    assert dangling_value(["true"]) is True and dangling_value(["0"]) is False
    with pytest.raises(InvalidParameter, match="Invalid filter 'dangling=maybe'"):
        dangling_value(["maybe"])


def test_labels_all_must_match() -> None:
    labels = {"app": "test", "tier": "web"}
    assert labels_match(["app"], labels) and labels_match(["app=test", "tier=web"], labels)
    assert not labels_match(["app=prod"], labels) and not labels_match(["app", "nope"], labels)
    assert not labels_match(["app"], None)


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("spy*", "spybuild:1", True),
        ("busybox*", "busybox:latest", True),
        ("busybox", "busybox", True),
        ("*", "127.0.0.1:5000/bbx", False),
        ("*/*", "myrepo/bb", True),
        ("b?x", "bbx", True),
        ("[ab]*", "busybox", True),
        ("[!b]*", "busybox", False),
        ("busybox", "busybox:latest", False),
        ("127.0.0.1:5051/bbx", "127.0.0.1:5051/bbx", True),
    ],
)
def test_path_match_is_gos(pattern: str, name: str, expected: bool) -> None:
    assert path_match(pattern, name) is expected


def test_until_values() -> None:
    from berth.graph.pruning import parse_until

    now = 1_795_840_368 * 10**9
    assert parse_until("1795840368", now) == now
    assert parse_until("1795840368.5", now) == now + 5 * 10**8
    assert parse_until("2026-11-28T04:32:48Z", now) == now
    assert parse_until("24h", now) == now - 24 * 3600 * 10**9
    with pytest.raises(InvalidParameter, match='failed to parse value as time or duration: "soon"'):
        parse_until("soon", now)
