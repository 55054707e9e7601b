"""JSON from outside (berth.jsondoc): malformed or too deeply nested is an InvalidParameter."""

from __future__ import annotations

import pytest

from berth import jsondoc
from berth.errors import InvalidParameter


def test_ordinary_documents_parse() -> None:
    assert jsondoc.loads(b'{"Image": "busybox", "Cmd": ["sh"]}', "create") == {"Image": "busybox", "Cmd": ["sh"]}
    assert jsondoc.loads("[[1], {}]", "x") == [[1], {}]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"[" * 100_000, id="100k-deep-unclosed"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="100k-deep"),
        pytest.param(b'{"a":' * 5000 + b"1" + b"}" * 5000, id="5k-deep-objects"),
        pytest.param(b"[" * 101 + b"]" * 101, id="just-past-the-limit"),
    ],
)
def test_deep_nesting_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidParameter, match="create: invalid JSON: nested more than 100 levels deep"):
        jsondoc.loads(data, "create")


def test_the_limit_itself_parses() -> None:
    assert jsondoc.depth(jsondoc.loads(b"[" * 100 + b"]" * 100, "x"), 1000) == 100


@pytest.mark.parametrize("data", [b"{", b"\xff\xfe", b'{"a": NaN'])
def test_malformed_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidParameter, match="^body: invalid JSON: "):
        jsondoc.loads(data, "body")


def test_go_fields_match_case_insensitively_exact_first() -> None:
    from berth.jsondoc import go_fields

    fields = ("DetachKeys", "Cmd", "Tty")
    assert go_fields({"detachKeys": "ctrl-p", "cmd": ["cat"], "Other": 1}, fields) == {
        "DetachKeys": "ctrl-p", "Cmd": ["cat"], "Other": 1}
    # as Go: the later of two keys for one field wins
    assert go_fields({"tty": False, "Tty": True}, fields) == {"Tty": True}
    assert go_fields({"Tty": True, "TTY": False}, fields) == {"Tty": False}
