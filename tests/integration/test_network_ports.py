"""Published ports: DNAT in berth's own table (no proxy process), from 127.0.0.1, from a container
through a host address (hairpin), UDP, -P, ranges, `docker port`, ps PORTS, a port already taken.
Ports are published on 127.0.0.1 or on the test bridge's own gateway address only."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
import urllib.request

import harness

HTTPD = "mkdir -p /www && echo hello-$HOSTNAME > /www/index.html && exec httpd -f -p 80 -h /www"


def ok(r):  # type: ignore[no-untyped-def]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r


def get(url: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - 127.0.0.1 / own bridge only
                return resp.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def nft_elements(d: harness.Berthd) -> str:
    r = subprocess.run(["nft", "list", "table", "ip", d.nft_table], capture_output=True, text=True)
    return "".join(line for line in r.stdout.splitlines() if ":" in line and "." in line and "type" not in line)


def test_publish_on_loopback_port_and_ps(berthd: harness.Berthd, busybox_image: str) -> None:
    port = harness.free_tcp_port()
    ok(berthd.docker("run", "-d", "--name", "web", "--hostname", "w1", "-p", f"127.0.0.1:{port}:80", busybox_image, "sh", "-c", HTTPD))
    assert get(f"http://127.0.0.1:{port}/") == "hello-w1\n"
    assert ok(berthd.docker("port", "web")).stdout == f"80/tcp -> 127.0.0.1:{port}\n"
    assert ok(berthd.docker("port", "web", "80")).stdout == f"127.0.0.1:{port}\n"
    r = ok(berthd.docker("ps", "--format", "{{.Ports}}"))
    assert r.stdout.strip() == f"127.0.0.1:{port}->80/tcp"
    ns = json.loads(ok(berthd.docker("inspect", "web")).stdout)[0]["NetworkSettings"]
    assert ns["Ports"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    # the port is held: no host process can take it while it is published
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            taken = False
        except OSError:
            taken = True
    assert taken
    # no proxy: nothing of berth listens on the port
    r = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True)
    assert r.stdout.strip() == ""
    ok(berthd.docker("run", "-d", "--name", "other", "--expose", "81", busybox_image, "sleep", "60"))
    names = lambda f: ok(berthd.docker("ps", "--filter", f, "--format", "{{.Names}}")).stdout.split()  # noqa: E731
    assert names(f"publish={port}") == ["web"] and names("publish=80") == [] and names(f"publish={port}/udp") == []
    assert names("expose=80") == ["web"] and names("expose=81") == ["other"] and names("expose=79-81/tcp") == ["other", "web"]
    ok(berthd.docker("rm", "-f", "other"))
    ok(berthd.docker("stop", "-t", "0", "web"))
    assert nft_elements(berthd) == ""
    assert ok(berthd.docker("ps", "-a", "--format", "{{.Ports}}")).stdout.strip() == ""
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # released with the container
    # started again: published again
    ok(berthd.docker("start", "web"))
    assert get(f"http://127.0.0.1:{port}/") == "hello-w1\n"


def test_publish_all_and_ranges_and_udp(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("run", "-d", "--name", "all", "--expose", "80", "--expose", "81/udp", "-P", busybox_image, "sh", "-c", HTTPD))
    ports = json.loads(ok(berthd.docker("inspect", "all")).stdout)[0]["NetworkSettings"]["Ports"]
    assert set(ports) == {"80/tcp", "81/udp"}
    # -P without an address: the daemon's --ip (the harness gives 127.0.0.1)
    assert ports["80/tcp"][0]["HostIp"] == "127.0.0.1" and int(ports["80/tcp"][0]["HostPort"]) > 1024
    assert get(f"http://127.0.0.1:{ports['80/tcp'][0]['HostPort']}/").startswith("hello-")
    # a range: the first free port of it (the first one is held by this test)
    first = harness.free_tcp_port()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", first))
        ok(berthd.docker("run", "-d", "--name", "rng", "-p", f"127.0.0.1:{first}-{first + 5}:80", busybox_image, "sh", "-c", HTTPD))
    got = ok(berthd.docker("port", "rng", "80")).stdout.strip()
    assert got.startswith("127.0.0.1:") and first < int(got.rsplit(":", 1)[1]) <= first + 5
    # UDP
    uport = harness.free_tcp_port()
    # UDP: with nothing listening in the container, its kernel answers "port unreachable"; were
    # the datagram not DNATed, berth's own socket holding the port would swallow it silently
    ok(berthd.docker("run", "-d", "--name", "udp", "-p", f"127.0.0.1:{uport}:5353/udp", busybox_image, "sleep", "60"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(2)
        u.connect(("127.0.0.1", uport))
        u.send(b"ping-udp\n")
        try:
            u.recv(100)
            refused = False
        except ConnectionRefusedError:
            refused = True
    assert refused


def test_hairpin_through_a_host_address(berthd: harness.Berthd, busybox_image: str) -> None:
    """A container reaches a published port through a host address (the bridge's gateway), both
    another container's and its own."""
    port = harness.free_tcp_port()
    ok(berthd.docker("run", "-d", "--name", "srv", "--hostname", "srv", "-p", f"{berthd.gateway}:{port}:80", busybox_image, "sh", "-c", HTTPD))
    assert get(f"http://{berthd.gateway}:{port}/") == "hello-srv\n"
    r = ok(berthd.docker("run", "--rm", busybox_image, "sh", "-c", f"for i in 1 2 3 4 5; do timeout 3 wget -q -O- http://{berthd.gateway}:{port}/ && break; sleep 0.2; done"))
    assert r.stdout == "hello-srv\n"
    r = ok(berthd.docker("exec", "srv", "sh", "-c", f"timeout 3 wget -q -O- http://{berthd.gateway}:{port}/"))
    assert r.stdout == "hello-srv\n"


def test_port_taken_fails_cleanly(berthd: harness.Berthd, busybox_image: str) -> None:
    port = harness.free_tcp_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen(1)
        r = berthd.docker("run", "-d", "--name", "clash", "-p", f"127.0.0.1:{port}:80", busybox_image, "sleep", "60")
        assert r.returncode == 125
        assert "driver failed programming external connectivity on endpoint clash" in r.stderr
        assert f"127.0.0.1:{port}: bind: address already in use" in r.stderr
        state = json.loads(ok(berthd.docker("inspect", "clash")).stdout)[0]["State"]
        assert state["Status"] == "created" and "address already in use" in state["Error"]
        assert list((berthd.exec_root / "netns").iterdir()) == []
        assert nft_elements(berthd) == "" and harness.bridge_ports(berthd.bridge) == []
        # --rm: removed after the failed start
        r = berthd.docker("run", "--rm", "-p", f"127.0.0.1:{port}:80", busybox_image, "true")
        assert r.returncode == 125
    ok(berthd.docker("start", "clash"))  # free now
    # a second container on the same port: Docker's "already allocated"
    r = berthd.docker("run", "-d", "--name", "clash2", "-p", f"127.0.0.1:{port}:80", busybox_image, "sleep", "60")
    assert r.returncode == 125 and f"Bind for 127.0.0.1:{port} failed: port is already allocated" in r.stderr
    # an all-addresses binding conflicts with it too
    r = berthd.docker("run", "-d", "-p", f"{port}:80", busybox_image, "sleep", "60")
    assert r.returncode == 125 and "port is already allocated" in r.stderr
    names = ok(berthd.docker("ps", "-a", "--format", "{{.Names}}")).stdout.split()
    # the created-but-failed ones stay, as with Docker: clash2 and the unnamed one (a generated name,
    # which may sort anywhere among them)
    assert len(names) == 3 and {"clash", "clash2"} <= set(names), names


def test_bad_port_specs_are_400(berthd: harness.Berthd, busybox_image: str) -> None:
    for bad in ({"70000/tcp": [{"HostPort": "1"}]}, {"80/tcp": [{"HostPort": "notaport"}]}):
        status, body = berthd.api(
            "POST", "/v1.41/containers/create", {"Image": busybox_image, "Cmd": ["true"], "HostConfig": {"PortBindings": bad}}
        )
        assert status == 400 and "invalid port specification" in body["message"], body


def test_dockerpy_ports(berthd: harness.Berthd, busybox_image: str) -> None:
    port = harness.free_tcp_port()
    client = berthd.client()
    c = client.containers.run(busybox_image, ["sh", "-c", HTTPD], detach=True, hostname="py", ports={"80/tcp": ("127.0.0.1", port)})
    with contextlib.ExitStack():
        c.reload()
        assert c.ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
        assert get(f"http://127.0.0.1:{port}/") == "hello-py\n"
        c.remove(force=True)
    assert nft_elements(berthd) == ""
