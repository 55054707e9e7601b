"""Detach-key parsing and the escape proxy (berth.container.escape), against moby/term's rules."""

from __future__ import annotations

import pytest

from berth.container.escape import DEFAULT_DETACH_KEYS, EscapeProxy, parse_detach_keys


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("", b"\x10\x11"),
        ("ctrl-p,ctrl-q", b"\x10\x11"),
        ("ctrl-x,y", b"\x18y"),
        ("ctrl-@,ctrl-a,ctrl-z,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_", bytes([0, 1, 26, 27, 28, 29, 30, 31])),
        ("DEL", b"\x7f"),
        ("a,b,c", b"abc"),
    ],
)
def test_parse_detach_keys(text: str, keys: bytes) -> None:
    assert parse_detach_keys(text) == keys


@pytest.mark.parametrize("text", ["ctrl-foo", "ctrl-P", "CTRL-p", "ab", "ctrl-p,", ",", "é", "del", "ctrl-"])
def test_parse_detach_keys_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="unknown character"):
        parse_detach_keys(text)


def run(keys: bytes, *chunks: bytes) -> tuple[bytes, bool]:
    proxy = EscapeProxy(keys)
    out = b""
    for chunk in chunks:
        got, detached = proxy.feed(chunk)
        out += got
        if detached:
            return out, True
    return out + proxy.flush(), False


def test_sequence_in_one_write_and_across_writes() -> None:
    assert run(DEFAULT_DETACH_KEYS, b"ab\x10\x11cd") == (b"ab", True)
    assert run(DEFAULT_DETACH_KEYS, b"ab\x10", b"\x11") == (b"ab", True)
    assert run(DEFAULT_DETACH_KEYS, b"\x10", b"", b"\x11") == (b"", True)
    assert run(b"\x18y", b"\x10\x11") == (b"\x10\x11", False)


def test_partial_match_is_held_then_released() -> None:
    proxy = EscapeProxy(b"\x10\x11")
    assert proxy.feed(b"a\x10") == (b"a", False)  # held
    assert proxy.feed(b"b") == (b"\x10b", False)  # released with the breaking byte
    assert proxy.feed(b"\x10") == (b"", False)
    assert proxy.flush() == b"\x10"  # at EOF it goes on too
    assert proxy.flush() == b""


def test_breaking_byte_does_not_start_a_new_match() -> None:
    # moby/term: ctrl-p ctrl-p ctrl-q does not detach
    assert run(DEFAULT_DETACH_KEYS, b"\x10", b"\x10", b"\x11") == (b"\x10\x10\x11", False)
    assert run(DEFAULT_DETACH_KEYS, b"\x10\x10\x11") == (b"\x10\x10\x11", False)
    assert run(b"aab", b"aaab") == (b"aaab", False)
    assert run(b"aab", b"xaab") == (b"x", True)


def test_longer_and_single_key_sequences() -> None:
    assert run(b"abc", b"a", b"b", b"x") == (b"abx", False)
    assert run(b"abc", b"zab", b"cz") == (b"z", True)
    assert run(b"\x01", b"hello\x01world") == (b"hello", True)
    assert run(b"\x01", b"hello") == (b"hello", False)
    with pytest.raises(ValueError):
        EscapeProxy(b"")


def test_large_input_without_keys_passes_unchanged() -> None:
    data = bytes(range(256)).replace(b"\x10", b"") * 4096
    assert run(DEFAULT_DETACH_KEYS, data) == (data, False)
