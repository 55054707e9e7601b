"""The build's JSON stream, as dockerd writes it and the docker CLI renders it.

Each message is one JSON object and ``\\r\\n``: ``{"stream": "Step 1/5 : FROM busybox"}``,
``{"stream": "\\n"}``, ``{"stream": " ---> 5e38fda097eb\\n"}``, a RUN's stdout as ``stream``
text and its stderr wrapped in ``\\u001b[91m`` ... ``\\u001b[0m``, ``{"aux": {"ID": "sha256:..."}}``
after each stage, and a failure as ``{"errorDetail": {"code": 3, "message": ...}, "error": ...}``.
Strings are encoded as Go does (``>`` is ``\\u003e``).

With ``quiet`` (``docker build -q``) nothing is sent while the build runs; at the end the
stream holds the image id alone, or, when the build fails, everything it held back and then
the error (dockerd's ``q=1``)::

    out = Output(sink, quiet=False)
    await out.stream("Step 1/2 : FROM busybox"); await out.stream("\\n")
    await out.aux({"ID": image_id})
"""

from __future__ import annotations

import codecs
import json
from typing import Any, Protocol

RED, RESET = "\x1b[91m", "\x1b[0m"


class Sink(Protocol):
    async def write(self, data: bytes) -> None: ...


def encode(obj: Any) -> bytes:
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text.encode("utf-8", "replace") + b"\r\n"


class Output:
    def __init__(self, sink: Sink, quiet: bool = False) -> None:
        self.sink = sink
        self.quiet = quiet
        self.held: list[bytes] = []
        self.started = False  # something reached the client: errors go into the stream now
        self._decoders = {1: codecs.getincrementaldecoder("utf-8")("replace"),
                          2: codecs.getincrementaldecoder("utf-8")("replace")}

    async def _send(self, data: bytes) -> None:
        if self.quiet:
            self.held.append(data)
            return
        self.started = True
        await self.sink.write(data)

    async def stream(self, text: str) -> None:
        await self._send(encode({"stream": text}))

    async def aux(self, obj: dict[str, Any]) -> None:
        if not self.quiet:
            await self._send(encode({"aux": obj}))

    async def raw(self, data: bytes) -> None:
        """Messages another job already encoded (a pull's progress)."""
        await self._send(data)

    async def process(self, fd: int, data: bytes) -> None:
        """A RUN's output: stdout as is, stderr in red (dockerd's build stderr writer)."""
        text = self._decoders.get(fd, self._decoders[1]).decode(data)
        if not text:
            return
        await self.stream(text if fd != 2 else RED + text + RESET)

    async def error(self, message: str, code: int | None = None) -> None:
        """The build failed after the stream began (or in quiet mode): the stream's last message."""
        await self.release()
        detail: dict[str, Any] = {"message": message}
        if code is not None:
            detail = {"code": code, "message": message}
        self.started = True
        await self.sink.write(encode({"errorDetail": detail, "error": message}))

    async def release(self) -> None:
        """Send what quiet mode held back."""
        held, self.held = self.held, []
        if held:
            self.started = True
            await self.sink.write(b"".join(held))

    async def done_quiet(self, image_id: str) -> None:
        self.held = []
        self.started = True
        await self.sink.write(encode({"stream": image_id + "\n"}))
