"""berthd SIGKILLed in the middle of network work: after the restart no veth, lease, rule or
namespace is leaked, and a running container keeps what its record says it has."""

from __future__ import annotations

import json
import subprocess
import time

import harness


def ok(r):  # type: ignore[no-untyped-def]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r


def crash_at(d: harness.Berthd, point: str, *docker_args: str) -> None:
    d.stop()
    d.env_extra["BERTH_CRASH_AT"] = point
    d.start()
    r = d.docker(*docker_args)
    assert r.returncode != 0, "the daemon should have died at the crash point"
    deadline = time.monotonic() + 10
    while d.proc is not None and d.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    del d.env_extra["BERTH_CRASH_AT"]
    d.start()


def settled_ports(bridge: str, want: int, timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        ports = harness.bridge_ports(bridge)
        if len(ports) == want or time.monotonic() > deadline:
            return ports
        time.sleep(0.05)


def dnat_elements(d: harness.Berthd) -> list[str]:
    r = subprocess.run(["nft", "-j", "list", "table", "ip", d.nft_table], capture_output=True, text=True, check=True)
    out = []
    for item in json.loads(r.stdout)["nftables"]:
        m = item.get("map")
        if m and m.get("elem"):
            out += [json.dumps(e) for e in m["elem"]]
    return out


def test_killed_while_starting_leaks_nothing(berthd: harness.Berthd, busybox_image: str) -> None:
    port = harness.free_tcp_port()
    crash_at(berthd, "start.after-network", "run", "-d", "--name", "victim", "-p", f"127.0.0.1:{port}:80", busybox_image, "sleep", "100")
    assert ok(berthd.docker("inspect", "-f", "{{.State.Status}}", "victim")).stdout.strip() == "created"
    assert list((berthd.exec_root / "netns").iterdir()) == []
    assert settled_ports(berthd.bridge, 0) == []
    assert dnat_elements(berthd) == []
    assert json.loads(ok(berthd.docker("network", "inspect", "bridge")).stdout)[0]["Containers"] == {}
    # the port and the address are free again: the container starts with them
    ok(berthd.docker("start", "victim"))
    assert ok(berthd.docker("port", "victim")).stdout == f"80/tcp -> 127.0.0.1:{port}\n"
    assert len(dnat_elements(berthd)) == 1


def test_killed_in_connect_and_disconnect(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("network", "create", "cnet"))
    ok(berthd.docker("run", "-d", "--name", "hot", busybox_image, "sleep", "300"))
    # connect cut short after the driver, before the record: the endpoint goes at restart
    crash_at(berthd, "connect.after-driver", "network", "connect", "cnet", "hot")
    assert "eth1" not in ok(berthd.docker("exec", "hot", "ip", "-o", "link")).stdout
    assert json.loads(ok(berthd.docker("network", "inspect", "cnet")).stdout)[0]["Containers"] == {}
    assert "cnet" not in json.loads(ok(berthd.docker("inspect", "hot")).stdout)[0]["NetworkSettings"]["Networks"]
    bridge = json.loads(ok(berthd.docker("network", "inspect", "cnet")).stdout)[0]["Id"][:12]
    assert settled_ports(f"br-{bridge}", 0) == []
    # a real connect, then a disconnect cut short: the record still names the network, the
    # endpoint is gone, and disconnecting again completes it
    ok(berthd.docker("network", "connect", "cnet", "hot"))
    crash_at(berthd, "disconnect.after-driver", "network", "disconnect", "cnet", "hot")
    assert "eth1" not in ok(berthd.docker("exec", "hot", "ip", "-o", "link")).stdout
    assert json.loads(ok(berthd.docker("network", "inspect", "cnet")).stdout)[0]["Containers"] == {}
    ok(berthd.docker("network", "disconnect", "cnet", "hot"))
    ok(berthd.docker("network", "rm", "cnet"))
    # the running container kept its default bridge address through both restarts
    assert ok(berthd.docker("exec", "hot", "ip", "-4", "-o", "addr", "show", "eth0")).stdout.count("inet ") == 1


def test_ports_and_dns_come_back_after_a_kill(berthd: harness.Berthd, busybox_image: str) -> None:
    import socket
    import urllib.request

    port = harness.free_tcp_port()
    ok(berthd.docker("network", "create", "keepnet"))
    ok(berthd.docker("run", "-d", "--name", "web", "--network", "keepnet", "-p", f"127.0.0.1:{port}:80", busybox_image,
                     "sh", "-c", "mkdir /w; echo kept > /w/index.html; exec httpd -f -p 80 -h /w"))  # fmt: skip
    ok(berthd.docker("run", "-d", "--name", "asker", "--network", "keepnet", busybox_image, "sleep", "300"))
    berthd.kill9()
    # while the daemon is away the DNAT rules stay (live restore)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:  # noqa: S310
        assert resp.read() == b"kept\n"
    berthd.start()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:  # noqa: S310
        assert resp.read() == b"kept\n"
    with socket.socket() as s:  # held again by the restarted daemon
        try:
            s.bind(("127.0.0.1", port))
            held = False
        except OSError:
            held = True
    assert held
    r = ok(berthd.docker("exec", "asker", "nslookup", "web"))
    assert "Address" in r.stdout.split("web")[-1]
    assert ok(berthd.docker("port", "web")).stdout == f"80/tcp -> 127.0.0.1:{port}\n"


def test_killed_while_a_run_rm_network_is_released_leaks_nothing(berthd: harness.Berthd, busybox_image: str) -> None:
    """A --rm container's store rows and namespace file are released in the background after
    its exit (the run is answered meanwhile): killed there, the daemon's start-up releases them."""
    port = harness.free_tcp_port()
    berthd.stop()
    berthd.env_extra["BERTH_CRASH_AT"] = "exit.network-later"
    berthd.start()
    before = set((berthd.exec_root / "netns").iterdir())
    berthd.docker("run", "--rm", "--name", "brief", "-p", f"127.0.0.1:{port}:80", busybox_image, "true")
    harness.eventually(lambda: berthd.proc is not None and berthd.proc.poll() is not None, 10)
    assert berthd.proc is not None and berthd.proc.returncode == -9, "the daemon must have killed itself at the point"
    assert set((berthd.exec_root / "netns").iterdir()) - before, "the kill must have left its namespace file"
    del berthd.env_extra["BERTH_CRASH_AT"]
    berthd.start()
    assert list((berthd.exec_root / "netns").iterdir()) == []
    assert settled_ports(berthd.bridge, 0) == []
    assert dnat_elements(berthd) == []
    assert json.loads(ok(berthd.docker("network", "inspect", "bridge")).stdout)[0]["Containers"] == {}
    assert ok(berthd.docker("ps", "-aq")).stdout == ""
    # the name, the port and the address are free: the same run works
    r = ok(berthd.docker("run", "--rm", "--name", "brief", "-p", f"127.0.0.1:{port}:80", busybox_image, "echo", "again"))
    assert r.stdout == "again\n"
