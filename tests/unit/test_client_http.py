"""berth.client.http + api against a scripted unix-socket server: bodies, keep-alive, hijack, errors."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid

import pytest

from berth import errors
from berth.client.api import Client, encode_query, quote
from berth.client.fake import FakeDaemon
from berth.client.transport import parse_host


@pytest.fixture
def sock_path(tmp_path):
    # unix socket paths are limited to ~108 bytes: keep it short and unique
    path = f"/tmp/bct-{uuid.uuid4().hex[:10]}.sock"
    yield path
    try:
        import os

        os.unlink(path)
    except FileNotFoundError:
        pass


def serve(path, handler, api_version="1.45"):
    return FakeDaemon(path, handler, api_version)


def client_for(daemon, version=None):
    return Client(parse_host(daemon.url), api_version=version)


def test_content_length_body_and_negotiated_prefix(sock_path):
    def handler(req, reply):
        if req.path == "/_ping":
            reply.send(200, b"", {"Content-Type": "text/plain"})
        else:
            reply.json(200, [{"Id": "abc"}])

    with serve(sock_path, handler, "1.44") as daemon:
        client = client_for(daemon)
        assert client.call("GET", "/containers/json", query={"all": "1"}) == [{"Id": "abc"}]
        client.close()
    assert [r.target for r in daemon.requests] == ["/_ping", "/v1.44/containers/json?all=1"]
    assert daemon.requests[0].method == "HEAD"


def test_version_is_capped_at_client_max_and_defaults_without_header(sock_path):
    def handler(req, reply):
        if req.path == "/_ping":
            # a daemon newer than the client: use the client's maximum
            reply.sock.sendall(b"HTTP/1.1 200 OK\r\nApi-Version: 1.99\r\nContent-Length: 0\r\n\r\n")
        else:
            reply.json(200, {})

    with serve(sock_path, handler) as daemon:
        client = client_for(daemon)
        assert client.version == "1.50"
        client.close()

    def no_header(req, reply):
        reply.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")

    with serve(sock_path, no_header) as daemon:
        client = client_for(daemon)
        assert client.version == "1.24"
        client.close()


def test_head_ping_refused_falls_back_to_get(sock_path):
    def handler(req, reply):
        if req.method == "HEAD":
            reply.error(405, "method not allowed")
        else:
            reply.send(200, b"OK")

    with serve(sock_path, handler, "1.41") as daemon:
        client = client_for(daemon)
        assert client.version == "1.41"
        client.close()
    assert [r.method for r in daemon.requests] == ["HEAD", "GET"]


def test_chunked_response_split_at_awkward_boundaries(sock_path):
    payload = json.dumps([{"Id": "x" * 5000, "Names": ["/a"]}]).encode()

    def handler(req, reply):
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        body = b"%x\r\n%s\r\n" % (len(payload), payload) + b"0\r\n\r\n"
        data = head + body
        # dribble the bytes so every parser state sees a split read
        for i in range(0, len(data), 7):
            reply.sock.sendall(data[i : i + 7])
            if i % 700 == 0:
                time.sleep(0.001)

    with serve(sock_path, handler) as daemon:
        client = client_for(daemon, version="1.45")
        assert client.call("GET", "/containers/json") == json.loads(payload)
        client.close()


def test_keep_alive_reuses_one_connection(sock_path):
    def handler(req, reply):
        reply.json(200, {"n": len(daemon.requests)})

    daemon = serve(sock_path, handler)
    with daemon:
        client = client_for(daemon, version="1.45")
        for _ in range(3):
            client.call("GET", "/info")
        client.close()
    assert {r.conn_no for r in daemon.requests} == {1}


def test_pending_response_forces_a_new_connection(sock_path):
    release = threading.Event()

    def handler(req, reply):
        if req.route.endswith("/wait"):
            reply.begin_chunked()
            release.wait(5)
            reply.chunk(b'{"Error":null,"StatusCode":3}\n')
            reply.end_chunked()
        else:
            reply.send(204)
            release.set()

    with serve(sock_path, handler) as daemon:
        client = client_for(daemon, version="1.45")
        waiter = client.open("POST", "/containers/c/wait", query={"condition": "next-exit"})
        client.call("POST", "/containers/c/start")
        assert waiter.json() == {"Error": None, "StatusCode": 3}
        client.close()
    wait_req, start_req = daemon.requests
    assert wait_req.conn_no != start_req.conn_no
    assert wait_req.query == {"condition": "next-exit"}


def test_body_until_eof_when_no_length(sock_path):
    def handler(req, reply):
        reply.sock.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it")
        reply.close_after = True

    with serve(sock_path, handler) as daemon:
        client = client_for(daemon, version="1.45")
        resp = client.open("GET", "/x")
        assert resp.read() == b"all of it"
        client.close()


def test_chunked_request_body_is_received_intact(sock_path):
    got = {}

    def handler(req, reply):
        got["body"] = req.body
        got["te"] = req.headers.get("transfer-encoding")
        reply.json(200, {"status": "sha256:abc"})

    with serve(sock_path, handler) as daemon:
        client = client_for(daemon, version="1.45")
        parts = [b"a" * 10, b"", b"b" * 70000, b"c"]
        resp = client.open("POST", "/images/create", query={"fromSrc": "-"}, body=iter(parts))
        assert resp.json() == {"status": "sha256:abc"}
        client.close()
    assert got == {"body": b"".join(parts), "te": "chunked"}


def test_hijack_keeps_bytes_after_101_and_half_closes(sock_path):
    got = {}

    def handler(req, reply):
        got["upgrade"] = (req.headers.get("connection"), req.headers.get("upgrade"))
        sock = reply.upgrade()
        sock.sendall(b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n")  # may arrive with the 101 head
        got["stdin"] = reply.read_stdin()  # returns once the client half-closes
        sock.sendall(b"after-eof")
        sock.shutdown(socket.SHUT_WR)

    with serve(sock_path, handler) as daemon:
        client = client_for(daemon, version="1.45")
        raw = client.hijack("/containers/c/attach", query={"stream": "1", "stdin": "1"})
        raw.sendall(b"input")
        raw.close_write()
        data = b""
        while chunk := raw.recv():
            data += chunk
        raw.close()
        client.close()
    assert got == {"upgrade": ("Upgrade", "tcp"), "stdin": b"input"}
    assert data == b"\x01\x00\x00\x00\x00\x00\x00\x03hi\nafter-eof"


def test_hijack_refused_with_200_is_an_error(sock_path):
    with serve(sock_path, lambda req, reply: reply.send(200, b"")) as daemon:
        client = client_for(daemon, version="1.45")
        with pytest.raises(errors.SystemFailure, match="unable to upgrade to tcp, received 200"):
            client.hijack("/exec/e/start", json_body={"Detach": False})
        client.close()


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.InvalidParameter),
        (401, errors.Unauthorized),
        (403, errors.Forbidden),
        (404, errors.NotFound),
        (409, errors.Conflict),
        (500, errors.SystemFailure),
        (501, errors.Unimplemented),
        (503, errors.Unavailable),
        (418, errors.InvalidParameter),
    ],
)
def test_status_maps_to_error_class_with_daemon_message(sock_path, status, cls):
    with serve(sock_path, lambda req, reply: reply.error(status, f"boom {status}")) as daemon:
        client = client_for(daemon, version="1.45")
        with pytest.raises(cls) as info:
            client.call("GET", "/containers/x/json")
        client.close()
    assert info.value.message == f"boom {status}"
    assert info.value.http_status == status


def test_error_body_is_raw_text_unless_exactly_application_json(sock_path):
    body = b'{"message":"No such container: x"}'

    def handler(req, reply):
        reply.send(404, body, {"Content-Type": "application/json; charset=utf-8"})

    with serve(sock_path, handler) as daemon:
        client = client_for(daemon, version="1.45")
        with pytest.raises(errors.NotFound) as info:
            client.call("GET", "/containers/x/json")
        client.close()
    assert info.value.message == body.decode()


def test_empty_error_body_gets_dockers_version_hint(sock_path):
    with serve(sock_path, lambda req, reply: reply.send(404, b"")) as daemon:
        client = client_for(daemon, version="1.45")
        with pytest.raises(errors.NotFound, match="check if the server supports the requested API version"):
            client.call("GET", "/nope")
        client.close()


def test_no_daemon_is_unavailable_with_dockers_text(tmp_path):
    client = Client(parse_host(f"unix://{tmp_path}/absent.sock"))
    with pytest.raises(errors.Unavailable) as info:
        client.call("GET", "/containers/json")
    assert info.value.message == (
        f"Cannot connect to the berth daemon at unix://{tmp_path}/absent.sock. Is the berth daemon running?"
    )
    assert getattr(info.value, "http_status", None) is None


def test_stale_keep_alive_connection_is_replayed_once(sock_path):
    def handler(req, reply):
        reply.json(200, {"ok": True})
        reply.close_after = True  # the daemon drops the connection after each reply

    with serve(sock_path, handler) as daemon:
        client = client_for(daemon, version="1.45")
        assert client.call("GET", "/info") == {"ok": True}
        time.sleep(0.05)
        assert client.call("GET", "/info") == {"ok": True}
        client.close()
    assert len({r.conn_no for r in daemon.requests}) == 2


def test_query_encoding_matches_go():
    assert quote("a b/c:d") == "a+b%2Fc%3Ad"
    assert encode_query({"b": "1", "a": ["x", "y"], "skip": None}) == "a=x&a=y&b=1"
    assert encode_query({"changes": 'CMD ["sh"]'}) == "changes=CMD+%5B%22sh%22%5D"


def test_socket_without_permission_says_so(tmp_path, monkeypatch):
    from berth.client import transport

    class Refusing:
        def __init__(self, *args):
            pass

        def settimeout(self, t):
            pass

        def connect(self, target):
            raise PermissionError(13, "Permission denied")

        def close(self):
            pass

    monkeypatch.setattr(transport._socket, "socket", Refusing)
    with pytest.raises(
        errors.Forbidden, match="permission denied while trying to connect to the berth daemon socket"
    ):
        parse_host(f"unix://{tmp_path}/s.sock").connect()
