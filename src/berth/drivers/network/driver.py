"""The network driver: networks, and each running container's namespace, endpoints and ports.

    net = NetworkDriver(cfg, db_path)
    await net.startup()                          # built-in networks, bridges, nftables table
    attached = await net.attach(AttachRequest(...))   # before the container starts
    spec joins attached.netns ; ... ; await net.release(cid)    # after it exits
    await net.reconcile(live_ids)                # after the daemon re-attached its containers
    await net.shutdown(keep_running=True)

Attaching a container to bridge networks: the IPs are leased (in memory at once, no await in
between, so concurrent starts never get the same address; then in SQLite with the sandbox in
one transaction), host ports are chosen and held, the namespace is made (with the embedded DNS
listeners when a user network is involved), one veth per network is created straight into it
and configured, the DNAT map elements are added, and hosts/resolv.conf are written. Any failure
undoes what was done, so nothing is left half set up. Releasing removes the map elements, the
leases and the namespace file; the kernel then deletes the namespace and its veths on its own.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import ipaddress
import logging
import os
import secrets
import socket
import sqlite3
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from berth.crashpoint import crash_point
from berth.drivers.network import files, firewall, links, netns, subnets
from berth.drivers.network.config import AttachRequest, EndpointRequest, NetworkConfig
from berth.drivers.network.dns import DnsServer
from berth.drivers.network.ipam import AddressPool, default_gateway
from berth.drivers.network.model import (
    OPT_BRIDGE_NAME,
    OPT_HOST_BINDING,
    OPT_ICC,
    OPT_MASQ,
    OPT_MTU,
    Endpoint,
    Network,
    PortMapping,
    mac_for,
    valid_mac,
)
from berth.drivers.network.nft import Nft
from berth.drivers.network.portmap import Held, PortAllocator
from berth.drivers.network.store import NetworkStore, Sandbox
from berth.errors import BerthError, Conflict, Forbidden, InvalidParameter, NotFound

log = logging.getLogger(__name__)


def now_rfc3339() -> str:
    ns = time.time_ns()
    secs, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{nanos:09d}".rstrip("0").rstrip(".") + "Z"


@dataclass(frozen=True)
class Attached:
    """What a started container got: the namespace to join ("host" for host mode); ``beside``:
    what the caller's ``beside`` work returned or raised (:meth:`NetworkDriver.attach`)."""

    netns: str
    endpoints: tuple[Endpoint, ...] = ()
    ports: tuple[PortMapping, ...] = ()
    beside: object = None


def _run_beside(work: Callable[[], object] | None) -> object:
    """``work()``'s result, or the exception it raised (the caller's to raise)."""
    if work is None:
        return None
    try:
        return work()
    except Exception as exc:  # noqa: BLE001 - handed to the caller, who raises it
        return exc


@dataclass
class _Live:
    """A running container's network state in memory."""

    sandbox: Sandbox
    endpoints: dict[str, Endpoint] = field(default_factory=dict)  # network id -> endpoint
    held: Held | None = None
    upstreams: list[str] = field(default_factory=list)
    links: tuple[tuple[str, str, str], ...] = ()  # (target id, target name, alias)


class NetworkDriver:
    def __init__(self, cfg: NetworkConfig, db_path: Path) -> None:
        self.cfg = cfg
        self.db_path = db_path
        self.store: NetworkStore
        self.links = links.HostLinks()
        self.nft = Nft()
        self.netns = netns.NetnsThread()
        self.ports = PortAllocator()
        self.dns = DnsServer(self._dns_lookup, self._dns_upstreams, self._dns_reverse)
        self.networks: dict[str, Network] = {}  # id -> network
        self.live: dict[str, _Live] = {}  # container id -> state
        self.leases: dict[str, set[str]] = {}  # network id -> addresses in use
        self._last: dict[str, str] = {}
        self._bridge_index: dict[str, int] = {}
        self._forward_logged = False
        self._lock = asyncio.Lock()  # network create/remove and table rewrites
        # an empty namespace (lo up) made ahead for the next container without endpoints
        # (--network none): its start joins it instead of waiting for one to be made
        self._spares: list[Path] = []  # namespaces made ahead, oldest first (at most SPARES)
        self._refill: asyncio.TimerHandle | asyncio.Task[None] | None = None
        self._closing = False
        # container id -> its stored lease and namespace file being released in the background
        self._releasing: dict[str, asyncio.Future[None]] = {}

    # -- start-up and shutdown -------------------------------------------------------------
    async def startup(self) -> None:
        self.store = NetworkStore(self.db_path)
        self.cfg.netns_dir.mkdir(parents=True, exist_ok=True)
        known = {n.id: n for n in self.store.networks()}
        by_name = {n.name: n for n in known.values()}
        for name, driver in (("none", "null"), ("host", "host")):
            if name not in by_name:
                net = Network(id=secrets.token_hex(32), name=name, driver=driver, created=now_rfc3339())
                self.store.put_network(net)
                known[net.id] = net
        old_default = by_name.get("bridge")
        self.networks = dict(known)
        if self.cfg.bridge != "none":
            async with self.host_lock():
                default = await self._default_bridge(old_default)
                await self._setup_bridge(default)
            if default != old_default:  # unchanged: no write (start-up must survive a full disk)
                self._persist_at_startup(default)
            known[default.id] = default
        elif old_default is not None:
            self.store.delete_network(old_default.id)
            known.pop(old_default.id, None)
        self.networks = known
        for net in self.networks.values():
            self.leases.setdefault(net.id, set())
        for ep in self.store.endpoints():
            if ep.network_id in self.leases:
                self.leases[ep.network_id].update(a for a in (ep.ip, ep.ip6) if a)
        for sb in self.store.sandboxes():
            self.live[sb.container_id] = _Live(sb)
        for ep in self.store.endpoints():
            if ep.container_id in self.live:
                self.live[ep.container_id].endpoints[ep.network_id] = ep
        for net in self.networks.values():
            if net.is_bridge and net.id not in self._bridge_index:
                await self._setup_bridge(net)
        await self._write_tables()

    def _persist_at_startup(self, net: Network) -> None:
        try:
            self.store.put_network(net)
        except sqlite3.OperationalError as exc:
            # a full data root: run with the record in memory; the next start writes it again
            log.error("record network %s: %s (kept in memory)", net.name, exc)

    async def _default_bridge(self, old: Network | None) -> Network:
        cfg = self.cfg
        if cfg.bip:
            iface = ipaddress.ip_interface(cfg.bip)
            subnet, gateway = str(iface.network), str(iface.ip)
            if iface.ip == iface.network.network_address:
                gateway = default_gateway(subnet)
            # never put a bridge on a subnet the host already routes (it would take that route)
            subnets.check_free(ipaddress.IPv4Network(subnet), await self._host_taken(cfg.bridge), "--bip")
        elif old is not None and old.bridge == cfg.bridge and old.subnet:
            subnet, gateway = old.subnet, old.gateway
        else:
            net = await self._pick_subnet(exclude_bridge=cfg.bridge)
            subnet, gateway = str(net), default_gateway(str(net))
        if cfg.fixed_cidr and not ipaddress.ip_network(cfg.fixed_cidr).subnet_of(ipaddress.ip_network(subnet)):  # type: ignore[arg-type]
            raise InvalidParameter(f"--fixed-cidr {cfg.fixed_cidr} is not inside the bridge subnet {subnet}")
        return Network(
            id=old.id if old is not None else secrets.token_hex(32),
            name="bridge",
            driver="bridge",
            created=old.created if old is not None else now_rfc3339(),
            subnet=subnet,
            gateway=gateway,
            ip_range=cfg.fixed_cidr,
            bridge=cfg.bridge,
            icc=cfg.icc,
            masquerade=cfg.ip_masq,
            mtu=cfg.mtu,
            host_binding=cfg.host_ip,
            default=True,
        )

    async def _pick_subnet(self, exclude_bridge: str = "", pools: tuple[subnets.Pool, ...] | None = None) -> ipaddress.IPv4Network:
        taken = await self._host_taken(exclude_bridge)
        taken += [ipaddress.IPv4Network(n.subnet) for n in self.networks.values() if n.subnet]
        return subnets.pick(pools or self.cfg.pools, taken)

    async def _host_taken(self, exclude_bridge: str = "") -> list[ipaddress.IPv4Network]:
        routes, addrs = await self.links.routes_and_addresses()
        if exclude_bridge:
            index = await self.links.index(exclude_bridge)
            if index is not None:
                own = set(await self.links.bridge_addresses(index))
                addrs = [a for a in addrs if a not in own]
                own_nets = {str(ipaddress.ip_interface(a).network) for a in own}
                routes = [r for r in routes if str(ipaddress.ip_network(r, strict=False)) not in own_nets]
        try:
            resolv = files.parse_resolv(self.cfg.host_resolv_conf.read_text())
        except OSError:
            resolv = files.Resolv()
        return subnets.host_taken(routes, addrs, resolv.nameservers)

    async def _setup_bridge(self, net: Network) -> None:
        index = await self.links.ensure_bridge(net.bridge, net.gateway, net.prefixlen, net.mtu)
        self._bridge_index[net.id] = index
        # 127.0.0.1 -> container (DNAT in output) needs loopback sources routable out of the
        # bridge; forwarding is enabled for packets that arrive on the bridge only
        links.write_sysctl(f"net/ipv4/conf/{net.bridge}/route_localnet", "1")
        links.write_sysctl(f"net/ipv4/conf/{net.bridge}/forwarding", "1")
        if net.subnet6:
            links.write_sysctl(f"net/ipv6/conf/{net.bridge}/disable_ipv6", "0")
            await self.links.ensure_address6(index, net.gateway6, net.prefixlen6)

    def _firewall_table(self) -> firewall.Table:
        nets = [
            firewall.Net(n.bridge, n.subnet, n.internal, n.icc, n.masquerade)
            for n in sorted(self.networks.values(), key=lambda n: n.name)
            if n.is_bridge
        ]
        dnats = [d for live in self.live.values() for d in self._dnats(live)]
        return firewall.Table(self.cfg.table, nets, outbound=self.cfg.ip_forward, dnats=dnats)

    async def _write_tables(self) -> None:
        t = self._firewall_table()
        await self.nft.run(firewall.render(t) + firewall.render_bridge(t.name), what=f"write nftables table {t.name}")

    def _dnats(self, live: _Live) -> list[firewall.Dnat]:
        ports = live.held.mappings if live.held is not None else list(live.sandbox.ports)
        if not ports:
            return []
        ep = self._primary(live)
        if ep is None or not ep.ip:
            return []
        return [firewall.Dnat(m.proto, m.host_ip, m.host_port, ep.ip, m.container_port) for m in ports if ":" not in m.host_ip]

    def _primary(self, live: _Live) -> Endpoint | None:
        eps = sorted(live.endpoints.values(), key=lambda e: e.ifname)
        return eps[0] if eps else None

    async def reconcile(self, running: dict[str, set[str]]) -> None:
        """After the daemon re-attached its containers (``running``: id -> the networks, by id or
        name, its record lists): release the sandboxes of containers that are not running,
        disconnect endpoints a record does not list (a connect cut short), take the ports and
        DNS listeners of the rest again, remove namespace files nothing records, and rewrite the
        table from the records."""
        for cid in [c for c in self.live if c not in running]:
            log.info("releasing the network of container %s (not running)", cid[:12])
            await self.release(cid)
        for cid, wanted in running.items():
            live = self.live.get(cid)
            for nid, ep in list(live.endpoints.items()) if live is not None else ():
                net = self.networks.get(nid)
                if net is None or (nid not in wanted and net.name not in wanted):
                    log.warning("disconnecting container %s from network %s: its record does not list it", cid[:12], nid[:12])
                    await self._drop_endpoint(cid, nid, ep)
        for cid, live in self.live.items():
            if live.held is None:
                live.held = self.ports.restore(live.sandbox.ports)
            if live.sandbox.dns and not self.dns.listening(cid) and not live.sandbox.owner:
                live.upstreams = list(live.sandbox.data.get("upstreams") or [])
                try:
                    _nl, socks = await self.netns.run(netns.open_in, Path(live.sandbox.path), files.EMBEDDED_DNS, False)
                    if socks is not None:
                        await self.dns.listen(cid, *socks)
                except Exception as exc:  # noqa: BLE001 - one container's DNS must not stop start-up
                    log.warning("embedded DNS for container %s: %s", cid[:12], exc)
        recorded = {Path(lv.sandbox.path).name for lv in self.live.values()}
        if self.cfg.netns_dir.is_dir():
            for path in self.cfg.netns_dir.iterdir():
                if path.name.removesuffix(netns.USERNS_SUFFIX) not in recorded:
                    log.warning("removing network namespace %s that no container owns", path)
                    await asyncio.to_thread(netns.remove, path)
        await self._write_tables()

    async def shutdown(self) -> None:
        """Stop serving DNS; remove the bridges and tables unless containers still run on them
        (live restore: they keep their network while the daemon is away)."""
        await self.dns.close()
        if self._releasing:
            await asyncio.wait(list(self._releasing.values()))
        await self._drop_spare()
        for live in self.live.values():
            if live.held is not None:
                for s in live.held.sockets:
                    s.close()
        if not self.live:
            for net in self.networks.values():
                if net.is_bridge:
                    await self.links.delete(net.bridge)
            await self.nft.run(firewall.drop_tables(self.cfg.table), what="remove nftables tables")
        else:
            log.info("%d containers keep running: their bridges and rules stay", len(self.live))
        self.links.close()
        self.nft.close()
        self.netns.close()
        self.store.close()

    # -- networks --------------------------------------------------------------------------
    def find(self, ref: str) -> Network:
        """By name, full id or unique id prefix (Docker's order); 404 ``network X not found``."""
        if ref in self.networks:
            return self.networks[ref]
        for n in self.networks.values():
            if n.name == ref:
                return n
        matches = [n for n in self.networks.values() if ref and n.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        raise NotFound(f"network {ref} not found")

    def default_network(self) -> Network | None:
        return next((n for n in self.networks.values() if n.default), None)

    def host_gateway(self) -> str:
        d = self.default_network()
        return d.gateway if d is not None else ""

    def endpoints_of(self, nid: str) -> list[Endpoint]:
        return [ep for live in self.live.values() for ep in live.endpoints.values() if ep.network_id == nid]

    def container_state(self, cid: str) -> tuple[Sandbox | None, dict[str, Endpoint]]:
        live = self.live.get(cid)
        if live is None:
            return None, {}
        return live.sandbox, dict(live.endpoints)

    def ports_of(self, cid: str) -> list[PortMapping]:
        live = self.live.get(cid)
        if live is None:
            return []
        return list(live.held.mappings if live.held is not None else live.sandbox.ports)

    async def create_network(
        self,
        name: str,
        options: dict[str, str],
        labels: dict[str, str],
        internal: bool = False,
        attachable: bool = False,
        ipam_configs: list[dict[str, Any]] | None = None,
        ipam_options: dict[str, str] | None = None,
        enable_ipv6: bool = False,
    ) -> Network:
        """A user-defined bridge network: checked, its subnet chosen (or checked against the host
        and the other networks), its bridge made, recorded, and the table rewritten."""
        nid = secrets.token_hex(32)
        bridge = options.get(OPT_BRIDGE_NAME) or f"br-{nid[:12]}"
        if len(bridge) > 15 or "/" in bridge or not bridge.strip():
            raise InvalidParameter(f"invalid bridge name {bridge!r}: 1 to 15 characters")
        if any(n.bridge == bridge for n in self.networks.values()):
            raise Conflict(f"bridge name {bridge} is already used by another network")
        icc = _opt_bool(options, OPT_ICC, True)
        masq = _opt_bool(options, OPT_MASQ, True)
        mtu = int(options.get(OPT_MTU) or self.cfg.mtu)
        if not 68 <= mtu <= 65535:
            raise InvalidParameter(f"invalid MTU {mtu}")
        configs = [dict(c) for c in ipam_configs or []]
        v4 = [c for c in configs if ":" not in str(c.get("Subnet") or c.get("Gateway") or "")]
        v6 = [c for c in configs if c not in v4]
        if len(v4) > 1:
            raise InvalidParameter("berth supports one IPv4 subnet per network")
        if v6 and not enable_ipv6:
            raise InvalidParameter("non-overlapping IPv6 subnets need --ipv6 (EnableIPv6)")
        given = v4[0] if v4 else {}
        subnet6, gateway6 = self._network_addresses6(v6, enable_ipv6)
        async with self._lock, self.host_lock():
            if bridge != f"br-{nid[:12]}" and await self.links.index(bridge) is not None:
                raise Conflict(f"a link named {bridge} exists already on the host")
            subnet, gateway, ip_range, aux = await self._network_addresses(given)
            net = Network(
                id=nid, name=name, driver="bridge", created=now_rfc3339(), subnet=subnet, gateway=gateway,
                ip_range=ip_range, bridge=bridge, internal=internal, attachable=attachable, icc=icc,
                masquerade=masq, mtu=mtu, host_binding=_any(options.get(OPT_HOST_BINDING, self.cfg.host_ip)), labels=dict(labels),
                options=dict(options), ipam_options=None if ipam_options is None else dict(ipam_options),
                ipam_config_given=tuple({k: str(v) for k, v in c.items() if v} for c in v4 + v6), aux_addresses=aux,
                enable_ipv6=enable_ipv6, subnet6=subnet6, gateway6=gateway6,
            )  # fmt: skip
            self.networks[nid] = net
            self.leases[nid] = set()
            try:
                await self._setup_bridge(net)
                await asyncio.to_thread(self.store.put_network, net)
                await self._write_tables()
            except BaseException:
                self.networks.pop(nid, None)
                self.leases.pop(nid, None)
                self._bridge_index.pop(nid, None)
                await self.links.delete(bridge)
                await asyncio.to_thread(self.store.delete_network, nid)
                raise
        return net

    def _network_addresses6(self, configs: list[dict[str, Any]], enable: bool) -> tuple[str, str]:
        """The IPv6 subnet and gateway of an ``--ipv6`` network (a ``--subnet`` is required)."""
        if not enable:
            return "", ""
        if len(configs) != 1 or not configs[0].get("Subnet"):
            raise InvalidParameter("an IPv6 network needs one IPv6 --subnet (berth does not pick IPv6 subnets)")
        try:
            subnet = ipaddress.IPv6Network(str(configs[0]["Subnet"]), strict=True)
        except ValueError as exc:
            raise InvalidParameter(f"invalid subnet {configs[0]['Subnet']}: {exc}") from exc
        if subnet.prefixlen > 124:
            raise InvalidParameter(f"invalid subnet {subnet}: too small")
        for other in self.networks.values():
            if other.subnet6 and subnet.overlaps(ipaddress.IPv6Network(other.subnet6)):
                raise Forbidden("Pool overlaps with other one on this address space")
        gateway = str(configs[0].get("Gateway") or default_gateway(str(subnet)))
        try:
            gw = ipaddress.IPv6Address(gateway)
        except ValueError as exc:
            raise InvalidParameter(f"invalid gateway {gateway}: {exc}") from exc
        if gw not in subnet or gw == subnet.network_address:
            raise InvalidParameter(f"failed to allocate gateway ({gateway}): Requested address is out of range")
        return str(subnet), gateway

    async def _network_addresses(self, given: dict[str, Any]) -> tuple[str, str, str, dict[str, str]]:
        others = [ipaddress.IPv4Network(n.subnet) for n in self.networks.values() if n.subnet]
        if not given.get("Subnet"):
            if given.get("Gateway") or given.get("IPRange"):
                raise InvalidParameter("a gateway or an IP range needs a subnet")
            net = await self._pick_subnet()
            return str(net), default_gateway(str(net)), "", {}
        try:
            subnet = ipaddress.IPv4Network(str(given["Subnet"]), strict=False)
        except ValueError as exc:
            raise InvalidParameter(f"invalid subnet {given['Subnet']}: {exc}") from exc
        if str(subnet) != str(given["Subnet"]) and str(subnet.network_address) != str(given["Subnet"]).split("/")[0]:
            raise InvalidParameter(f"invalid subnet {given['Subnet']}: it is not a network address")
        if subnet.prefixlen > 30:
            raise InvalidParameter(f"invalid subnet {subnet}: too small for a gateway and containers")
        if subnets.overlaps(subnet, others):
            raise Forbidden("Pool overlaps with other one on this address space")
        host = await self._host_taken()
        if subnets.overlaps(subnet, host):
            raise Forbidden(f"Pool overlaps with other one on this address space (the host routes or has {subnet})")
        gateway = str(given.get("Gateway") or default_gateway(str(subnet)))
        try:
            gw = ipaddress.IPv4Address(gateway)
        except ValueError as exc:
            raise InvalidParameter(f"invalid gateway {gateway}: {exc}") from exc
        if gw not in subnet or gw in (subnet.network_address, subnet.broadcast_address):
            raise InvalidParameter(f"failed to allocate gateway ({gateway}): Requested address is out of range")
        ip_range = ""
        if given.get("IPRange"):
            try:
                rng = ipaddress.IPv4Network(str(given["IPRange"]), strict=False)
            except ValueError as exc:
                raise InvalidParameter(f"invalid ip range {given['IPRange']}: {exc}") from exc
            if not rng.subnet_of(subnet):
                raise InvalidParameter(f"Invalid Address SubPool: ip range {rng} is not inside the subnet {subnet}")
            ip_range = str(rng)
        aux: dict[str, str] = {}
        for host_name, addr in (given.get("AuxiliaryAddresses") or {}).items():
            if ipaddress.IPv4Address(addr) not in subnet:
                raise InvalidParameter(f"auxiliary address {host_name}={addr} is not in the subnet {subnet}")
            aux[str(host_name)] = str(addr)
        return str(subnet), gateway, ip_range, aux

    async def remove_network(self, nid: str) -> None:
        net = self.networks[nid]
        if self.endpoints_of(nid):
            raise Forbidden(f"error while removing network: network {net.name} id {net.id} has active endpoints")
        async with self._lock:
            del self.networks[nid]
            self.leases.pop(nid, None)
            self._last.pop(nid, None)
            self._bridge_index.pop(nid, None)
            await asyncio.to_thread(self.store.delete_network, nid)
            await self._write_tables()
            await self.links.delete(net.bridge)

    async def connect(self, cid: str, net: Network, want: EndpointRequest) -> Endpoint:
        """Hot-plug a running container into one more network (its next ethN)."""
        live = self.live.get(cid)
        if live is None or live.sandbox.owner:
            raise Conflict(f"container {cid[:12]} has no network namespace of its own to connect")
        if net.id in live.endpoints:
            name = next(iter(live.endpoints.values())).container_name
            raise Forbidden(f"endpoint with name {name} already exists in network {net.name}")
        used = {ep.ifname for ep in live.endpoints.values()}
        ifname = next(f"eth{i}" for i in range(len(used) + 1) if f"eth{i}" not in used)
        name = next(iter(live.endpoints.values())).container_name if live.endpoints else cid[:12]
        req = AttachRequest(container_id=cid, name=name, hostname="")
        ep = self._new_endpoint(req, net, want, ifname)
        self.leases[net.id].update(a for a in (ep.ip, ep.ip6) if a)
        live.endpoints[net.id] = ep
        path = Path(live.sandbox.path)
        try:
            await asyncio.to_thread(self.store.attach, None, [ep])
            await self.links.add_veth(ep.veth, ep.ifname, ep.mac, path, self._bridge_index[net.id], net.mtu)
            if not net.icc:
                await self.links.isolate(ep.veth)
            nl, _ = await self.netns.run(netns.open_in, path)
            assert nl is not None
            first = len(live.endpoints) == 1
            await links.configure_inside(nl, ep.ifname, ep.ip, net.prefixlen, net.gateway, loopback=False,
                                         default_route=first and not net.internal, address6=ep.ip6,
                                         prefixlen6=net.prefixlen6, gateway6=net.gateway6)  # fmt: skip
        except BaseException:
            live.endpoints.pop(net.id, None)
            self.leases[net.id].difference_update((ep.ip, ep.ip6))
            await asyncio.to_thread(self.store.delete_endpoint, ep.id)
            await self.links.delete(ep.veth)
            raise
        return ep

    async def disconnect(self, cid: str, net: Network) -> None:
        """Unplug a running container from a network: its interface there is deleted."""
        live = self.live.get(cid)
        ep = live.endpoints.get(net.id) if live is not None else None
        if live is None or ep is None:
            return
        await self._drop_endpoint(cid, net.id, ep)

    async def _drop_endpoint(self, cid: str, nid: str, ep: Endpoint) -> None:
        live = self.live[cid]
        nl, _ = await self.netns.run(netns.open_in, Path(live.sandbox.path))
        assert nl is not None
        await links.unconfigure_inside(nl, ep.ifname)
        primary = self._primary(live)
        dnats = self._dnats(live) if primary is not None and primary.id == ep.id else []
        del live.endpoints[nid]
        self.leases.get(nid, set()).difference_update((ep.ip, ep.ip6))
        await asyncio.to_thread(self.store.delete_endpoint, ep.id)
        if dnats:
            # the published ports followed the first network's address: they follow the next one
            await self.nft.run(firewall.elements("delete", self.cfg.table, dnats), what="unpublish ports")
            moved = self._dnats(live)
            if moved:
                await self.nft.run(firewall.elements("add", self.cfg.table, moved), what="publish ports")

    # -- containers ------------------------------------------------------------------------
    async def attach(self, req: AttachRequest, beside: Callable[[], object] | None = None) -> Attached:
        """Attach a container that is being started. ``beside``: work of the caller's for a worker
        thread, done while the network is attached (its result, or the exception it raised, in
        ``Attached.beside``; done also when the attach fails). A container joining the namespace
        made ahead (``--network none``) needs nothing but its record and files written: those and
        ``beside`` are then done in one hop to a worker thread (three threads taking turns at the
        GIL, and the loop woken by each, before)."""
        pending = self._releasing.get(req.container_id)
        if pending is not None:  # its last run's namespace file (and store rows) still going
            await asyncio.wait([pending])
        if beside is not None and self._joins_spare(req):
            return await self._join_spare(req, beside)
        if beside is None:
            return await self._attach(req)
        aside = asyncio.ensure_future(asyncio.to_thread(_run_beside, beside))
        try:
            attached = await self._attach(req)
        except BaseException:
            await asyncio.gather(aside, return_exceptions=True)
            raise
        return replace(attached, beside=await aside)

    def _joins_spare(self, req: AttachRequest) -> bool:
        """True if the attach takes the namespace made ahead and nothing else (no endpoint)."""
        return req.mode == "none" and req.userns is None and req.container_id not in self.live and bool(self._spares)

    async def _join_spare(self, req: AttachRequest, beside: Callable[[], object]) -> Attached:
        """:meth:`_attach_bridge` without endpoints, in the namespace made ahead: its record and
        files written, then ``beside`` done, in one worker thread."""
        cid = req.container_id
        path = self._take_spare()
        assert path is not None  # _joins_spare saw it, and nothing was awaited since
        data: dict[str, Any] = {"links": [list(link) for link in req.links]} if req.links else {}
        sandbox = Sandbox(cid, str(path), dns=False, data=data)
        self.live[cid] = _Live(sandbox, {}, upstreams=[], links=req.links)
        try:
            done = await asyncio.to_thread(self._record_joined, sandbox, req, beside)
        except BaseException:
            await self._undo(cid, True, path)
            raise
        return Attached(str(path), beside=done)

    async def _attach(self, req: AttachRequest) -> Attached:
        if req.container_id in self.live:
            await self.release(req.container_id)
        if req.mode == "host":
            await asyncio.to_thread(self._write_host_files, req)
            return Attached("host")
        if req.mode == "container":
            owner = self.live.get(req.owner)
            if owner is None:
                raise Conflict(f"cannot join network of a non running container: {req.owner}")
            # the same namespace, and the owner's hosts and resolv.conf (dockerd shares its files)
            await asyncio.to_thread(_copy_files, Path(req.owner_dir), req.files_dir)
            return Attached(owner.sandbox.path, tuple(owner.endpoints.values()))
        nets = [self.find(e.network) for e in req.endpoints] if req.mode == "bridge" else []
        for n in nets:
            if not n.is_bridge:
                raise InvalidParameter(f"container cannot be connected to network {n.name} with other networks")
        return await self._attach_bridge(req, nets)

    async def _attach_bridge(self, req: AttachRequest, nets: list[Network]) -> Attached:
        cid = req.container_id
        eps = self._lease(req, nets)  # no await above this point since the check of the leases
        dns = any(n.user_defined for n in nets)
        spare = self._take_spare() if not eps and req.userns is None else None
        path = spare or self.cfg.netns_dir / cid[:12]
        # a container only on internal networks gets no answers from outside either (dockerd
        # does not forward its queries)
        upstreams = self._upstreams(req) if dns and not all(n.internal for n in nets) else []
        data: dict[str, Any] = {"upstreams": upstreams} if dns else {}
        if req.links:
            data["links"] = [list(link) for link in req.links]
        sandbox = Sandbox(cid, str(path), dns=dns, data=data)
        live = _Live(sandbox, {ep.network_id: ep for ep in eps}, upstreams=upstreams, links=req.links)
        self.live[cid] = live
        made = False
        nl: socket.socket | None = None
        written: asyncio.Future[None] | None = None
        stored: asyncio.Future[None] | None = None
        try:
            if req.ports and eps:
                binding = self.networks[eps[0].network_id].host_binding
                wanted = [m if m.host_ip else replace(m, host_ip=binding) for m in req.ports]
                live.held = self.ports.allocate(f"{req.name} ({eps[0].id})", wanted)
                sandbox = replace(sandbox, ports=tuple(live.held.mappings))
                live.sandbox = sandbox
            # The record, hosts and resolv.conf are written (threads) while the namespace is made:
            # a namespace file no record names is removed at the next start-up (reconcile), and
            # a record whose namespace was never made is released there
            stored = asyncio.ensure_future(asyncio.to_thread(self.store.attach, sandbox, eps))
            written = asyncio.ensure_future(asyncio.to_thread(self._write_files, req, eps, upstreams))
            if spare is None:
                nl, socks = await self.netns.run(netns.create, path, files.EMBEDDED_DNS if dns else "", req.userns)
            else:
                socks = None
            made = True
            await stored
            if socks is not None:
                await self.dns.listen(cid, *socks)
            for i, ep in enumerate(eps):
                net = self.networks[ep.network_id]
                await self.links.add_veth(ep.veth, ep.ifname, ep.mac, path, self._bridge_index[net.id], net.mtu)
                if i == 0 and live.held is not None and live.held.mappings:
                    await self.links.hairpin(ep.veth)
                if not net.icc:
                    await self.links.isolate(ep.veth)
                sock = nl if i == 0 else (await self.netns.run(netns.open_in, path))[0]
                assert sock is not None
                await links.configure_inside(
                    sock, ep.ifname, ep.ip, net.prefixlen, net.gateway, loopback=False, default_route=(i == 0) and not net.internal,
                    address6=ep.ip6, prefixlen6=net.prefixlen6, gateway6=net.gateway6,
                )
            if not eps and nl is not None:
                nl.close()
            dnats = self._dnats(live)
            if dnats:
                await self.nft.run(firewall.elements("add", self.cfg.table, dnats), what="publish ports")
            if eps and not all(self.networks[e.network_id].internal for e in eps):
                self._ensure_forwarding()
            await written
        except BaseException:
            if nl is not None:
                nl.close()  # closing a consumed (closed) socket again is harmless
            # their own failures, if any, are not the one to report: the one being raised is
            await asyncio.gather(*(f for f in (stored, written) if f is not None), return_exceptions=True)
            await self._undo(cid, made, path)
            raise
        return Attached(str(path), tuple(eps), tuple(live.held.mappings) if live.held else ())

    # -- the spare namespace ----------------------------------------------------------------
    SPARE_DELAY = 0.05  # seconds after a spare was taken before the next is made: after the start
    # Two: in a loop of `docker run` a start came every 45-65 ms under load, before the one
    # spare taken by the start before was made again (50 ms, then the namespace's making), and
    # made its own on its way (+0.9 ms) in 17 of 60 runs at load 4.9
    SPARES = 2

    def _take_spare(self) -> Path | None:
        """A namespace made ahead, if there is one; the next is made shortly after."""
        spare = self._spares.pop(0) if self._spares else None
        self._refill_later()
        return spare

    def _refill_later(self) -> None:
        if self._refill is None and not self._closing and len(self._spares) < self.SPARES:
            self._refill = asyncio.get_running_loop().call_later(self.SPARE_DELAY, self._make_spare)

    def _make_spare(self) -> None:
        self._refill = asyncio.ensure_future(self._made_spare())

    async def _made_spare(self) -> None:
        # a name like a container's (12 hex digits, as dockerd's sandbox keys): it becomes one's
        path = self.cfg.netns_dir / secrets.token_hex(6)
        made = False
        try:
            nl, _ = await self.netns.run(netns.create, path, "", None)
            nl.close()
        except Exception as exc:  # noqa: BLE001 - the next start makes its own, as without spares
            log.warning("make a spare network namespace: %s", exc)
        else:
            self._spares.append(path)
            made = True
        finally:
            self._refill = None
        if made:
            self._refill_later()  # one more while there are fewer than SPARES

    async def _drop_spare(self) -> None:
        """At shutdown: no spare is made any more, and those there are go."""
        self._closing = True
        refill, self._refill = self._refill, None
        if isinstance(refill, asyncio.TimerHandle):
            refill.cancel()
        elif refill is not None:
            await asyncio.gather(refill, return_exceptions=True)
        spares, self._spares = self._spares, []
        for spare in spares:
            await self.netns.run(netns.remove, spare)

    def _lease(self, req: AttachRequest, nets: list[Network]) -> list[Endpoint]:
        """Addresses and MACs for every network, taken in memory at once (all or none)."""
        eps: list[Endpoint] = []
        taken: list[tuple[str, str]] = []
        try:
            for i, (n, want) in enumerate(zip(nets, req.endpoints, strict=True)):
                ep = self._new_endpoint(req, n, want, f"eth{i}")
                for addr in filter(None, (ep.ip, ep.ip6)):
                    self.leases[n.id].add(addr)
                    taken.append((n.id, addr))
                eps.append(ep)
        except BaseException:
            for nid, ip in taken:
                self.leases[nid].discard(ip)
            raise
        return eps

    def _new_endpoint(self, req: AttachRequest, net: Network, want: EndpointRequest, ifname: str) -> Endpoint:
        if want.ipv4 and not net.user_defined:
            raise InvalidParameter("user specified IP address is supported on user defined networks only")
        if want.aliases and not net.user_defined:
            raise InvalidParameter("network-scoped alias is supported only for containers in user defined networks")
        pool = AddressPool(net.subnet, net.gateway, net.ip_range, net.aux_addresses.values())
        ip = pool.allocate(self.leases[net.id], self._last.get(net.id, ""), want.ipv4)
        if not want.ipv4:
            self._last[net.id] = ip
        ip6 = ""
        if net.subnet6:
            pool6 = AddressPool(net.subnet6, net.gateway6)
            ip6 = pool6.allocate(self.leases[net.id], self._last.get(net.id + "/6", ""), want.ipv6)
            if not want.ipv6:
                self._last[net.id + "/6"] = ip6
        elif want.ipv6:
            raise InvalidParameter(f"invalid IPv6 address {want.ipv6}: network {net.name} has no IPv6 subnet")
        mac = want.mac or mac_for(ip)
        if not valid_mac(mac):
            raise InvalidParameter(f"invalid MAC address: {mac}")
        eid = secrets.token_hex(32)
        return Endpoint(
            id=eid, network_id=net.id, container_id=req.container_id, container_name=req.name, ip=ip, mac=mac,
            ip6=ip6, veth="veth" + eid[:7], ifname=ifname, aliases=tuple(want.aliases), requested_ip=want.ipv4,
            requested_ip6=want.ipv6, links=tuple(want.links),
        )  # fmt: skip

    async def _undo(self, cid: str, made: bool, path: Path, later: bool = False) -> None:
        live = self.live.pop(cid, None)
        self.dns.stop(cid)
        if live is not None:
            for ep in live.endpoints.values():
                self.leases.get(ep.network_id, set()).difference_update((ep.ip, ep.ip6))
            if live.held is not None:
                dnats = self._dnats(live)
                self.ports.release(live.held)
                if dnats:
                    try:
                        await self.nft.run(firewall.elements("delete", self.cfg.table, dnats), what="unpublish ports")
                    except Exception as exc:  # noqa: BLE001 - the rewrite below is the fallback
                        log.warning("unpublish ports of %s: %s; rewriting the table", cid[:12], exc)
                        await self._write_tables()
        if later:
            task = asyncio.ensure_future(self._release_stored_later(cid, made, path))
            self._releasing[cid] = task
            task.add_done_callback(functools.partial(self._released, cid))
        else:
            await asyncio.to_thread(self._release_stored, cid, made, path)  # one hop for both

    async def _release_stored_later(self, cid: str, made: bool, path: Path) -> None:
        crash_point("exit.network-later")
        try:
            await asyncio.to_thread(self._release_stored, cid, made, path)
        except (BerthError, OSError, sqlite3.Error) as exc:
            # e.g. a full data root: the stale lease is dropped, and a namespace file no
            # record names removed, by the reconciliation at the next start-up
            log.error("release the network of container %s: %s", cid[:12], exc)

    def _released(self, cid: str, task: asyncio.Future[None]) -> None:
        if self._releasing.get(cid) is task:
            del self._releasing[cid]

    def _release_stored(self, cid: str, made: bool, path: Path) -> None:
        """In a worker thread: the store's lease, then the namespace (in this order)."""
        self.store.release(cid)
        if made or path.exists():
            netns.remove(path)

    async def release(self, cid: str, later: bool = False) -> None:
        """The container stopped: its leases, ports, DNS names and namespace go.

        ``later`` (a ``--rm`` container at its exit, removed next): its addresses, ports and
        DNS names are released now, its store rows and namespace file in the background (off
        ``docker run --rm``'s path: nothing but a start racing the removal attaches that id
        again, and :meth:`attach` waits for them; :meth:`shutdown` too). A daemon killed in
        between finds the sandbox of a container that is not running at start-up and releases
        it, or a namespace file no record names and removes it (:meth:`reconcile`)."""
        live = self.live.get(cid)
        if live is None:
            return
        path = Path(live.sandbox.path)
        await self._undo(cid, True, path, later=later)

    def _ensure_forwarding(self) -> None:
        if not self.cfg.ip_forward:
            return
        old = links.write_sysctl("net/ipv4/ip_forward", "1")
        if old != "1" and not self._forward_logged:
            self._forward_logged = True
            log.warning("enabled net.ipv4.ip_forward (it was %s) so containers on bridge networks reach other networks", old)

    # -- files ------------------------------------------------------------------------------
    def _host_resolv(self) -> files.Resolv:
        try:
            return files.parse_resolv(self.cfg.host_resolv_conf.read_text())
        except OSError:
            return files.Resolv()

    def _upstreams(self, req: AttachRequest) -> list[str]:
        return files.upstreams(self._host_resolv(), req.dns or self.cfg.dns)

    def _extra_hosts(self, req: AttachRequest) -> list[tuple[str, str]]:
        return [files.parse_extra_host(h, self.host_gateway()) for h in req.extra_hosts]

    def _link_hosts(self, req: AttachRequest, eps: list[Endpoint]) -> list[tuple[str, str]]:
        """--link on the default bridge: ``IP alias id12 name`` lines for running targets on the
        same network (dockerd's legacy links; user networks resolve them by DNS instead)."""
        out = []
        nets = {e.network_id for e in eps if not self.networks[e.network_id].user_defined}
        for tid, tname, alias in req.links:
            target = self.live.get(tid)
            for nid in nets:
                ep = target.endpoints.get(nid) if target is not None else None
                if ep is not None and ep.ip:
                    names = " ".join(dict.fromkeys([alias, tid[:12], tname]))
                    out.append((names, ep.ip))
                    break
        return out

    def _record_joined(self, sandbox: Sandbox, req: AttachRequest, beside: Callable[[], object]) -> object:
        """In a worker thread, for a container joining the namespace made ahead: its record, its
        hosts and resolv.conf, then the caller's work (its result or exception returned)."""
        self.store.attach(sandbox, [])
        self._write_files(req, [], [])
        return _run_beside(beside)

    def _write_files(self, req: AttachRequest, eps: list[Endpoint], upstreams: list[str]) -> None:
        own = [(eps[0].ip, files.own_names(req.hostname, req.domainname))] if eps else []
        embedded = any(self.networks[e.network_id].user_defined for e in eps)
        resolv = files.resolv_conf(
            self._host_resolv(), embedded, req.dns or self.cfg.dns, req.dns_search or self.cfg.dns_search,
            req.dns_options or self.cfg.dns_options,
        )  # fmt: skip
        extra = self._extra_hosts(req) + self._link_hosts(req, eps)
        _atomic_write(req.files_dir / "hosts", files.hosts_file(own, extra))
        _atomic_write(req.files_dir / "resolv.conf", resolv)

    def _write_host_files(self, req: AttachRequest) -> None:
        try:
            hosts = self.cfg.host_hosts.read_text()
        except OSError:
            hosts = files.HOSTS_HEADER
        if hosts and not hosts.endswith("\n"):
            hosts += "\n"
        hosts += "".join(f"{ip}\t{name}\n" for name, ip in self._extra_hosts(req))
        _atomic_write(req.files_dir / "hosts", hosts)
        try:
            resolv = self.cfg.host_resolv_conf.read_text()
        except OSError:
            resolv = ""
        if req.dns or req.dns_search or req.dns_options:
            resolv = files.resolv_conf(self._host_resolv(), False, req.dns, req.dns_search, req.dns_options)
        _atomic_write(req.files_dir / "resolv.conf", resolv)

    # -- the embedded DNS server's view ----------------------------------------------------------
    def _dns_lookup(self, cid: str, name: str) -> list[str]:
        live = self.live.get(cid)
        if live is None:
            return []
        out: list[str] = []
        for tid, _tname, alias in live.links or tuple(tuple(x) for x in live.sandbox.data.get("links") or ()):
            target = self.live.get(tid)
            if alias.lower() == name and target is not None:
                out += [ep.ip for nid, ep in target.endpoints.items() if nid in live.endpoints and ep.ip]
        for nid, own in live.endpoints.items():
            net = self.networks.get(nid)
            if net is None or not net.user_defined:
                continue
            # this endpoint's links: the alias stands for the target's name on this network
            wanted = {name, *(target.lower() for target, alias in own.links if alias.lower() == name)}
            for other in self.live.values():
                ep = other.endpoints.get(nid)
                if ep is None or not ep.ip:
                    continue
                if any(_names(ep, n) for n in wanted):
                    out += [a for a in (ep.ip, ep.ip6) if a and a not in out]
        return out

    def _dns_reverse(self, cid: str, ip: str) -> str:
        """A reverse lookup of a container's address on one of the asker's user networks:
        ``NAME.NETWORK`` (dockerd's answer)."""
        live = self.live.get(cid)
        if live is None or not ip:
            return ""
        for nid in live.endpoints:
            net = self.networks.get(nid)
            if net is None or not net.user_defined:
                continue
            for other in self.live.values():
                ep = other.endpoints.get(nid)
                if ep is not None and ep.ip == ip:
                    return f"{ep.container_name}.{net.name}"
        return ""

    def _dns_upstreams(self, cid: str) -> list[str]:
        live = self.live.get(cid)
        return list(live.upstreams) if live is not None else []

    # -- the subnet lock -----------------------------------------------------------------------
    def host_lock(self) -> _HostLock:
        return _HostLock(self.cfg.lock_path)


def _any(ip: str) -> str:
    return "" if ip in ("0.0.0.0", "::") else ip


def _opt_bool(options: dict[str, str], key: str, default: bool) -> bool:
    value = options.get(key)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise InvalidParameter(f"invalid value {value!r} for option {key}: want true or false")


def _names(ep: Endpoint, name: str) -> bool:
    cid = ep.container_id
    if name in (ep.container_name.lower(), cid, cid[:12]):
        return True
    return any(a.lower() == name for a in ep.aliases)


def _copy_files(src: Path, dst: Path) -> None:
    for name in ("hosts", "resolv.conf"):
        try:
            _atomic_write(dst / name, (src / name).read_text())
        except FileNotFoundError:
            continue


def _atomic_write(path: Path, text: str) -> None:
    """``path`` replaced by a file of ``text`` (0644), unless it holds just that already: the
    create wrote hosts and resolv.conf as `--network none` has them, and a write and a rename
    over them cost ~0.25 ms each on the start's path (ext4)."""
    if _holds(path, text.encode()):
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o644)
    tmp.replace(path)


def _holds(path: Path, data: bytes) -> bool:
    """True if ``path`` is a regular file of mode 0644 whose content is ``data``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or stat.S_IMODE(st.st_mode) != 0o644 or st.st_size != len(data):
            return False
        return os.read(fd, len(data) + 1) == data
    except OSError:
        return False
    finally:
        os.close(fd)


class _HostLock:
    """A host-wide lock around choosing a subnet and putting it on a bridge, so two daemons
    starting at once never pick the same one (each sees the other's bridge address after)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    async def __aenter__(self) -> _HostLock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        await asyncio.to_thread(fcntl.flock, self.fd, fcntl.LOCK_EX)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        os.close(self.fd)
        self.fd = -1
