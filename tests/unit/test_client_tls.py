"""tcp:// and TLS (--tls, --tlsverify, client certificates) against the fake daemon on 127.0.0.1."""

from __future__ import annotations

import shutil
import ssl
import subprocess

import pytest

from berth.cli.main import main
from berth.client.fake import FakeDaemon

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="openssl is needed to make test certificates"
)


def make_cert(directory, name, cn="127.0.0.1"):
    key, cert = directory / f"{name}-key.pem", directory / f"{name}.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={cn}",
            "-addext",
            f"subjectAltName=IP:{cn}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def handler(req, reply):
    if req.route == "/_ping":
        return reply.send(200, b"OK")
    return reply.json(200, [])


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    server = make_cert(d, "server")
    client = make_cert(d, "client")
    other = make_cert(d, "other")
    return {"server": server, "client": client, "other": other}


def server_context(certs, require_client=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*certs["server"])
    if require_client:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(certs["client"][0])
    return ctx


def test_plain_tcp(capsys, monkeypatch):
    monkeypatch.delenv("BERTH_TLS_VERIFY", raising=False)
    with FakeDaemon("unused", handler, tcp=True) as daemon:
        code = main(["-H", daemon.url, "ps", "-q"])
    assert code == 0
    assert daemon.requests[0].headers["host"] == f"127.0.0.1:{daemon.port}"


def test_tlsverify_with_ca(capsys, certs, monkeypatch):
    monkeypatch.delenv("BERTH_TLS_VERIFY", raising=False)
    with FakeDaemon("unused", handler, tcp=True, ssl_context=server_context(certs)) as daemon:
        code = main(["--tlsverify", "--tlscacert", str(certs["server"][0]), "-H", daemon.url, "ps", "-q"])
        assert code == 0, capsys.readouterr().err
        # --tls alone encrypts without verifying the server
        assert main(["--tls", "-H", daemon.url, "ps", "-q"]) == 0
        # the wrong CA is refused
        code = main(["--tlsverify", "--tlscacert", str(certs["other"][0]), "-H", daemon.url, "ps"])
        err = capsys.readouterr().err
        assert (
            code == 1 and "TLS handshake with tcp://127.0.0.1" in err and "CERTIFICATE_VERIFY_FAILED" in err
        )


def test_client_certificate_and_env(capsys, certs, monkeypatch, tmp_path):
    # BERTH_CERT_PATH holds ca.pem, cert.pem, key.pem as DOCKER_CERT_PATH does
    shutil.copy(certs["server"][0], tmp_path / "ca.pem")
    shutil.copy(certs["client"][0], tmp_path / "cert.pem")
    shutil.copy(certs["client"][1], tmp_path / "key.pem")
    monkeypatch.setenv("BERTH_TLS_VERIFY", "1")
    monkeypatch.setenv("BERTH_CERT_PATH", str(tmp_path))
    ctx = server_context(certs, require_client=True)
    with FakeDaemon("unused", handler, tcp=True, ssl_context=ctx) as daemon:
        monkeypatch.setenv("BERTH_HOST", daemon.url)
        assert main(["ps", "-q"]) == 0, capsys.readouterr().err
        (tmp_path / "cert.pem").unlink()
        (tmp_path / "key.pem").unlink()
        capsys.readouterr()
        assert main(["ps", "-q"]) == 1  # no client certificate: the daemon refuses the handshake
        err = capsys.readouterr().err
        assert err.startswith(
            ("TLS handshake with tcp://127.0.0.1", "error during connect: HEAD tcp://127.0.0.1")
        ), err


def test_hijacked_stdin_half_closes_over_tls(capsys, certs, monkeypatch):
    """TLS has no SHUT_WR: the client sends close_notify and keeps reading the output."""
    import os

    from berth.client.stdcopy import frame

    eid = "e" * 64
    got = {}

    def tls_handler(req, reply):
        if req.route == "/_ping":
            return reply.send(200, b"OK")
        if req.route == "/containers/web/json":
            return reply.json(200, {"Id": "c"})
        if req.route == "/containers/web/exec":
            return reply.json(201, {"Id": eid})
        if req.route == f"/exec/{eid}/start":
            sock = reply.upgrade()
            sock.sendall(frame(2, b"early\n"))  # output already on the wire when stdin ends
            got["stdin"] = reply.read_stdin()  # returns at the client's close_notify
            sock.sendall(frame(1, b"after eof: " + got["stdin"]))
            sock.close()
            return None
        return reply.json(200, {"Running": False, "ExitCode": 0})

    monkeypatch.delenv("BERTH_TLS_VERIFY", raising=False)
    r, w = os.pipe()
    os.write(w, b"typed input\n")
    os.close(w)
    stdin = os.fdopen(r, "rb")
    monkeypatch.setattr("sys.stdin", stdin)
    try:
        with FakeDaemon("unused", tls_handler, tcp=True, ssl_context=server_context(certs)) as daemon:
            code = main(["--tls", "-H", daemon.url, "exec", "-i", "web", "cat"])
    finally:
        stdin.close()
    out, err = capsys.readouterr()
    assert (code, err) == (0, "early\n")
    assert got["stdin"] == b"typed input\n"
    assert out == "after eof: typed input\n"


def test_daemon_that_stops_reading_stdin_cannot_block_output_over_tls(capsys, certs, monkeypatch):
    """Output ends the session even while megabytes of stdin are still unsent."""
    import os
    import threading

    from berth.client.stdcopy import frame

    eid = "e" * 64

    def tls_handler(req, reply):
        if req.route == "/_ping":
            return reply.send(200, b"OK")
        if req.route == "/containers/web/json":
            return reply.json(200, {"Id": "c"})
        if req.route == "/containers/web/exec":
            return reply.json(201, {"Id": eid})
        if req.route == f"/exec/{eid}/start":
            sock = reply.upgrade()
            sock.sendall(frame(1, b"bye\n"))  # never reads stdin
            import time

            time.sleep(0.3)
            sock.close()
            return None
        return reply.json(200, {"Running": False, "ExitCode": 0})

    monkeypatch.delenv("BERTH_TLS_VERIFY", raising=False)
    r, w = os.pipe()

    def feeder():
        try:
            with os.fdopen(w, "wb") as fh:
                fh.write(b"z" * (8 << 20))
        except BrokenPipeError:
            pass  # the CLI finished and closed its end: expected

    t = threading.Thread(target=feeder, daemon=True)
    t.start()
    stdin = os.fdopen(r, "rb")
    monkeypatch.setattr("sys.stdin", stdin)
    try:
        with FakeDaemon("unused", tls_handler, tcp=True, ssl_context=server_context(certs)) as daemon:
            code = main(["--tls", "-H", daemon.url, "exec", "-i", "web", "cat"])
    finally:
        stdin.close()
    out, _ = capsys.readouterr()
    assert (code, out) == (0, "bye\n")
