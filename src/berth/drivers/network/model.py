"""The network driver's records, as frozen dataclasses (pure; no kernel, no SQLite).

A :class:`Network` is what ``docker network create`` makes (or one of the three built-in ones);
an :class:`Endpoint` is one container's attachment to one network while the container runs (its
address, MAC, host-side veth, aliases); a :class:`PortMapping` is one published port.

    >>> net = Network(id="a" * 64, name="web", driver="bridge", created="2026-01-01T00:00:00Z",
    ...               subnet="10.1.0.0/24", gateway="10.1.0.1", bridge="br-aaaaaaaaaaaa")
    >>> net.is_bridge, net.prefixlen
    (True, 24)
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MTU = 1500
# Docker's option names for the bridge driver (`-o KEY=VALUE` at `network create`)
OPT_BRIDGE_NAME = "com.docker.network.bridge.name"
OPT_ICC = "com.docker.network.bridge.enable_icc"
OPT_MASQ = "com.docker.network.bridge.enable_ip_masquerade"
OPT_HOST_BINDING = "com.docker.network.bridge.host_binding_ipv4"
OPT_DEFAULT_BRIDGE = "com.docker.network.bridge.default_bridge"
OPT_MTU = "com.docker.network.driver.mtu"
OPT_INHIBIT_IPV4 = "com.docker.network.bridge.inhibit_ipv4"
KNOWN_BRIDGE_OPTIONS = (
    OPT_BRIDGE_NAME, OPT_ICC, OPT_MASQ, OPT_HOST_BINDING, OPT_DEFAULT_BRIDGE, OPT_MTU, OPT_INHIBIT_IPV4,
    "com.docker.network.bridge.gateway_mode_ipv4", "com.docker.network.container_iface_prefix",
)  # fmt: skip


@dataclass(frozen=True)
class Network:
    """One network. ``driver`` is ``bridge``, ``host`` or ``null`` (Docker's names).

    ``subnet``/``gateway``/``ip_range`` are IPv4 CIDR/address strings ("" for host and null);
    ``subnet6``/``gateway6`` the optional IPv6 ones. ``bridge`` is the Linux bridge's name.
    ``options`` and ``labels`` are what the user gave (shown by inspect as given)."""

    id: str
    name: str
    driver: str
    created: str
    subnet: str = ""
    gateway: str = ""
    ip_range: str = ""
    bridge: str = ""
    internal: bool = False
    attachable: bool = False
    icc: bool = True
    masquerade: bool = True
    mtu: int = DEFAULT_MTU
    host_binding: str = ""  # default host IP for -p without an IP ("" = all addresses)
    default: bool = False  # the default bridge network ("bridge")
    enable_ipv6: bool = False
    subnet6: str = ""
    gateway6: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    ipam_options: dict[str, str] | None = None  # IPAM.Options as given; None (null) when not given
    ipam_config_given: tuple[dict[str, str], ...] = ()  # the IPAM.Config entries the user gave
    aux_addresses: dict[str, str] = field(default_factory=dict)

    @property
    def is_bridge(self) -> bool:
        return self.driver == "bridge"

    @property
    def user_defined(self) -> bool:
        """User networks get the embedded DNS server and aliases (not the default bridge)."""
        return self.is_bridge and not self.default

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen if self.subnet else 0

    @property
    def prefixlen6(self) -> int:
        return ipaddress.ip_network(self.subnet6).prefixlen if self.subnet6 else 0

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        data = asdict(self)
        data["ipam_config_given"] = list(self.ipam_config_given)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Network:
        data = dict(data)
        data["ipam_config_given"] = tuple(data.get("ipam_config_given") or ())
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def ipam_config(self) -> list[dict[str, Any]]:
        """Docker's ``IPAM.Config``: what was given, completed with what was chosen."""
        if not self.is_bridge:
            return []
        out: list[dict[str, Any]] = []
        if self.subnet:
            entry: dict[str, Any] = {"Subnet": self.subnet}
            given = next((c for c in self.ipam_config_given if c.get("Subnet") == self.subnet), None)
            if self.default or (given and given.get("Gateway")) or not given:
                entry["Gateway"] = self.gateway
            if self.ip_range:
                entry["IPRange"] = self.ip_range
            if given and given.get("AuxiliaryAddresses") and self.aux_addresses:
                # the parsed map (given's entry holds it as text)
                entry["AuxiliaryAddresses"] = dict(self.aux_addresses)
            out.append(entry)
        if self.subnet6:
            # as given, as dockerd shows it ("fd42:0e8d::/64" stays so; berth works on the parsed one)
            entry6 = {"Subnet": next((c["Subnet"] for c in self.ipam_config_given if _is_net6(c.get("Subnet"), self.subnet6)),
                                     self.subnet6)}
            if self.gateway6:
                entry6["Gateway"] = self.gateway6
            out.append(entry6)
        return out

    def docker_options(self) -> dict[str, str]:
        """``Options`` as inspect shows them (the default bridge lists its settings, as dockerd)."""
        if not self.default:
            return dict(self.options)
        return {
            OPT_DEFAULT_BRIDGE: "true",
            OPT_ICC: "true" if self.icc else "false",
            OPT_MASQ: "true" if self.masquerade else "false",
            OPT_HOST_BINDING: self.host_binding or "0.0.0.0",
            OPT_BRIDGE_NAME: self.bridge,
            OPT_MTU: str(self.mtu),
        }


@dataclass(frozen=True)
class PortMapping:
    """One published port: ``host_ip:host_port`` → ``container_port`` over ``proto``.

    ``host_ip`` is "" for every address (shown as 0.0.0.0). ``host_port`` is 0 until allocated;
    ``host_port_end`` > 0 means a range to pick from (``-p 8000-8010:80``)."""

    proto: str  # tcp | udp | sctp
    container_port: int
    host_ip: str = ""
    host_port: int = 0
    host_port_end: int = 0

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.proto}"

    def shown_ip(self) -> str:
        return self.host_ip or "0.0.0.0"


@dataclass(frozen=True)
class Endpoint:
    """A running container's attachment to one network."""

    id: str
    network_id: str
    container_id: str
    container_name: str
    ip: str = ""
    mac: str = ""
    ip6: str = ""
    veth: str = ""  # host-side interface name
    ifname: str = "eth0"  # name inside the container
    aliases: tuple[str, ...] = ()
    requested_ip: str = ""
    requested_ip6: str = ""
    links: tuple[tuple[str, str], ...] = ()  # (target name, alias): the endpoint settings' Links

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        data = asdict(self)
        data["aliases"] = list(self.aliases)
        data["links"] = [list(link) for link in self.links]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Endpoint:
        data = dict(data)
        data["aliases"] = tuple(data.get("aliases") or ())
        data["links"] = tuple((str(t), str(a)) for t, a in data.get("links") or ())
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def mac_for(ip: str) -> str:
    """Docker's MAC for an IPv4 address: ``02:42`` then the four bytes of the address.

    >>> mac_for("172.17.0.3")
    '02:42:ac:11:00:03'
    """
    packed = ipaddress.IPv4Address(ip).packed
    return "02:42:" + ":".join(f"{b:02x}" for b in packed)


def valid_mac(mac: str) -> bool:
    """A unicast EUI-48 address written as six colon-separated hex pairs.

    >>> valid_mac("02:42:ac:11:00:03"), valid_mac("01:00:5e:00:00:01"), valid_mac("zz")
    (True, False, False)
    """
    parts = mac.split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        return False
    try:
        first = int(parts[0], 16)
        for p in parts[1:]:
            int(p, 16)
    except ValueError:
        return False
    return not first & 1


def _is_net6(given: str | None, subnet6: str) -> bool:
    """Whether ``given`` (a ``--subnet`` as the user wrote it) is the IPv6 subnet ``subnet6``."""
    if not given or ":" not in given:
        return False
    try:
        return ipaddress.IPv6Network(given) == ipaddress.IPv6Network(subnet6)
    except ValueError:
        return False
