"""stdcopy demultiplexing, JSON progress streams, host parsing."""

from __future__ import annotations

import pytest

from berth.client.jsonstream import JSONStreamDecoder, message_error
from berth.client.stdcopy import STDERR, STDOUT, SYSTEMERR, Demuxer, frame
from berth.client.transport import Endpoint, TLSOptions, parse_host, tls_options
from berth.errors import InvalidParameter, SystemFailure


def test_demux_frames_split_anywhere():
    data = frame(1, b"out\n") + frame(2, b"err\n") + frame(0, b"echo") + frame(1, b"")
    for step in (1, 3, 7, 8, 9, len(data)):
        d = Demuxer()
        got = []
        for i in range(0, len(data), step):
            got += d.feed(data[i : i + step])
        assert got == [(STDOUT, b"out\n"), (STDERR, b"err\n"), (STDOUT, b"echo"), (STDOUT, b"")]
        assert d.pending == 0


def test_demux_keeps_incomplete_frame_and_reports_errors():
    d = Demuxer()
    assert d.feed(frame(3, b"bad thing")[:10]) == []
    assert d.pending == 10
    assert d.feed(frame(3, b"bad thing")[10:]) == [(SYSTEMERR, b"bad thing")]
    with pytest.raises(SystemFailure, match="unrecognized stream type 9"):
        Demuxer().feed(b"\x09\x00\x00\x00\x00\x00\x00\x01x")


def test_demux_large_frame_length_is_big_endian():
    payload = b"x" * 70000
    assert Demuxer().feed(frame(2, payload)) == [(STDERR, payload)]
    assert frame(1, payload)[4:8] == (70000).to_bytes(4, "big")


def test_json_stream_any_whitespace_and_split_utf8():
    d = JSONStreamDecoder()
    raw = '{"status":"Pulling"}\r\n{"stream":"caf\u00e9"}\n  {"aux":{"ID":"sha256:1"}}'.encode()
    got = []
    for i in range(len(raw)):
        got += d.feed(raw[i : i + 1])
    d.close()
    assert got == [{"status": "Pulling"}, {"stream": "caf\u00e9"}, {"aux": {"ID": "sha256:1"}}]


def test_json_stream_truncated_value_is_an_error():
    d = JSONStreamDecoder()
    assert d.feed(b'{"status":"a"}{"sta') == [{"status": "a"}]
    with pytest.raises(SystemFailure, match="truncated"):
        d.close()


def test_message_error_prefers_error_detail():
    assert message_error({"errorDetail": {"message": "unknown blob"}, "error": "legacy"}) == "unknown blob"
    assert message_error({"error": "only legacy"}) == "only legacy"
    assert message_error({"status": "ok"}) is None


@pytest.mark.parametrize(
    ("text", "scheme", "address"),
    [
        ("unix:///run/berth/berth.sock", "unix", "/run/berth/berth.sock"),
        ("/tmp/x.sock", "unix", "/tmp/x.sock"),
        ("tcp://127.0.0.1:2375", "tcp", "127.0.0.1:2375"),
        ("tcp://127.0.0.1", "tcp", "127.0.0.1:2375"),
        ("tcp://:4000", "tcp", "127.0.0.1:4000"),
        ("127.0.0.1:4000", "tcp", "127.0.0.1:4000"),
        ("tcp://[::1]:4000", "tcp", "[::1]:4000"),
        ("fd://3", "fd", "3"),
        ("", "unix", "/run/berth/berth.sock"),
    ],
)
def test_parse_host(text, scheme, address):
    ep = parse_host(text)
    assert (ep.scheme, ep.address) == (scheme, address)


def test_parse_host_tls_default_port_and_errors():
    assert parse_host("tcp://h", TLSOptions(verify=True)).address == "h:2376"
    assert parse_host("tcp://h", TLSOptions(verify=True)) == Endpoint(
        "tcp", "h:2376", TLSOptions(verify=True)
    )
    for bad in ("ssh://x", "unix://", "fd://x", "tcp://h:port", "tcp://h:1/path"):
        with pytest.raises(InvalidParameter):
            parse_host(bad)


def test_tls_options_from_flags_and_env(tmp_path):
    assert tls_options({}) is None
    (tmp_path / "ca.pem").write_text("x")
    (tmp_path / "cert.pem").write_text("x")
    opts = tls_options({"BERTH_TLS_VERIFY": "1", "BERTH_CERT_PATH": str(tmp_path)})
    assert opts == TLSOptions(True, str(tmp_path / "ca.pem"), str(tmp_path / "cert.pem"), None)
    plain = tls_options({"BERTH_CERT_PATH": str(tmp_path)}, tls=True, key="/k.pem")
    assert plain is not None and not plain.verify and plain.key == "/k.pem"


def test_fd_endpoint_carries_one_connection():
    import socket

    a, b = socket.socketpair()
    try:
        ep = parse_host(f"fd://{a.fileno()}")
        s = ep.connect()
        s.sendall(b"x")
        assert b.recv(1) == b"x"
        from berth.errors import Unavailable

        with pytest.raises(Unavailable, match="one connection only"):
            ep.connect()
        s.detach()  # the fd still belongs to `a`
    finally:
        a.close()
        b.close()
