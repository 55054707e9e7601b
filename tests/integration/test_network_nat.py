"""Outbound NAT and ip_forward, without touching the host: berthd runs inside a network namespace
made for the test, whose only way out is a veth to a second namespace playing "the outside"
(10.250.x.0/30). Masquerade, the ip_forward decision (and its log line), --internal and
--ip-masq=false are observed from that fake outside; nothing leaves the two namespaces."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import harness

PY = str(harness.VENV_BIN / "python")
SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7777)); s.listen(8); s.settimeout(30)
while True:
    c, peer = s.accept()
    c.sendall(f"peer={peer[0]}\\n".encode()); c.close()
"""


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass
class World:
    inner: str  # berthd's namespace
    outer: str  # the fake outside
    inner_ip: str
    outer_ip: str


@pytest.fixture
def world() -> Iterator[World]:
    tag = os.urandom(3).hex()
    inner, outer = f"bhn-{tag}-in", f"bhn-{tag}-out"
    n = int(tag, 16) % 60
    inner_ip, outer_ip = f"10.250.{n}.1", f"10.250.{n}.2"
    server = None
    try:
        ip("netns", "add", inner)
        ip("netns", "add", outer)
        for ns in (inner, outer):
            ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", inner, "link", "add", "up0", "type", "veth", "peer", "name", "up1", "netns", outer)
        ip("-n", inner, "addr", "add", f"{inner_ip}/30", "dev", "up0")
        ip("-n", outer, "addr", "add", f"{outer_ip}/30", "dev", "up1")
        ip("-n", inner, "link", "set", "up0", "up")
        ip("-n", outer, "link", "set", "up1", "up")
        ip("-n", inner, "route", "add", "default", "via", outer_ip)
        server = subprocess.Popen(["ip", "netns", "exec", outer, PY, "-c", SERVER])
        yield World(inner, outer, inner_ip, outer_ip)
    finally:
        if server is not None:
            server.kill()
            server.wait()
        for ns in (inner, outer):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)


def sysctl(ns: str, key: str) -> str:
    r = subprocess.run(["ip", "netns", "exec", ns, "cat", f"/proc/sys/{key}"], capture_output=True, text=True, check=True)
    return r.stdout.strip()


def ok(r):  # type: ignore[no-untyped-def]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r


FETCH = "for i in 1 2 3; do timeout 3 nc {ip} 7777 && break; sleep 0.3; done; exit $?"


def test_masquerade_and_ip_forward(world: World, berthd_factory, busybox_tar) -> None:  # type: ignore[no-untyped-def]
    d = berthd_factory(netns=world.inner, ip_forward=True)
    d.import_image(busybox_tar)
    # nothing forwarded before a container needs it
    assert sysctl(world.inner, "net/ipv4/ip_forward") == "0"
    assert sysctl(world.inner, f"net/ipv4/conf/{d.bridge}/forwarding") == "1"
    r = ok(d.docker("run", "--rm", "busybox", "sh", "-c", FETCH.format(ip=world.outer_ip)))
    # the outside sees the uplink's address, not the container's
    assert r.stdout.strip() == f"peer={world.inner_ip}"
    assert sysctl(world.inner, "net/ipv4/ip_forward") == "1"
    assert "enabled net.ipv4.ip_forward (it was 0)" in d.log_path.read_text()
    # an internal network has no way out
    ok(d.docker("network", "create", "--internal", "--subnet", "10.251.0.0/24", "closed"))
    r = d.docker("run", "--rm", "--network", "closed", "busybox", "sh", "-c", FETCH.format(ip=world.outer_ip))
    assert "peer=" not in r.stdout
    # without masquerade the outside sees the container's own address (given a route back)
    ok(d.docker("network", "create", "--subnet", "10.251.1.0/24", "-o", "com.docker.network.bridge.enable_ip_masquerade=false", "plain"))
    ip("-n", world.outer, "route", "add", "10.251.1.0/24", "via", world.inner_ip)
    r = ok(d.docker("run", "--rm", "--network", "plain", "busybox", "sh", "-c", FETCH.format(ip=world.outer_ip)))
    assert r.stdout.strip().startswith("peer=10.251.1.")
    d.stop()


def test_no_outbound_without_ip_forward(world: World, berthd_factory, busybox_tar) -> None:  # type: ignore[no-untyped-def]
    d = berthd_factory(netns=world.inner, ip_forward=False)
    d.import_image(busybox_tar)
    r = d.docker("run", "--rm", "busybox", "sh", "-c", FETCH.format(ip=world.outer_ip))
    assert "peer=" not in r.stdout
    assert sysctl(world.inner, "net/ipv4/ip_forward") == "0"
    # even with the namespace forwarding: berth's forward chain keeps its bridges in
    subprocess.run(["ip", "netns", "exec", world.inner, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"], check=True)
    time.sleep(0.1)
    r = d.docker("run", "--rm", "busybox", "sh", "-c", FETCH.format(ip=world.outer_ip))
    assert "peer=" not in r.stdout
