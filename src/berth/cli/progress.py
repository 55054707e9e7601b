"""Render a JSON progress stream (import, pull, load) the way the docker CLI does off a terminal.

Model: each message prints as ``[id: ]status``, ``stream`` text prints as it is, messages that
carry a progress bar (``progressDetail`` with a current value) are hidden, ``aux`` messages go to
the caller. The first ``errorDetail`` ends the stream with that message (raised as
SystemFailure, printed without the daemon prefix, exit 1, as docker does).
"""

from __future__ import annotations

from collections.abc import Callable

from berth.client.http import Response
from berth.client.jsonstream import JSONStreamDecoder, message_error
from berth.errors import SystemFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def render_message(msg: dict[str, Any]) -> str:
    detail = msg.get("progressDetail") or {}
    if isinstance(detail, dict) and detail.get("current"):
        return ""  # a progress bar: hidden off a terminal
    out = ""
    if msg.get("id"):
        out += f"{msg['id']}: "
    if msg.get("from"):
        out += f"(from {msg['from']}) "
    if msg.get("stream"):
        return out + str(msg["stream"])
    if msg.get("status") is not None and msg.get("progress"):
        return out + f"{msg['status']} {msg['progress']}\n"
    if "status" in msg:
        return out + f"{msg['status']}\n"
    return ""


class Terminal:
    """Docker's rendering on a terminal: one line per id, rewritten in place (cursor moves),
    with the bar, the sizes, the speed and the time left of each download or upload."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write
        self.lines: dict[str, int] = {}  # id -> its line, counted from the first
        self.started: dict[str, tuple[float, int]] = {}

    def show(self, msg: dict[str, Any]) -> None:
        ident = msg.get("id")
        text = self._text(msg)
        if not ident:
            self.write(text + "\n")
            self.lines = {}  # later ids start below this line, as docker does
            return
        ident = str(ident)
        if ident not in self.lines:
            self.lines[ident] = len(self.lines)
            self.write(f"{text}\n")
            return
        up = len(self.lines) - self.lines[ident]
        self.write(f"\x1b[{up}A\r\x1b[2K{text}\r\x1b[{up}B")

    def _text(self, msg: dict[str, Any]) -> str:
        out = f"{msg['id']}: " if msg.get("id") else ""
        out += str(msg.get("status") or msg.get("stream") or "").rstrip("\n")
        detail = msg.get("progressDetail") or {}
        if isinstance(detail, dict) and detail.get("current"):
            out += " " + self._bar(str(msg.get("id", "")), int(detail["current"]), int(detail.get("total") or 0),
                                   str(msg.get("progress") or ""))
        return out

    def _bar(self, ident: str, current: int, total: int, progress: str) -> str:
        import time

        now = time.monotonic()
        t0, c0 = self.started.setdefault(ident, (now, current))
        bar = progress or _human(current)
        if now - t0 > 0.5 and current > c0:
            speed = (current - c0) / (now - t0)
            bar += f"  {_human(speed)}/s"
            if total > current:
                bar += f"  {int((total - current) / speed)}s"
        return bar


def _human(n: float) -> str:
    units = ("B", "kB", "MB", "GB", "TB")
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return f"{n:.4g}{units[i]}"


def display_stream(
    resp: Response,
    write: Callable[[str], None],
    on_aux: Callable[[Any], None] | None = None,
    tty: bool = False,
) -> list[dict[str, Any]]:
    """Print every message as it arrives (on a terminal as docker draws it); returns them all."""
    term = Terminal(write) if tty else None
    decoder = JSONStreamDecoder()
    seen: list[dict[str, Any]] = []
    for chunk in resp.iter_chunks():
        for msg in decoder.feed(chunk):
            if not isinstance(msg, dict):
                continue
            seen.append(msg)
            error = message_error(msg)
            if error is not None:
                resp.close()
                raise SystemFailure(error)
            if "aux" in msg:
                if on_aux is not None:
                    on_aux(msg["aux"])
                continue
            if term is not None:
                if "status" in msg or "stream" in msg:
                    term.show(msg)
                continue
            text = render_message(msg)
            if text:
                write(text)
    decoder.close()
    return seen
