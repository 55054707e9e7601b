"""The API server over a real unix socket with a fake engine: headers, errors, wait, hijack."""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
from pathlib import Path

from berth.api.server import Server, TLSOptions
from berth.daemon.live import frame
from berth.engine import Engine
from berth.errors import Conflict, NotFound


def _engine(gate: asyncio.Event) -> Engine:
    e = Engine()

    async def ping(job):  # type: ignore[no-untyped-def]
        return "OK"

    async def inspect(job):  # type: ignore[no-untyped-def]
        raise NotFound(f"No such container: {job.args['id']}")

    async def remove(job):  # type: ignore[no-untyped-def]
        raise Conflict("You cannot remove a running container")

    async def wait(job):  # type: ignore[no-untyped-def]
        await job.stdout.write(b"")
        await gate.wait()
        await job.stdout.write(b'{"Error":null,"StatusCode":3}\n')

    async def attach(job):  # type: ignore[no-untyped-def]
        await job.stdout.start()
        got = b""
        while chunk := await job.stdin.read():
            got += chunk
        await job.stdout.write(frame(1, b"echo:" + got))

    for name, fn in [
        ("system.ping", ping),
        ("container.inspect", inspect),
        ("container.remove", remove),
        ("container.wait", wait),
        ("container.attach", attach),
    ]:
        e.register(name, fn)
    return e


def _request(sock_path: str, raw: bytes, half_close: bool = False) -> bytes:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(sock_path)
    s.sendall(raw)
    if half_close:
        s.shutdown(socket.SHUT_WR)
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


def test_server_behaviour() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bapi-"))
    sock = str(tmp / "s.sock")

    async def scenario() -> None:
        gate = asyncio.Event()
        server = Server(_engine(gate), [f"unix://{sock}"], TLSOptions())
        await server.start()
        loop = asyncio.get_running_loop()
        try:
            resp = await loop.run_in_executor(
                None, _request, sock, b"HEAD /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            head = resp.decode()
            assert (
                head.startswith("HTTP/1.1 200 OK") and "Api-Version: 1.45" in head and "Ostype: linux" in head
            )
            assert "Swarm: inactive" in head and "Builder-Version: 1" in head

            resp = await loop.run_in_executor(
                None,
                _request,
                sock,
                b"GET /v1.45/containers/x/json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            assert b"404 Not Found" in resp and b"\r\nContent-Type: application/json\r\n" in resp
            assert resp.split(b"\r\n\r\n", 1)[1].strip() == b'{"message":"No such container: x"}'
            resp = await loop.run_in_executor(
                None, _request, sock, b"DELETE /containers/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            assert resp.startswith(b"HTTP/1.1 409")
            resp = await loop.run_in_executor(
                None, _request, sock, b"GET /v1.45/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            assert resp.startswith(b"HTTP/1.1 404") and b'{"message":"page not found"}' in resp
            resp = await loop.run_in_executor(
                None, _request, sock, b"GET /v1.12/_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            assert resp.startswith(b"HTTP/1.1 400") and b"too old" in resp

            # wait: the headers arrive before the body, which comes at the event
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock)
            s.sendall(
                b"POST /v1.45/containers/x/wait?condition=next-exit HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
            )
            s.setblocking(False)
            head = b""
            for _ in range(100):
                try:
                    head += s.recv(4096)
                except BlockingIOError:
                    pass
                if b"\r\n\r\n" in head:
                    break
                await asyncio.sleep(0.02)
            assert head.startswith(b"HTTP/1.1 200") and b"StatusCode" not in head
            gate.set()
            body = b""
            for _ in range(100):
                try:
                    body += s.recv(4096)
                except BlockingIOError:
                    pass
                if b"StatusCode" in body:
                    break
                await asyncio.sleep(0.02)
            assert b'{"Error":null,"StatusCode":3}' in body
            s.close()

            # hijack: 101, stdin after the upgrade, output after the client's half-close
            raw = (
                b"POST /v1.45/containers/x/attach?stream=1&stdin=1 HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: 0\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
            )

            def attach() -> bytes:
                c = socket.socket(socket.AF_UNIX)
                c.settimeout(5)
                c.connect(sock)
                c.sendall(raw)
                head = b""
                while b"\r\n\r\n" not in head:
                    head += c.recv(4096)
                assert head.startswith(b"HTTP/1.1 101 UPGRADED"), head
                c.sendall(b"data")
                c.shutdown(socket.SHUT_WR)
                rest = head.split(b"\r\n\r\n", 1)[1]
                while chunk := c.recv(4096):
                    rest += chunk
                c.close()
                return rest

            out = await loop.run_in_executor(None, attach)
            assert out == frame(1, b"echo:data")
        finally:
            await server.stop()

    try:
        asyncio.run(scenario())
        assert not Path(sock).exists()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
