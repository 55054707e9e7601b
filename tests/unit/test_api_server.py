"""The API server over a real unix socket with a fake engine: headers, errors, wait, hijack.

One server per test (in a loop on its own thread), so one failing behaviour does not hide the
others.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.api.server import Server, TLSOptions
from berth.daemon.live import frame
from berth.engine import Engine, Job, Request, UnknownJob
from berth.engine.request import request_types
from berth.errors import Conflict, NotFound
from berth.jobs import containers as cjobs
from berth.jobs import system as sjobs


def _engine(gate: asyncio.Event, leave_out: str = "") -> Engine:
    e = Engine()

    async def ping(req: sjobs.SystemPing, job: Job) -> str:
        return "OK"

    async def inspect(req: cjobs.ContainerInspect, job: Job) -> dict[str, object]:
        raise NotFound(f"No such container: {req.id}")

    async def remove(req: cjobs.ContainerRemove, job: Job) -> None:
        raise Conflict("You cannot remove a running container")

    async def wait(req: cjobs.ContainerWait, job: Job) -> None:
        await job.sink.write(b"")
        await gate.wait()
        await job.sink.write(b'{"Error":null,"StatusCode":3}\n')

    async def attach(req: cjobs.ContainerAttach, job: Job) -> None:
        conn = job.duplex
        await conn.start()
        got = b""
        while chunk := await conn.read():
            got += chunk
        await conn.write(frame(1, b"echo:" + got))

    e.handle(sjobs.SystemPing, ping)
    e.handle(cjobs.ContainerInspect, inspect)
    e.handle(cjobs.ContainerRemove, remove)
    e.handle(cjobs.ContainerWait, wait)
    e.handle(cjobs.ContainerAttach, attach)

    async def unreachable(req: Request[object], job: Job) -> None:
        raise AssertionError(f"job {job.name} is not part of these tests")

    for name, kind in request_types().items():
        if name not in e.handlers and name != leave_out:
            e.handle(kind, unreachable)
    return e


class Running:
    """A server on a unix socket, served by an event loop in a thread of its own."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="bapi-"))
        self.sock = str(self.tmp / "s.sock")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.gate = self.call(self._make_gate())
        self.server = Server(_engine(self.gate), [f"unix://{self.sock}"], TLSOptions())
        self.call(self.server.start())

    @staticmethod
    async def _make_gate() -> asyncio.Event:
        return asyncio.Event()

    def call(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def open_gate(self) -> None:
        self.loop.call_soon_threadsafe(self.gate.set)

    def close(self) -> None:
        try:
            self.call(self.server.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture
def server() -> Iterator[Running]:
    running = Running()
    try:
        yield running
    finally:
        running.close()
    assert not Path(running.sock).exists(), "the server left its socket behind"


def _request(sock_path: str, raw: bytes) -> bytes:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(sock_path)
    s.sendall(raw)
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        out += chunk
    s.close()
    return out


def _get(sock: str, method: str, path: str) -> bytes:
    return _request(sock, f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())


def test_ping_has_dockers_headers(server: Running) -> None:
    head = _get(server.sock, "HEAD", "/_ping").decode()
    assert head.startswith("HTTP/1.1 200 OK"), head
    assert "Api-Version: 1.45" in head and "Ostype: linux" in head
    assert "Swarm: inactive" in head and "Builder-Version: 1" in head


def test_not_found_is_a_json_404(server: Running) -> None:
    resp = _get(server.sock, "GET", "/v1.45/containers/x/json")
    assert resp.startswith(b"HTTP/1.1 404 Not Found"), resp
    assert b"\r\nContent-Type: application/json\r\n" in resp
    assert resp.split(b"\r\n\r\n", 1)[1].strip() == b'{"message":"No such container: x"}'


def test_conflict_is_a_409(server: Running) -> None:
    resp = _get(server.sock, "DELETE", "/containers/x")
    assert resp.startswith(b"HTTP/1.1 409"), resp
    assert resp.split(b"\r\n\r\n", 1)[1].strip() == b'{"message":"You cannot remove a running container"}'


def test_unknown_path_is_page_not_found(server: Running) -> None:
    resp = _get(server.sock, "GET", "/v1.45/nope")
    assert resp.startswith(b"HTTP/1.1 404"), resp
    assert b'{"message":"page not found"}' in resp


def test_too_old_a_version_is_a_400(server: Running) -> None:
    resp = _get(server.sock, "GET", "/v1.12/_ping")
    assert resp.startswith(b"HTTP/1.1 400"), resp
    assert b"client version 1.12 is too old" in resp


def _read_until(s: socket.socket, marker: bytes, seconds: float = 5.0) -> bytes:
    got = b""
    deadline = time.monotonic() + seconds
    s.settimeout(0.05)
    while marker not in got and time.monotonic() < deadline:
        try:
            chunk = s.recv(4096)
        except TimeoutError:
            continue
        if not chunk:
            break
        got += chunk
    return got


def test_wait_sends_headers_before_the_body(server: Running) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.connect(server.sock)
    try:
        s.sendall(
            b"POST /v1.45/containers/x/wait?condition=next-exit HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        )
        head = _read_until(s, b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        assert b"StatusCode" not in head
        server.open_gate()
        body = _read_until(s, b"StatusCode")
        assert b'{"Error":null,"StatusCode":3}' in body
    finally:
        s.close()


def test_hijack_reads_stdin_after_the_upgrade_and_answers_after_half_close(server: Running) -> None:
    c = socket.socket(socket.AF_UNIX)
    c.settimeout(5)
    c.connect(server.sock)
    try:
        c.sendall(
            b"POST /v1.45/containers/x/attach?stream=1&stdin=1 HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 0\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += c.recv(4096)
        assert head.startswith(b"HTTP/1.1 101 UPGRADED"), head
        c.sendall(b"data")
        c.shutdown(socket.SHUT_WR)
        rest = head.split(b"\r\n\r\n", 1)[1]
        while chunk := c.recv(4096):
            rest += chunk
    finally:
        c.close()
    assert rest == frame(1, b"echo:data")


def test_a_job_without_a_handler_keeps_the_server_from_starting() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bapi-"))

    async def scenario() -> None:
        server = Server(_engine(asyncio.Event(), leave_out="container.top"), [f"unix://{tmp}/s.sock"], TLSOptions())
        with pytest.raises(UnknownJob, match="container.top"):
            await server.start()

    try:
        asyncio.run(scenario())
        assert not (tmp / "s.sock").exists()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
