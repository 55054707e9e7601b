"""Detach keys: Docker's key-sequence syntax and the escape proxy on a TTY's stdin.

A client attached to a TTY container (or a TTY exec) detaches by typing the detach sequence,
ctrl-p ctrl-q unless the attach (``?detachKeys=``) or the exec (``DetachKeys``) names another.
The daemon watches the stdin bytes it receives, as dockerd's ``term.NewEscapeProxy`` does:
bytes that may begin the sequence are held back; they go on to the container if the next byte
does not continue it, and are never sent if the sequence completes (the attach then ends and
the container keeps running). The match runs across reads, so it does not matter how the
client's bytes were split; bytes after a complete sequence are dropped with the connection.

    >>> parse_detach_keys("ctrl-x,y")
    b'\\x18y'
    >>> p = EscapeProxy(b"\\x10\\x11")
    >>> p.feed(b"ab\\x10"), p.feed(b"c"), p.feed(b"\\x10"), p.feed(b"\\x11rest")
    ((b'ab', False), (b'\\x10c', False), (b'', False), (b'', True))

Key syntax (moby/term ``ToBytes``): comma-separated keys, each a single byte taken literally,
``ctrl-@`` ... ``ctrl-_`` (0 to 31: ``ctrl-a`` is 1, ``ctrl-[`` 27) or ``DEL`` (127).
"""

from __future__ import annotations

DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p, ctrl-q

_CTRL = "@abcdefghijklmnopqrstuvwxyz[\\]^_"


def parse_detach_keys(text: str) -> bytes:
    """The bytes of a detach sequence; the default for ``""``. ValueError names a bad key."""
    if not text:
        return DEFAULT_DETACH_KEYS
    out = bytearray()
    for key in text.split(","):
        raw = key.encode("utf-8", "surrogateescape")
        if len(raw) == 1:
            out += raw
        elif key.startswith("ctrl-") and len(key) == 6 and key[5] in _CTRL:
            out.append(_CTRL.index(key[5]))
        elif key == "DEL":
            out.append(127)
        else:
            raise ValueError(f"unknown character: '{key}'")
    return bytes(out)


class EscapeProxy:
    """Finds a key sequence in a byte stream fed in pieces; see the module docstring."""

    __slots__ = ("keys", "pos")

    def __init__(self, keys: bytes) -> None:
        if not keys:
            raise ValueError("an escape sequence needs at least one key")
        self.keys = keys
        self.pos = 0  # how many keys of the sequence the bytes held back match

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """The bytes to pass on now, and whether the sequence completed in ``data``."""
        keys, first = self.keys, self.keys[0]
        out = bytearray()
        i, n = 0, len(data)
        while i < n:
            if self.pos == 0:
                j = data.find(first, i)
                if j < 0:
                    out += data[i:]
                    break
                out += data[i:j]
                i = j + 1
                self.pos = 1
            elif data[i] == keys[self.pos]:
                i += 1
                self.pos += 1
            else:
                # not the sequence after all: release what was held, and this byte with it
                # (it is not looked at as the start of a new sequence: moby/term does the same)
                out += keys[: self.pos]
                out.append(data[i])
                i += 1
                self.pos = 0
            if self.pos == len(keys):
                self.pos = 0
                return bytes(out), True
        return bytes(out), False

    def flush(self) -> bytes:
        """At the end of the stream: the bytes still held back (a sequence left unfinished)."""
        held, self.pos = self.keys[: self.pos], 0
        return held
