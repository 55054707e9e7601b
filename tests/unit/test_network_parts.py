"""The network driver's pure parts: subnets, IPAM, port specs, hosts/resolv.conf, nft rules."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from berth.drivers.network import files, firewall, ports, subnets
from berth.drivers.network.ipam import AddressPool, default_gateway
from berth.drivers.network.model import Network, PortMapping, mac_for, valid_mac
from berth.errors import Forbidden, InvalidParameter, Unavailable

N = ipaddress.IPv4Network


# -- subnets ---------------------------------------------------------------------------------
def test_pick_skips_host_routes_addresses_and_nameservers() -> None:
    taken = subnets.host_taken(
        routes=["0.0.0.0/0", "172.17.0.0/16", "192.0.2.0/24"],
        addresses=["172.18.0.5/24", "127.0.0.1/8"],
        nameservers=["172.19.3.3", "not-an-ip"],
    )
    assert N("0.0.0.0/0") not in taken  # the default route overlaps everything: ignored
    assert str(subnets.pick(subnets.DEFAULT_POOLS, taken)) == "172.20.0.0/16"


def test_check_free() -> None:
    taken = subnets.host_taken(["192.0.2.0/24"], ["198.51.100.7/24"], [])
    for bad in ("192.0.2.0/24", "192.0.0.0/16", "198.51.100.128/25"):
        with pytest.raises(InvalidParameter, match="overlaps"):
            subnets.check_free(N(bad), taken, "--bip")
    subnets.check_free(N("10.9.0.0/24"), taken, "--bip")


def test_pick_from_custom_pool_and_exhaustion() -> None:
    pools = subnets.parse_pools(["base=10.9.0.0/23,size=24"])
    assert str(subnets.pick(pools, [N("10.9.0.0/24")])) == "10.9.1.0/24"
    with pytest.raises(Unavailable):
        subnets.pick(pools, [N("10.9.0.0/16")])
    with pytest.raises(InvalidParameter):
        subnets.parse_pool("size=24")
    with pytest.raises(InvalidParameter):
        subnets.parse_pool("base=10.0.0.0/16,size=8")
    assert subnets.parse_pools([]) == subnets.DEFAULT_POOLS


# -- IPAM ------------------------------------------------------------------------------------
def test_serial_allocation_skips_gateway_network_broadcast_and_wraps() -> None:
    pool = AddressPool("10.1.0.0/29", "10.1.0.1")
    used: set[str] = set()
    got = []
    last = ""
    for _ in range(5):
        ip = pool.allocate(used, last)
        used.add(ip)
        got.append(ip)
        last = ip
    assert got == ["10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5", "10.1.0.6"]
    with pytest.raises(Unavailable):
        pool.allocate(used, last)
    used.discard("10.1.0.3")
    # a released address is given again only after the others (serial, wrapping)
    assert pool.allocate(used, last) == "10.1.0.3"


def test_requested_addresses_and_ip_range() -> None:
    pool = AddressPool("10.1.0.0/24", "10.1.0.1", ip_range="10.1.0.128/25", reserved=["10.1.0.200"])
    assert pool.allocate(set(), "") == "10.1.0.128"
    assert pool.allocate(set(), "", requested="10.1.0.7") == "10.1.0.7"  # anywhere in the subnet
    with pytest.raises(Forbidden, match="Address already in use"):
        pool.allocate({"10.1.0.7"}, "", requested="10.1.0.7")
    with pytest.raises(Forbidden):
        pool.allocate(set(), "", requested="10.1.0.1")  # the gateway
    with pytest.raises(Forbidden):
        pool.allocate(set(), "", requested="10.1.0.200")  # auxiliary
    with pytest.raises(InvalidParameter, match="does not belong"):
        pool.allocate(set(), "", requested="10.2.0.7")
    with pytest.raises(InvalidParameter):
        pool.allocate(set(), "", requested="bogus")
    assert default_gateway("10.5.0.0/16") == "10.5.0.1"


def test_mac_addresses() -> None:
    assert mac_for("10.200.1.2") == "02:42:0a:c8:01:02"
    assert valid_mac("92:d0:c6:0a:29:33") and not valid_mac("93:d0:c6:0a:29:33") and not valid_mac("1:2:3")


# -- ports -----------------------------------------------------------------------------------
def test_port_specs() -> None:
    got = ports.requested(
        {
            "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}, {"HostIp": "", "HostPort": ""}],
            "53/udp": [{"HostIp": "0.0.0.0", "HostPort": "5353"}],
            "90": [{"HostPort": "9000-9010"}],
        },
        {"80/tcp": {}, "443/tcp": {}, "53/udp": {}},
        publish_all=True,
    )
    assert got == [
        PortMapping("udp", 53, "", 5353),
        PortMapping("tcp", 80, "127.0.0.1", 8080),
        PortMapping("tcp", 80, "", 0),
        PortMapping("tcp", 90, "", 9000, 9010),
        PortMapping("tcp", 443),  # -P: exposed without a binding
    ]
    for bad in ({"70000/tcp": []}, {"80/icmp": []}, {"80/tcp": [{"HostPort": "x"}]}, {"80/tcp": [{"HostPort": "90-80"}]}):
        with pytest.raises(InvalidParameter, match="invalid port specification"):
            ports.validate(bad, None)
    with pytest.raises(InvalidParameter):
        ports.validate({"80/tcp": [{"HostIp": "nope", "HostPort": "1"}]}, None)
    with pytest.raises(InvalidParameter, match="IPv6"):
        ports.validate({"80/tcp": [{"HostIp": "::1", "HostPort": "1"}]}, None)
    assert ports.requested({"80/tcp": [{"HostIp": "::", "HostPort": "1"}]}, None, False)[0].host_ip == ""


def test_port_views() -> None:
    maps = [PortMapping("tcp", 80, "127.0.0.1", 8080), PortMapping("tcp", 80, "", 49153)]
    assert ports.docker_ports({"80/tcp": {}, "22/tcp": {}}, maps) == {
        "22/tcp": None,
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}, {"HostIp": "0.0.0.0", "HostPort": "49153"}],
    }
    assert ports.ps_ports({"22/tcp": {}}, maps[:1]) == [
        {"PrivatePort": 22, "Type": "tcp"},
        {"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
    ]
    assert ports.from_docker(ports.docker_ports(None, maps)) == maps


# -- files -----------------------------------------------------------------------------------
def test_resolv_conf_bridge_and_user_network() -> None:
    host = files.parse_resolv("# c\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch a.example b.example\noptions edns0\n")
    assert files.resolv_conf(host, embedded=False) == (
        "search a.example b.example\nnameserver 10.0.0.2\noptions edns0\n"
    )
    assert files.resolv_conf(host, embedded=True) == (
        "search a.example b.example\nnameserver 127.0.0.11\noptions edns0 ndots:0\n"
    )
    only_local = files.parse_resolv("nameserver 127.0.0.53\n")
    assert "nameserver 8.8.8.8\nnameserver 8.8.4.4\n" in files.resolv_conf(only_local, embedded=False)
    given = files.resolv_conf(host, False, dns=["10.9.9.9"], dns_search=["."], dns_options=["ndots:3"])
    assert given == "nameserver 10.9.9.9\noptions ndots:3\n"
    assert files.upstreams(host) == ["127.0.0.53", "10.0.0.2"] and files.upstreams(host, ["1.1.1.1"]) == ["1.1.1.1"]


def test_hosts_file_and_extra_hosts() -> None:
    extra = [files.parse_extra_host(h, "10.1.0.1") for h in ("db:10.1.0.9", "gw:host-gateway", "six=::1")]
    assert extra == [("db", "10.1.0.9"), ("gw", "10.1.0.1"), ("six", "::1")]
    text = files.hosts_file([("10.1.0.2", files.own_names("web", "example.com"))], extra)
    assert text.startswith(files.HOSTS_HEADER)
    assert text.endswith("10.1.0.9\tdb\n10.1.0.1\tgw\n::1\tsix\n10.1.0.2\tweb.example.com web\n")
    for bad in ("nohost", ":10.0.0.1", "h:notanip"):
        with pytest.raises(InvalidParameter):
            files.parse_extra_host(bad, "10.1.0.1")
    with pytest.raises(InvalidParameter, match="host-gateway"):
        files.parse_extra_host("gw:host-gateway", "")


# -- nftables --------------------------------------------------------------------------------
def test_table_rules() -> None:
    nets = [
        firewall.Net("berth0", "10.1.0.0/24"),
        firewall.Net("br-int", "10.2.0.0/24", internal=True, icc=False),
        firewall.Net("br-nomasq", "10.3.0.0/24", masquerade=False),
    ]
    dnats = [firewall.Dnat("tcp", "127.0.0.1", 8080, "10.1.0.2", 80), firewall.Dnat("udp", "", 53, "10.1.0.3", 5353)]
    text = firewall.render(firewall.Table("berth-x", nets, outbound=True, dnats=dnats))
    lines = [line.strip() for line in text.splitlines()]
    assert lines[:3] == ["table ip berth-x {}", "delete table ip berth-x", "table ip berth-x {"]
    assert 'set bridges { type ifname; elements = { "berth0", "br-int", "br-nomasq" }; }' in lines
    assert "map dnat_ip { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; elements = { 127.0.0.1 . tcp . 8080 : 10.1.0.2 . 80 }; }" in lines
    assert "map dnat_any { type inet_proto . inet_service : ipv4_addr . inet_service; elements = { udp . 53 : 10.1.0.3 . 5353 }; }" in lines
    assert 'ip saddr 10.1.0.0/24 oifname != "berth0" masquerade' in lines
    assert not any("10.2.0.0/24 oifname !=" in line or "10.3.0.0/24 oifname !=" in line for line in lines)
    assert 'iifname "br-int" oifname != "br-int" drop' in lines and 'oifname "br-int" iifname != "br-int" drop' in lines
    assert 'iifname "br-int" oifname "br-int" drop' in lines  # icc=false
    assert "iifname @bridges ip daddr 127.0.0.0/8 drop" in lines
    assert not any("oifname != @bridges drop" in line for line in lines)
    closed = firewall.render(firewall.Table("berth-x", nets[:1], outbound=False))
    assert 'iifname "berth0" oifname != @bridges drop' in closed and "oifname != \"berth0\" masquerade" not in closed
    assert firewall.render_bridge("berth-x").strip().endswith("delete table bridge berth-x")
    assert firewall.elements("delete", "berth-x", dnats[:1]) == "delete element ip berth-x dnat_ip { 127.0.0.1 . tcp . 8080 }\n"


def test_network_record_roundtrip_and_docker_view() -> None:
    net = Network(
        id="a" * 64, name="bridge", driver="bridge", created="t", subnet="10.1.0.0/24", gateway="10.1.0.1",
        bridge="berth0", default=True,
    )  # fmt: skip
    assert Network.from_json(net.to_json()) == net
    assert net.ipam_config() == [{"Subnet": "10.1.0.0/24", "Gateway": "10.1.0.1"}]
    assert net.docker_options()["com.docker.network.bridge.name"] == "berth0"
    user = Network(
        id="b" * 64, name="u", driver="bridge", created="t", subnet="10.2.0.0/24", gateway="10.2.0.1",
        bridge="br-bbbbbbbbbbbb", ipam_config_given=({"Subnet": "10.2.0.0/24"},),
    )  # fmt: skip
    assert user.user_defined and user.ipam_config() == [{"Subnet": "10.2.0.0/24"}]
    six = Network(
        id="c" * 64, name="six", driver="bridge", created="t", subnet="10.3.0.0/24", gateway="10.3.0.1",
        bridge="br-cccccccccccc", enable_ipv6=True, subnet6="fd42:e8d:b4::/64", gateway6="fd42:0e8d:00b4::1",
        ipam_config_given=({"Subnet": "10.3.0.0/24"}, {"Subnet": "fd42:0e8d:00b4::/64", "Gateway": "fd42:0e8d:00b4::1"}),
    )  # fmt: skip
    # the IPv6 subnet as given (dockerd 20.10 keeps the user's string), not the parsed short form
    assert six.ipam_config()[1] == {"Subnet": "fd42:0e8d:00b4::/64", "Gateway": "fd42:0e8d:00b4::1"}


def test_a_network_file_is_replaced_unless_it_holds_the_text_already(tmp_path: Path) -> None:
    """hosts/resolv.conf at a start: written to a temporary file and renamed over the old one,
    except when the old one is a 0644 regular file with the same bytes (the create's, for
    `--network none`): then it is left as it is (no write, no rename on the start's path)."""
    import os

    from berth.drivers.network.driver import _atomic_write

    path = tmp_path / "hosts"
    _atomic_write(path, "one\n")
    assert path.read_text() == "one\n" and os.stat(path).st_mode & 0o777 == 0o644
    inode = os.stat(path).st_ino
    _atomic_write(path, "one\n")
    assert os.stat(path).st_ino == inode  # the same file: not rewritten
    _atomic_write(path, "two\n")
    assert path.read_text() == "two\n" and os.stat(path).st_ino != inode
    inode = os.stat(path).st_ino
    os.chmod(path, 0o600)
    _atomic_write(path, "two\n")  # the same text but not readable by the container's users: replaced
    assert os.stat(path).st_ino != inode and os.stat(path).st_mode & 0o777 == 0o644
    target = tmp_path / "target"
    target.write_text("two\n")
    os.chmod(target, 0o644)
    link = tmp_path / "resolv.conf"
    link.symlink_to(target)
    _atomic_write(link, "two\n")  # a symlink is never taken for the file: replaced by one
    assert not link.is_symlink() and link.read_text() == "two\n"
