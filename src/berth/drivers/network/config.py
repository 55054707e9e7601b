"""The network driver's settings (from berthd's flags) and what a container asks for.

    cfg = NetworkConfig(tag="1a2b3c4d", exec_root=Path("/run/berth"), bridge="berth0")
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from berth.drivers.network.model import DEFAULT_MTU, PortMapping
from berth.drivers.network.subnets import DEFAULT_POOLS, Pool

DEFAULT_BRIDGE = "berth0"


def daemon_tag(data_root: Path) -> str:
    """Names berth gives host-wide things of one daemon (its nftables tables)."""
    return hashlib.sha256(str(data_root).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class NetworkConfig:
    tag: str
    exec_root: Path
    bridge: str = DEFAULT_BRIDGE  # "none": no default bridge network
    bip: str = ""  # the default bridge's address and prefix, "10.1.0.1/24"
    fixed_cidr: str = ""  # containers' addresses on the default bridge come from here
    mtu: int = DEFAULT_MTU
    pools: tuple[Pool, ...] = DEFAULT_POOLS
    ip_forward: bool = True  # may set net.ipv4.ip_forward=1 (logged); False: no outbound traffic
    ip_masq: bool = True
    icc: bool = True
    host_ip: str = ""  # --ip: where -p without an address publishes ("" = every address)
    dns: tuple[str, ...] = ()  # daemon-wide --dns defaults
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    host_resolv_conf: Path = Path("/etc/resolv.conf")
    host_hosts: Path = Path("/etc/hosts")
    lock_path: Path = Path("/run/berth-network.lock")

    @property
    def table(self) -> str:
        return f"berth-{self.tag}"

    @property
    def netns_dir(self) -> Path:
        return self.exec_root / "netns"


@dataclass(frozen=True)
class EndpointRequest:
    """What a container asks of one network (Docker's EndpointSettings at create/connect)."""

    network: str  # name, id or id prefix
    aliases: tuple[str, ...] = ()
    ipv4: str = ""
    ipv6: str = ""
    mac: str = ""
    # EndpointSettings.Links on a user network: (target name, alias), the alias resolved to the
    # target's address by name when asked (so the target may come later), for this container only
    links: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class AttachRequest:
    """A container about to start: everything the network driver needs from its record."""

    container_id: str
    name: str
    hostname: str
    domainname: str = ""
    mode: str = "bridge"  # bridge | none | host | container (then owner)
    owner: str = ""  # container mode: the id whose namespace is joined
    owner_dir: str = ""  # and its container dir (its hosts and resolv.conf)
    endpoints: tuple[EndpointRequest, ...] = ()
    ports: tuple[PortMapping, ...] = ()
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    extra_hosts: tuple[str, ...] = ()
    links: tuple[tuple[str, str, str], ...] = ()  # (target id, target name, alias) of --link
    files_dir: Path = field(default_factory=Path)  # hosts and resolv.conf are written here
    # the container's user namespace maps ({"uid": [[c, h, n]...], "gid": [...]}, --userns-remap):
    # its network namespace is made inside a user namespace with them (netns.create)
    userns: dict[str, list[list[int]]] | None = None
