"""User-defined networks: create/inspect/rm/prune with Docker's checks, --ip, aliases, several
networks per container, connect/disconnect of running containers, the embedded DNS server, and
isolation between networks. Subnets come from the harness's own pools (10.2xx); names resolve
only inside the test's networks; forwarded lookups go to a fake resolver on 127.0.0.x."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from collections.abc import Iterator

import pytest
from dnslib import QTYPE, RR, A, DNSRecord  # type: ignore[import-untyped]

import harness


def ok(r):  # type: ignore[no-untyped-def]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r


def inspect_net(d: harness.Berthd, name: str) -> dict:  # type: ignore[type-arg]
    return json.loads(ok(d.docker("network", "inspect", name)).stdout)[0]


def free_subnet(d: harness.Berthd, third: int) -> str:
    """A /24 next to the daemon's bridge subnet (its 10.20x.y/24 is reserved for it alone)."""
    base = ipaddress.ip_network(d.subnet)
    return str(ipaddress.ip_network(f"10.{206 + third}.{base.network_address.packed[2]}.0/24"))


def test_create_inspect_remove(berthd: harness.Berthd, busybox_image: str) -> None:
    r = ok(berthd.docker("network", "create", "--label", "env=test", "-o", "com.docker.network.bridge.name=bhu" + berthd.bridge[-6:], "appnet"))
    nid = r.stdout.strip()
    net = inspect_net(berthd, "appnet")
    assert net["Id"] == nid and net["Driver"] == "bridge" and net["Labels"] == {"env": "test"}
    (cfg,) = net["IPAM"]["Config"]
    subnet = ipaddress.ip_network(cfg["Subnet"])
    assert subnet.subnet_of(ipaddress.ip_network("10.204.0.0/14")) and cfg["Gateway"] == str(subnet.network_address + 1)
    bridge = "bhu" + berthd.bridge[-6:]
    assert harness.link_exists(bridge)
    assert ok(berthd.docker("network", "ls", "--filter", "label=env=test", "--format", "{{.Name}}")).stdout == "appnet\n"
    assert ok(berthd.docker("network", "ls", "--filter", "type=custom", "-q")).stdout.strip() == nid[:12]
    # a container on it; Containers in inspect; rm refused while it runs
    ok(berthd.docker("run", "-d", "--name", "c1", "--network", "appnet", busybox_image, "sleep", "60"))
    net = inspect_net(berthd, "appnet")
    (entry,) = net["Containers"].values()
    assert entry["Name"] == "c1" and ipaddress.ip_interface(entry["IPv4Address"]).network == subnet
    r = berthd.docker("network", "rm", "appnet")
    assert r.returncode == 1 and "has active endpoints" in r.stderr
    ok(berthd.docker("rm", "-f", "c1"))
    assert ok(berthd.docker("network", "rm", "appnet")).stdout.strip() == "appnet"
    assert not harness.link_exists(bridge)
    # prune takes unused user networks only
    ok(berthd.docker("network", "create", "p1"))
    ok(berthd.docker("network", "create", "p2"))
    ok(berthd.docker("create", "--name", "holder", "--network", "p2", busybox_image, "true"))
    assert ok(berthd.docker("network", "prune", "-f")).stdout == "Deleted Networks:\np1\n\n"
    assert [n for n in ok(berthd.docker("network", "ls", "--format", "{{.Name}}")).stdout.split() if n.startswith("p")] == ["p2"]


def test_create_errors(berthd: harness.Berthd) -> None:
    sub = free_subnet(berthd, 0)
    ok(berthd.docker("network", "create", "--subnet", sub, "one"))
    r = berthd.docker("network", "create", "one")
    assert r.returncode == 1 and "network with name one already exists" in r.stderr
    r = berthd.docker("network", "create", "--subnet", sub, "two")
    assert r.returncode == 1 and "Pool overlaps with other one on this address space" in r.stderr
    status, body = berthd.api("POST", "/v1.41/networks/create", {"Name": "three", "IPAM": {"Config": [{"Subnet": free_subnet(berthd, 1), "Gateway": "10.99.99.1"}]}})
    assert status == 400 and "Requested address is out of range" in body["message"]
    status, body = berthd.api("POST", "/v1.41/networks/create", {"Name": "four", "IPAM": {"Config": [{"Subnet": berthd.subnet}]}})
    assert status == 403  # the daemon's own bridge has it
    status, _ = berthd.api("POST", "/v1.41/networks/create", {"Name": "five", "IPAM": {"Config": [{"Subnet": "bogus"}]}})
    assert status == 400
    names = ok(berthd.docker("network", "ls", "--format", "{{.Name}}")).stdout.split()
    assert sorted(names) == ["bridge", "host", "none", "one"]  # nothing half created


def test_static_ip_aliases_and_dns(berthd: harness.Berthd, busybox_image: str) -> None:
    sub = ipaddress.ip_network(free_subnet(berthd, 2))
    ok(berthd.docker("network", "create", "--subnet", str(sub), "--ip-range", str(list(sub.subnets(new_prefix=25))[1]), "dnsnet"))
    fixed = str(sub.network_address + 10)
    cid = ok(berthd.docker("run", "-d", "--name", "db", "--network", "dnsnet", "--ip", fixed, "--network-alias", "database", busybox_image, "sleep", "120")).stdout.strip()
    r = ok(berthd.docker("run", "--rm", "--network", "dnsnet", "--dns", "127.0.0.1", busybox_image, "sh", "-c",
                         "cat /etc/resolv.conf; for n in db database " + cid[:12] + "; do nslookup $n | tail -n +3; done; ip -4 -o addr show eth0"))  # fmt: skip
    assert "nameserver 127.0.0.11" in r.stdout and "ndots:0" in r.stdout
    assert r.stdout.count(f"Address: {fixed}") == 3, r.stdout
    dyn = ipaddress.ip_interface([w for w in r.stdout.split() if "/" in w and w.startswith("10.")][-1])
    assert dyn.ip in list(sub.subnets(new_prefix=25))[1]  # dynamic addresses from the ip-range
    ns = json.loads(ok(berthd.docker("inspect", "db")).stdout)[0]["NetworkSettings"]
    ep = ns["Networks"]["dnsnet"]
    assert ep["IPAddress"] == fixed and ep["IPAMConfig"] == {"IPv4Address": fixed}
    assert ep["Aliases"] == ["database", cid[:12]] and ns["IPAddress"] == ""  # not on the default bridge
    # the address is taken: a second container asking for it fails, nothing left
    r = berthd.docker("run", "--rm", "--network", "dnsnet", "--ip", fixed, busybox_image, "true")
    assert r.returncode == 125 and "Address already in use" in r.stderr
    r = berthd.docker("run", "--rm", "--network", "dnsnet", "--ip", "10.1.2.3", busybox_image, "true")
    assert r.returncode == 125 and "does not belong" in r.stderr
    r = berthd.docker("run", "--rm", "--ip", "10.1.2.3", busybox_image, "true")
    assert r.returncode == 125 and "user specified IP address is supported on user defined networks only" in r.stderr
    # reverse lookups of a container address name the container on that network
    # (--dns 127.0.0.1: were a query forwarded, it would stay on this machine)
    r = ok(berthd.docker("run", "--rm", "--network", "dnsnet", "--dns", "127.0.0.1", busybox_image, "nslookup", fixed))
    assert "db.dnsnet" in r.stdout
    # the default bridge has no embedded DNS
    r = berthd.docker("run", "--rm", busybox_image, "sh", "-c", "grep -c 127.0.0.11 /etc/resolv.conf")
    assert r.stdout.strip() == "0"


def test_isolation_between_networks(berthd: harness.Berthd, busybox_image: str, fake_resolver: str) -> None:
    ok(berthd.docker("network", "create", "--subnet", free_subnet(berthd, 3), "neta"))
    ok(berthd.docker("network", "create", "--subnet", free_subnet(berthd, 4), "netb"))
    ok(berthd.docker("run", "-d", "--name", "ina", "--network", "neta", busybox_image, "sh", "-c", "mkdir /w; echo a > /w/index.html; exec httpd -f -p 80 -h /w"))
    ip_a = inspect_net(berthd, "neta")["Containers"].popitem()[1]["IPv4Address"].split("/")[0]
    same = ok(berthd.docker("run", "--rm", "--network", "neta", busybox_image, "sh", "-c", "for i in 1 2 3 4 5; do nslookup ina 127.0.0.11 >/dev/null && timeout 3 wget -q -O- http://ina/ && break; sleep 0.3; done; exit $?"))
    assert same.stdout == "a\n"
    # from another network the name is unknown (the query goes on to the upstream, here a fake
    # resolver on 127.0.0.x that answers 10.77.7.7 for anything) and the address unreachable
    other = berthd.docker("run", "--rm", "--network", "netb", "--dns", fake_resolver, busybox_image, "sh", "-c",
                          f"nslookup ina; timeout 3 wget -q -O- http://{ip_a}/; exit $?")  # fmt: skip
    assert other.returncode != 0 and "10.77.7.7" in other.stdout and ip_a not in other.stdout
    # (`; exit $?`: a last simple command would be exec'd as pid 1, which busybox timeout cannot kill)
    bridge = berthd.docker("run", "--rm", busybox_image, "sh", "-c", f"timeout 3 wget -q -O- http://{ip_a}/; exit $?")
    assert bridge.returncode != 0  # nor from the default bridge


def test_connect_disconnect_running_container(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("network", "create", "--subnet", free_subnet(berthd, 5), "side"))
    ok(berthd.docker("run", "-d", "--name", "multi", busybox_image, "sleep", "120"))
    ok(berthd.docker("network", "connect", "--alias", "m2", "side", "multi"))
    r = ok(berthd.docker("exec", "multi", "ip", "-4", "-o", "addr"))
    assert " eth0 " in r.stdout and " eth1 " in r.stdout
    ns = json.loads(ok(berthd.docker("inspect", "multi")).stdout)[0]["NetworkSettings"]
    assert set(ns["Networks"]) == {"bridge", "side"} and ns["Networks"]["side"]["IPAddress"]
    # reachable by its alias from the new network
    r = ok(berthd.docker("run", "--rm", "--network", "side", busybox_image, "nslookup", "m2", "127.0.0.11"))
    assert ns["Networks"]["side"]["IPAddress"] in r.stdout
    r = berthd.docker("network", "connect", "side", "multi")
    assert r.returncode == 1 and "endpoint with name multi already exists in network side" in r.stderr
    ok(berthd.docker("network", "disconnect", "side", "multi"))
    r = ok(berthd.docker("exec", "multi", "ip", "-o", "link"))
    assert "eth1" not in r.stdout
    r = berthd.docker("network", "disconnect", "side", "multi")
    assert r.returncode == 1 and "is not connected to network side" in r.stderr
    # a stopped container: connect is recorded and applied at start
    ok(berthd.docker("create", "--name", "later", busybox_image, "sleep", "60"))
    ok(berthd.docker("network", "connect", "side", "later"))
    ok(berthd.docker("start", "later"))
    r = ok(berthd.docker("exec", "later", "ip", "-4", "-o", "addr"))
    assert " eth1 " in r.stdout
    assert inspect_net(berthd, "side")["Containers"].popitem()[1]["Name"] == "later"


def test_several_networks_at_create_and_internal(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("network", "create", "--internal", "--subnet", free_subnet(berthd, 6), "priv"))
    r = ok(berthd.docker("run", "--rm", "--network", "priv", busybox_image, "ip", "route"))
    assert "default" not in r.stdout  # no way out of an internal network
    status, body = berthd.api("POST", "/v1.41/containers/create?name=both", {
        "Image": busybox_image, "Cmd": ["sleep", "60"], "HostConfig": {"NetworkMode": "bridge"},
        "NetworkingConfig": {"EndpointsConfig": {"bridge": {}, "priv": {"Aliases": ["p"]}}},
    })  # fmt: skip
    assert status == 201, body
    ok(berthd.docker("start", "both"))
    r = ok(berthd.docker("exec", "both", "ip", "-4", "-o", "addr"))
    assert " eth0 " in r.stdout and " eth1 " in r.stdout


@pytest.fixture
def fake_resolver() -> Iterator[str]:
    """A DNS server on a loopback address of its own that answers every A query with 10.77.7.7."""
    addr = "127.53.0." + str(2 + threading.get_ident() % 200)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((addr, 53))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            q = DNSRecord.parse(data)
            reply = q.reply()
            if q.q.qtype == QTYPE.A:
                reply.add_answer(RR(q.q.qname, QTYPE.A, rdata=A("10.77.7.7"), ttl=5))
            sock.sendto(reply.pack(), peer)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield addr
    stop.set()
    t.join()
    sock.close()


def test_dns_forwards_other_names(berthd: harness.Berthd, busybox_image: str, fake_resolver: str) -> None:
    ok(berthd.docker("network", "create", "--subnet", free_subnet(berthd, 7), "fwd"))
    r = ok(berthd.docker("run", "--rm", "--network", "fwd", "--dns", fake_resolver, busybox_image, "sh", "-c", "cat /etc/resolv.conf; nslookup some.example.test 127.0.0.11"))
    assert "nameserver 127.0.0.11" in r.stdout and fake_resolver not in r.stdout.split("Server")[0]
    assert "10.77.7.7" in r.stdout


def test_berth_cli_network_commands(berthd: harness.Berthd, busybox_image: str) -> None:
    sub = free_subnet(berthd, 8)
    nid = ok(berthd.berth("network", "create", "--subnet", sub, "--label", "k=v", "bnet")).stdout.strip()
    assert len(nid) == 64
    r = ok(berthd.berth("network", "ls", "--filter", "label=k=v"))
    assert r.stdout.splitlines() == ["NETWORK ID     NAME      DRIVER    SCOPE", f"{nid[:12]}   bnet      bridge    local"]
    assert json.loads(ok(berthd.berth("network", "inspect", "bnet")).stdout)[0]["IPAM"]["Config"][0]["Subnet"] == sub
    ok(berthd.docker("run", "-d", "--name", "bc", busybox_image, "sleep", "60"))
    ok(berthd.berth("network", "connect", "--alias", "x", "bnet", "bc"))
    assert ok(berthd.berth("inspect", "-f", "{{.NetworkSettings.Networks.bnet.Aliases}}", "bc")).stdout.startswith("[x ")
    ok(berthd.berth("network", "disconnect", "bnet", "bc"))
    assert ok(berthd.berth("network", "rm", "bnet")).stdout == "bnet\n"
    r = berthd.berth("network", "rm", "bnet")
    assert r.returncode == 1 and "network bnet not found" in r.stderr


def test_dockerpy_networks(berthd: harness.Berthd, busybox_image: str) -> None:
    import docker  # type: ignore[import-untyped]

    client = berthd.client()
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=free_subnet(berthd, 9))])
    net = client.networks.create("pynet", driver="bridge", ipam=ipam, labels={"py": "1"})
    assert net.attrs["IPAM"]["Config"][0]["Subnet"] == free_subnet(berthd, 9)
    assert [n.name for n in client.networks.list(names=["pynet"])] == ["pynet"]
    c = client.containers.run(busybox_image, "sleep 60", detach=True, name="pyc", network="pynet")
    net.reload()
    assert [x.name for x in net.containers] == ["pyc"]
    other = client.containers.run(busybox_image, "sleep 60", detach=True, name="pyd")
    net.connect(other, aliases=["dee"])
    r = ok(berthd.docker("exec", "pyc", "nslookup", "dee"))
    other.reload()
    assert other.attrs["NetworkSettings"]["Networks"]["pynet"]["IPAddress"] in r.stdout
    net.disconnect(other)
    c.remove(force=True)
    other.remove(force=True)
    net.remove()
    assert client.networks.list(names=["pynet"]) == []
    with pytest.raises(docker.errors.NotFound):
        client.networks.get("pynet")


def test_ipv6_network(berthd: harness.Berthd, busybox_image: str) -> None:
    import os

    # a group with a leading zero: dockerd shows the subnet as given, not in its short form
    v6 = f"fd42:0{os.urandom(2).hex()[1:]}:{os.urandom(2).hex()}::/64"
    ok(berthd.docker("network", "create", "--ipv6", "--subnet", free_subnet(berthd, 10), "--subnet", v6, "six"))
    cfg = json.loads(ok(berthd.docker("network", "inspect", "six")).stdout)[0]
    assert cfg["EnableIPv6"] is True and [c["Subnet"] for c in cfg["IPAM"]["Config"]] == [free_subnet(berthd, 10), v6]
    fixed = str(ipaddress.ip_network(v6).network_address + 0x42)
    ok(berthd.docker("run", "-d", "--name", "s6", "--network", "six", "--ip6", fixed, busybox_image, "sleep", "120"))
    ns = json.loads(ok(berthd.docker("inspect", "s6")).stdout)[0]["NetworkSettings"]["Networks"]["six"]
    assert ns["GlobalIPv6Address"] == fixed and ns["GlobalIPv6PrefixLen"] == 64
    assert ns["IPv6Gateway"] == str(ipaddress.ip_network(v6).network_address + 1)
    r = ok(berthd.docker("run", "--rm", "--network", "six", busybox_image, "sh", "-c",
                         f"ip -6 -o addr show eth0 scope global; ip -6 route; ping -6 -c 1 -W 2 {fixed}; nslookup -type=aaaa s6; exit $?"))  # fmt: skip
    assert "inet6 fd42:" in r.stdout and f"default via {ns['IPv6Gateway']}" in r.stdout
    assert "1 packets received" in r.stdout and f"Address: {fixed}" in r.stdout
    entry = json.loads(ok(berthd.docker("network", "inspect", "six")).stdout)[0]["Containers"]
    assert [e["IPv6Address"] for e in entry.values()] == [f"{fixed}/64"]
    r = berthd.docker("network", "create", "--ipv6", "--subnet", free_subnet(berthd, 11), "--subnet", v6, "six2")
    assert r.returncode == 1 and "Pool overlaps" in r.stderr
