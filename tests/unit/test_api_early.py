"""The early listener: /_ping answered on a unix socket before the API server exists; any other
request held, unread, for the server that takes the listener over."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.api.early import EarlyListener, check_host
from berth.api.versions import API_VERSION
from berth.errors import InvalidParameter


@pytest.fixture
def early() -> Iterator[tuple[EarlyListener, str]]:
    path = str(Path(tempfile.mkdtemp(prefix="be-")) / "s.sock")
    listener = EarlyListener.bind([path])
    yield listener, path
    listener.close()
    shutil.rmtree(Path(path).parent)


def _ask(path: str, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall(request)
        got = b""
        while chunk := s.recv(4096):
            got += chunk
        return got


def test_ping_is_answered_as_the_route_answers_it(early: tuple[EarlyListener, str]) -> None:
    _listener, path = early
    assert Path(path).stat().st_mode & 0o777 == 0o660
    got = _ask(path, b"GET /v1.41/_ping HTTP/1.1\r\nHost: docker\r\nUser-Agent: x\r\n\r\n")
    head, _, body = got.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert lines[0] == "HTTP/1.1 200 OK" and body == b"OK"
    assert headers["Api-Version"] == API_VERSION and headers["Ostype"] == "linux"
    assert headers["Docker-Experimental"] == "false" and headers["Content-Length"] == "2"
    got = _ask(path, b"HEAD /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 200 OK\r\n") and got.endswith(b"Content-Length: 0\r\nConnection: close\r\n\r\n")


def test_other_requests_are_held_unread_for_the_server(early: tuple[EarlyListener, str]) -> None:
    listener, path = early
    request = b"GET /containers/json HTTP/1.1\r\nHost: docker\r\n\r\n"
    too_old = b"GET /v1.12/_ping HTTP/1.1\r\nHost: docker\r\n\r\n"  # the server's 400, not ours
    clients = []
    for req in (request, too_old):
        c = socket.socket(socket.AF_UNIX)
        c.connect(path)
        c.sendall(req)
        clients.append(c)
    assert _ask(path, b"GET /_ping HTTP/1.1\r\n\r\n").endswith(b"OK")  # answered meanwhile
    listeners, held = listener.take_over()
    try:
        assert list(listeners) == [path] and len(held) == 2
        firsts = sorted(conn.recv(4096) for conn in held)  # every byte still there to be read
        assert firsts == sorted([request, too_old])
    finally:
        for sock in [*held, *clients, *listeners.values()]:
            sock.close()


def test_plain_tcp_beyond_loopback_is_refused_before_anything_listens() -> None:
    check_host("tcp://127.0.0.1:2375", False, False)
    check_host("unix:///run/berth.sock", False, False)
    check_host("tcp://0.0.0.0:2376", True, False)
    with pytest.raises(InvalidParameter, match="refusing to listen on tcp://0.0.0.0:2375 without TLS"):
        check_host("tcp://0.0.0.0:2375", False, False)
