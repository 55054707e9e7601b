"""Docker's JSON progress messages, as the docker CLI and docker-py read them.

    p = Progress(sink)                               # sink.write(bytes) is async
    await p.status("Pulling fs layer", id="ab57a5e6cdb4", detail=True)
    p.bar("Downloading", "ab57a5e6cdb4", current, total)   # throttled; safe from any thread via p.threadsafe
    await p.flush()

A bar message is ``{"status", "progressDetail": {"current", "total"}, "progress": "[=>  ]  1kB/2MB", "id"}``
with the bar drawn as Docker's ``JSONProgress.String()`` draws it (50 columns, decimal units).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Protocol

BAR_INTERVAL = 0.1  # seconds between two bar messages of one id


class Sink(Protocol):
    async def write(self, data: bytes) -> None: ...


def human_size(n: float) -> str:
    """go-units HumanSize: 4 significant digits, decimal units (``36.45kB``, ``1.065MB``)."""
    units = ("B", "kB", "MB", "GB", "TB", "PB", "EB")
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return f"{n:.4g}{units[i]}"


def progress_bar(current: int, total: int) -> str:
    if total <= 0:
        return f"{human_size(current):>8}"
    percentage = min(int(current / total * 100) // 2, 50)
    return f"[{'=' * percentage}>{' ' * (50 - percentage)}] {human_size(current):>8}/{human_size(total)}"


def message(status: str, id: str = "", detail: dict[str, Any] | None = None, progress: str = "") -> bytes:
    msg: dict[str, Any] = {"status": status}
    if detail is not None:
        msg["progressDetail"] = detail
    if progress:
        msg["progress"] = progress
    if id:
        msg["id"] = id
    return json.dumps(msg, separators=(",", ":")).encode() + b"\r\n"


def error_message(text: str) -> bytes:
    return json.dumps({"errorDetail": {"message": text}, "error": text}, separators=(",", ":")).encode() + b"\r\n"


class Progress:
    def __init__(self, sink: Sink | None) -> None:
        self.sink = sink
        self.loop = asyncio.get_running_loop()
        self._last: dict[str, float] = {}
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._writer = asyncio.create_task(self._drain())
        self.started = False

    async def _drain(self) -> None:
        while (data := await self._queue.get()) is not None:
            if self.sink is not None:
                self.started = True
                await self.sink.write(data)

    def put(self, data: bytes) -> None:
        self._queue.put_nowait(data)

    def status(self, status: str, id: str = "", detail: bool = False) -> None:
        self.put(message(status, id, {} if detail else None))

    def bar(self, status: str, id: str, current: int, total: int, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last.get(id, 0.0) < BAR_INTERVAL and current < total:
            return
        self._last[id] = now
        self.put(message(status, id, {"current": current, "total": total}, progress_bar(current, total)))

    def threadsafe_bar(self, status: str, id: str, current: int, total: int) -> None:
        self.loop.call_soon_threadsafe(self.bar, status, id, current, total)

    def threadsafe_status(self, status: str, id: str = "", detail: bool = False) -> None:
        self.loop.call_soon_threadsafe(self.status, status, id, detail)

    async def close(self) -> None:
        self._queue.put_nowait(None)
        await self._writer
