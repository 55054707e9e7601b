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


def display_stream(
    resp: Response,
    write: Callable[[str], None],
    on_aux: Callable[[Any], None] | None = None,
) -> list[dict[str, Any]]:
    """Print every message as it arrives; returns them all."""
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
            text = render_message(msg)
            if text:
                write(text)
    decoder.close()
    return seen
