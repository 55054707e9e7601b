"""docker-compose 1.29 (Debian's package) against berthd: two services on the project's network
reaching each other by service name, a named volume, a port published on 127.0.0.1, and the
everyday commands (ps, logs, exec, stop, start, restart, run --rm, down -v)."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

import harness

COMPOSE = shutil.which("docker-compose")

FILE = """\
version: "3.7"
services:
  web:
    image: busybox:latest
    command: ["sh", "-c", "mkdir -p /www && echo hello-compose > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports:
      - "127.0.0.1:{port}:80"
    volumes:
      - data:/data
  client:
    image: busybox:latest
    command: ["sleep", "300"]
    depends_on: [web]
volumes:
  data: {{}}
"""


def compose(d: harness.Berthd, workdir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    assert COMPOSE is not None
    return subprocess.run(
        [COMPOSE, "-p", "proj", *args], cwd=workdir, env=d.env, capture_output=True, text=True, timeout=timeout
    )


def ok(r):  # type: ignore[no-untyped-def]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r


@pytest.mark.skipif(COMPOSE is None, reason="docker-compose (Debian package) is not installed: bash scripts/setup.sh")
def test_compose_two_services(berthd: harness.Berthd, busybox_image: str, tmp_path: Path) -> None:
    port = harness.free_tcp_port()
    (tmp_path / "docker-compose.yml").write_text(FILE.format(port=port))
    try:
        ok(compose(berthd, tmp_path, "up", "-d"))
        ps = ok(compose(berthd, tmp_path, "ps")).stdout
        assert "proj_web_1" in ps and "proj_client_1" in ps and "Up" in ps
        # the client reaches the web service by its name on the project's network
        r = ok(compose(berthd, tmp_path, "exec", "-T", "client", "sh", "-c", "for i in 1 2 3 4 5; do timeout 3 wget -q -O- http://web/ && break; sleep 0.3; done"))
        assert r.stdout == "hello-compose\n"
        # and the host reaches the published port
        deadline = time.monotonic() + 5
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:  # noqa: S310
                    assert resp.read() == b"hello-compose\n"
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert "proj_default" in ok(berthd.docker("network", "ls", "--format", "{{.Name}}")).stdout
        assert "proj_data" in ok(berthd.docker("volume", "ls", "--format", "{{.Name}}")).stdout
        ok(compose(berthd, tmp_path, "logs", "web"))
        r = ok(compose(berthd, tmp_path, "run", "--rm", "client", "sh", "-c", "nslookup web >/dev/null && echo resolved"))
        assert "resolved" in r.stdout
        ok(compose(berthd, tmp_path, "stop"))
        assert "Exit" in ok(compose(berthd, tmp_path, "ps")).stdout
        ok(compose(berthd, tmp_path, "start"))
        ok(compose(berthd, tmp_path, "restart", "-t", "1"))
        r = ok(compose(berthd, tmp_path, "exec", "-T", "client", "sh", "-c", "for i in 1 2 3 4 5; do timeout 3 wget -q -O- http://web/ && break; sleep 0.3; done"))
        assert r.stdout == "hello-compose\n"
    finally:
        down = compose(berthd, tmp_path, "down", "-v", "-t", "1")
    ok(down)
    assert "proj_default" not in ok(berthd.docker("network", "ls", "--format", "{{.Name}}")).stdout
    assert "proj_data" not in ok(berthd.docker("volume", "ls", "--format", "{{.Name}}")).stdout
    assert ok(berthd.docker("ps", "-aq")).stdout == ""
