"""A hijacked Engine API connection driven byte by byte, as a client library would (tests only).

    s = RawStream.open(d.sock, "/v1.41/containers/c/attach?stream=1&stdin=1&stdout=1")
    s.status, s.headers["content-type"]        # 101, "application/vnd.docker.raw-stream"
    s.send(b"\\x10"); s.send(b"\\x11")            # separate writes, like typed keys
    s.read_until(b"prompt")                     # raw bytes (a TTY)
    s.frames()                                  # [(1, b"out\\n"), ...] until EOF (no TTY)
"""

from __future__ import annotations

import json
import select
import socket
import struct
import time
from typing import Any


class RawStream:
    def __init__(self, sock: socket.socket, status: int, headers: dict[str, str], rest: bytes) -> None:
        self.sock = sock
        self.status = status
        self.headers = headers
        self.buf = rest  # bytes received and not yet consumed
        self.eof = False

    @classmethod
    def open(cls, sock_path: str, path: str, body: Any = None, upgrade: bool = True,
             timeout: float = 10.0) -> RawStream:
        """POST ``path`` asking for the upgrade (as the docker CLI and docker-py do); read the
        response head. ``body`` is sent as JSON."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock_path)
        data = json.dumps(body).encode() if body is not None else b""
        head = [f"POST {path} HTTP/1.1", "Host: docker", f"Content-Length: {len(data)}"]
        head.append("Content-Type: application/json" if body is not None else "Content-Type: text/plain")
        if upgrade:
            head += ["Connection: Upgrade", "Upgrade: tcp"]
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        raw = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in raw:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = s.recv(65536)
            if not chunk:
                break
            raw += chunk
        s.settimeout(None)
        head_text, _, rest = raw.partition(b"\r\n\r\n")
        lines = head_text.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return cls(s, status, headers, rest)

    def send(self, data: bytes, pause: float = 0.0) -> None:
        self.sock.sendall(data)
        if pause:
            time.sleep(pause)

    def close_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.sock.close()

    def _fill(self, deadline: float) -> bool:
        """Read what arrives before ``deadline``; False once the server closed its side."""
        if self.eof:
            return False
        ready, _, _ = select.select([self.sock], [], [], max(0.0, deadline - time.monotonic()))
        if ready:
            chunk = self.sock.recv(65536)
            if not chunk:
                self.eof = True
                return False
            self.buf += chunk
        return True

    def read_until(self, marker: bytes, timeout: float = 10.0) -> bytes:
        """Everything up to and including ``marker``; AssertionError with what came if it does not."""
        deadline = time.monotonic() + timeout
        while marker not in self.buf and time.monotonic() < deadline and self._fill(deadline):
            pass
        if marker not in self.buf:
            raise AssertionError(f"{marker!r} never came (eof={self.eof}); got {self.buf!r}")
        end = self.buf.index(marker) + len(marker)
        got, self.buf = self.buf[:end], self.buf[end:]
        return got

    def read_to_eof(self, timeout: float = 10.0) -> bytes:
        """Everything until the server closes; AssertionError if it is still open at the timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._fill(deadline):
            pass
        if not self.eof:
            raise AssertionError(f"the stream is still open after {timeout}s; got {self.buf!r}")
        got, self.buf = self.buf, b""
        return got

    def read_for(self, seconds: float) -> bytes:
        """What arrives within ``seconds`` (the stream may stay open)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self._fill(deadline):
            pass
        got, self.buf = self.buf, b""
        return got

    def frames(self, timeout: float = 10.0) -> list[tuple[int, bytes]]:
        """The multiplexed frames of the whole stream, until EOF."""
        return split_frames(self.read_to_eof(timeout))

    def __enter__(self) -> RawStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def split_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Docker's 8-byte headers; AssertionError if ``data`` is not a whole number of frames."""
    out = []
    pos = 0
    while pos < len(data):
        assert len(data) - pos >= 8, f"a truncated frame header at {pos}: {data!r}"
        kind, length = struct.unpack(">BxxxI", data[pos : pos + 8])
        assert kind in (0, 1, 2, 3) and data[pos + 1 : pos + 4] == b"\0\0\0", f"not a frame at {pos}: {data!r}"
        payload = data[pos + 8 : pos + 8 + length]
        assert len(payload) == length, f"a truncated frame at {pos}: {data!r}"
        out.append((kind, payload))
        pos += 8 + length
    return out


def joined(frames: list[tuple[int, bytes]], stream: int) -> bytes:
    return b"".join(data for kind, data in frames if kind == stream)
