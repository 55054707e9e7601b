"""JSON progress streams (pull, push, load, import, build): a run of JSON values, any whitespace.

Model: ``JSONStreamDecoder.feed(data)`` takes bytes as they arrive and returns the complete
objects; the daemon separates them with ``\\r\\n`` but, like the docker CLI's streaming decoder,
only whitespace is required. ``message_error(msg)`` is the ``errorDetail`` text the CLI stops at.

    >>> d = JSONStreamDecoder()
    >>> d.feed(b'{"status":"a"}\\r\\n{"sta')
    [{'status': 'a'}]
    >>> d.feed(b'tus":"b"}')
    [{'status': 'b'}]
"""

from __future__ import annotations

import json

from berth.errors import SystemFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_WS = " \t\r\n"


class JSONStreamDecoder:
    def __init__(self) -> None:
        self.text = ""
        self._raw = bytearray()
        self._decoder = json.JSONDecoder()

    def feed(self, data: bytes) -> list[Any]:
        self._raw += data
        try:
            self.text += self._raw.decode("utf-8")
            self._raw.clear()
        except UnicodeDecodeError as exc:
            # a multi-byte character split across reads: keep its head for the next feed
            self.text += self._raw[: exc.start].decode("utf-8")
            del self._raw[: exc.start]
        out = []
        pos = 0
        text = self.text
        while True:
            while pos < len(text) and text[pos] in _WS:
                pos += 1
            if pos >= len(text):
                break
            try:
                value, end = self._decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                if exc.pos >= len(text) - 1 or "Unterminated" in exc.msg or "Expecting" in exc.msg:
                    break  # incomplete: wait for more bytes
                raise SystemFailure(f"decode daemon JSON stream: {exc}") from exc
            out.append(value)
            pos = end
        self.text = text[pos:]
        return out

    def close(self) -> None:
        """At EOF: anything left over is a truncated value."""
        if self.text.strip() or self._raw:
            raise SystemFailure(f"decode daemon JSON stream: truncated value {self.text[:60]!r}")


def message_error(msg: Any) -> str | None:
    """The error text of a progress message, or None (the CLI keys on errorDetail)."""
    if not isinstance(msg, dict):
        return None
    detail = msg.get("errorDetail")
    if isinstance(detail, dict) and detail.get("message"):
        return str(detail["message"])
    if msg.get("error"):
        return str(msg["error"])
    return None
