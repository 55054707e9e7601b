"""A container record ↔ the network driver: what it asks for, and Docker's NetworkSettings.

The record keeps, per network it belongs to, the EndpointSettings the user gave (``Networks``,
keyed by network name, as dockerd's config.v2.json): aliases, ``--ip``, ``--mac-address``. What a
running container got (address, MAC, endpoint id, ports, namespace) lives in the network driver
and is merged in when the container is inspected or listed.

    nets = endpoint_configs(body, host, find)          # at create
    req = attach_request(c, d)                          # at start
    settings = network_settings(c, d.network)           # at inspect
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from berth.container.record import Container
from berth.drivers.network import ports as portspec
from berth.drivers.network.config import AttachRequest, EndpointRequest
from berth.drivers.network.model import Network
from berth.errors import Conflict, InvalidParameter, NotFound

if TYPE_CHECKING:
    from berth.daemon.daemon import Daemon
    from berth.drivers.network.driver import NetworkDriver

Finder = Callable[[str], Network]


def endpoint_links(cfg: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """EndpointSettings.Links (``NAME[:ALIAS]``) as (target name, alias)."""
    out = []
    for link in cfg.get("Links") or ():
        name, _, alias = str(link).partition(":")
        name = name.strip("/")
        if name:
            out.append((name, alias.rsplit("/", 1)[-1] or name))
    return tuple(out)


def mode_of(host: dict[str, Any]) -> str:
    mode = host.get("NetworkMode") or "default"
    return "bridge" if mode == "default" else mode


def _keep(cfg: dict[str, Any], net: Network, legacy_mac: str = "") -> dict[str, Any]:
    ipam = cfg.get("IPAMConfig") or None
    if ipam is not None:
        ipam = {k: v for k, v in ipam.items() if k in ("IPv4Address", "IPv6Address", "LinkLocalIPs") and v} or None
    return {
        "IPAMConfig": ipam,
        "Links": cfg.get("Links") or None,
        "Aliases": list(cfg.get("Aliases") or []) or None,
        "MacAddress": cfg.get("MacAddress") or legacy_mac or "",
        "DriverOpts": cfg.get("DriverOpts") or None,
        "NetworkID": net.id,
    }


def endpoint_configs(body: dict[str, Any], host: dict[str, Any], find: Finder) -> dict[str, dict[str, Any]]:
    """The record's ``Networks`` at create: the NetworkMode network first, then any other
    network of ``NetworkingConfig.EndpointsConfig``. Unknown networks are Docker's 404."""
    mode = mode_of(host)
    given: dict[str, Any] = dict(((body.get("NetworkingConfig") or {}).get("EndpointsConfig")) or {})
    if mode.startswith("container:"):
        if given:
            raise InvalidParameter("conflicting options: container type network can't be used with other networks")
        return {}
    net = _lenient(find, mode)
    cfg = given.pop(host.get("NetworkMode") or "default", None) or given.pop(mode, None) or given.pop(net.name, None)
    out = {net.name: _keep(cfg or {}, net, body.get("MacAddress") or "")}
    if not net.id:
        return out  # dockerd 20.10 accepts the create; the start fails with "network X not found"
    if net.driver in ("host", "null"):
        if given:
            raise InvalidParameter(f"container cannot be connected to network {net.name} with other networks")
        if (cfg or {}).get("Aliases") or (cfg or {}).get("IPAMConfig"):
            pass  # dockerd ignores them there too
        return out
    for ref, extra in given.items():
        other = _lenient(find, ref)
        if other.driver != "bridge":
            raise InvalidParameter(f"container cannot be connected to network {other.name} with other networks")
        out[other.name] = _keep(extra or {}, other)
    for name, cfg_ in out.items():
        want = (cfg_.get("IPAMConfig") or {}).get("IPv4Address")
        n = _lenient(find, name)
        if not n.id:
            continue
        if want and not n.user_defined:
            raise InvalidParameter("user specified IP address is supported on user defined networks only")
        if cfg_.get("Aliases") and not n.user_defined:
            raise InvalidParameter("network-scoped alias is supported only for containers in user defined networks")
    return out


def _lenient(find: Finder, ref: str) -> Network:
    try:
        return find(ref)
    except NotFound:
        return Network(id="", name=ref, driver="bridge", created="")


def attach_request(c: Container, d: Daemon) -> AttachRequest:
    host = c.host_config
    mode = mode_of(host)
    owner = owner_dir = ""
    kind = "bridge"
    if mode == "host":
        kind = "host"
    elif mode == "none":
        kind = "none"
    elif mode.startswith("container:"):
        kind = "container"
        other = d.find(mode.partition(":")[2])
        if not other.state.running:
            raise Conflict(f"cannot join network namespace of a non running container: {other.name}")
        owner, owner_dir = other.id, other.dir
    endpoints = []
    if kind == "bridge":
        for name, cfg in record_networks(c).items():
            ipam = cfg.get("IPAMConfig") or {}
            endpoints.append(
                EndpointRequest(
                    network=cfg.get("NetworkID") or name,
                    aliases=tuple(cfg.get("Aliases") or ()),
                    ipv4=ipam.get("IPv4Address") or "",
                    ipv6=ipam.get("IPv6Address") or "",
                    mac=cfg.get("MacAddress") or "",
                    links=endpoint_links(cfg),
                )
            )
    ports = portspec.requested(host.get("PortBindings"), c.config.get("ExposedPorts"), bool(host.get("PublishAllPorts")))
    links = []
    for link in host.get("Links") or ():
        name, _, alias = str(link).partition(":")
        target = d.find(name.lstrip("/"))
        alias = alias.rsplit("/", 1)[-1] or target.name
        if not target.state.running:
            raise Conflict(f"Cannot link to a non running container: /{target.name} AS /{c.name}/{alias}")
        links.append((target.id, target.name, alias))
    return AttachRequest(
        container_id=c.id,
        name=c.name,
        hostname=c.config.get("Hostname") or c.id[:12],
        domainname=c.config.get("Domainname") or "",
        mode=kind,
        owner=owner,
        owner_dir=owner_dir,
        endpoints=tuple(endpoints),
        ports=tuple(ports) if kind == "bridge" else (),
        dns=tuple(host.get("Dns") or ()),
        dns_search=tuple(host.get("DnsSearch") or ()),
        dns_options=tuple(host.get("DnsOptions") or ()),
        extra_hosts=tuple(host.get("ExtraHosts") or ()),
        links=tuple(links),
        files_dir=Path(c.dir),
        userns=c.userns,
    )


def record_networks(c: Container) -> dict[str, dict[str, Any]]:
    """The record's networks; a record from before the network driver has only NetworkMode."""
    if c.networks:
        return c.networks
    mode = mode_of(c.host_config)
    return {} if mode.startswith("container:") else {mode: {}}


def _empty_endpoint(cfg: dict[str, Any]) -> dict[str, Any]:
    return {
        "IPAMConfig": cfg.get("IPAMConfig"), "Links": cfg.get("Links"), "Aliases": cfg.get("Aliases"),
        # the MAC address asked for (create or connect) until a running endpoint has its own, as
        # dockerd shows a created container's endpoint settings
        "MacAddress": cfg.get("MacAddress") or "", "DriverOpts": cfg.get("DriverOpts"), "NetworkID": cfg.get("NetworkID") or "",
        "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
        "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": None,
    }  # fmt: skip


def networks_view(c: Container, net: NetworkDriver) -> dict[str, dict[str, Any]]:
    """``NetworkSettings.Networks``: the record's settings, with what a running container got."""
    _sandbox, eps = net.container_state(c.id) if c.state.running else (None, {})
    out: dict[str, dict[str, Any]] = {}
    for name, cfg in record_networks(c).items():
        entry = _empty_endpoint(cfg)
        network = net.networks.get(cfg.get("NetworkID") or "") or _by_name(net, name)
        ep = eps.get(network.id) if network is not None else None
        if network is not None and ep is not None:
            aliases = list(cfg.get("Aliases") or [])
            if network.user_defined:
                aliases.append(c.id[:12])
            entry.update(
                Aliases=aliases or None, MacAddress=ep.mac, EndpointID=ep.id, Gateway=network.gateway,
                IPAddress=ep.ip, IPPrefixLen=network.prefixlen, GlobalIPv6Address=ep.ip6,
                GlobalIPv6PrefixLen=network.prefixlen6 if ep.ip6 else 0, IPv6Gateway=network.gateway6 if ep.ip6 else "",
                DNSNames=[c.name, c.id[:12], *(cfg.get("Aliases") or [])] if network.user_defined else None,
            )  # fmt: skip
        out[name] = entry
    return out


def _by_name(net: NetworkDriver, name: str) -> Network | None:
    return next((n for n in net.networks.values() if n.name == name), None)


def network_settings(c: Container, net: NetworkDriver) -> dict[str, Any]:
    """Docker's ``NetworkSettings`` of inspect."""
    sandbox, _eps = net.container_state(c.id) if c.state.running else (None, {})
    networks = networks_view(c, net)
    default = networks.get("bridge") if mode_of(c.host_config) == "bridge" else None
    ports: dict[str, Any] = {}
    if c.state.running and mode_of(c.host_config) not in ("host",):
        ports = portspec.docker_ports(c.config.get("ExposedPorts"), net.ports_of(c.id))
    top = default or {}
    return {
        "Bridge": "", "SandboxID": sandbox.container_id if sandbox else "",
        "SandboxKey": sandbox.path if sandbox else "", "Ports": ports, "HairpinMode": False,
        "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None, "EndpointID": top.get("EndpointID", ""), "Gateway": top.get("Gateway", ""),
        "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": top.get("IPAddress", ""),
        "IPPrefixLen": top.get("IPPrefixLen", 0), "IPv6Gateway": "", "MacAddress": top.get("MacAddress", ""),
        "Networks": networks,
    }  # fmt: skip


def summary_ports(c: Container, net: NetworkDriver) -> list[dict[str, Any]]:
    """``Ports`` of a ``docker ps`` row (empty unless running)."""
    if not c.state.running:
        return []
    return portspec.ps_ports(c.config.get("ExposedPorts"), net.ports_of(c.id))


def check_create(d: Daemon, body: dict[str, Any], config: dict[str, Any], host: dict[str, Any]) -> None:
    """dockerd's create-time checks of the network settings (400s, 404 for a missing container)."""
    from berth.drivers.network.files import parse_extra_host
    from berth.drivers.network.model import valid_mac

    portspec.validate(host.get("PortBindings"), config.get("ExposedPorts"))
    mode = mode_of(host)
    if mode.startswith("container:"):
        ref = mode.partition(":")[2]
        if not ref:
            raise InvalidParameter("Invalid network mode: invalid container format container:<name|id>")
        owner = d.find(ref)
        # dockerd: the joining container takes the owner's host and domain name
        config["Hostname"], config["Domainname"] = owner.config.get("Hostname") or owner.id[:12], owner.config.get("Domainname") or ""
        conflicts = (
            (body.get("Hostname"), "hostname and the network mode"),
            (host.get("Dns") or host.get("DnsSearch") or host.get("DnsOptions"), "dns and the network mode"),
            (host.get("ExtraHosts"), "custom host-to-IP mapping and the network mode"),
            (host.get("PortBindings") or host.get("PublishAllPorts"), "port publishing and the container type network mode"),
            (body.get("MacAddress"), "mac-address and the network mode"),
        )
        for present, text in conflicts:
            if present:
                raise InvalidParameter(f"conflicting options: {text}")
    mac = body.get("MacAddress") or ""
    for cfg in ((body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}).values():
        mac = mac or (cfg or {}).get("MacAddress") or ""
    if mac and not valid_mac(mac):
        raise InvalidParameter(f"invalid MAC address: {mac}")
    for item in host.get("ExtraHosts") or ():
        parse_extra_host(str(item), "0.0.0.0")


def port_filter(key: str, values: list[str]) -> set[tuple[int, str]]:
    """``ps --filter publish=8080`` / ``expose=80-90/udp``: the (port, protocol) pairs meant."""
    out: set[tuple[int, str]] = set()
    for value in values:
        ports, _, proto = value.partition("/")
        lo, _, hi = ports.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()) or (proto and proto not in portspec.PROTOCOLS):
            raise InvalidParameter(f"invalid filter '{key}={value}'")
        for port in range(int(lo), int(hi or lo) + 1):
            out.add((port, proto or "tcp"))
    return out
