"""Links, addresses and routes over netlink (pyroute2's asyncio API, in the daemon's loop).

:class:`HostLinks` works in the host's namespace (bridges, the host side of veths, what routes
and addresses the host has); :func:`configure_inside` configures a container's namespace through
a netlink socket made inside it (see :mod:`berth.drivers.network.netns`).

A veth pair is made with its container end created directly in the container's namespace, up,
with its MAC, and its host end already enslaved to the bridge and up: one request, no move.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from berth.drivers.network.netlink import AsyncIPRoute, NetlinkError
from berth.errors import Conflict, SystemFailure

log = logging.getLogger(__name__)
ENODEV = 19
EEXIST = 17
IFA_F_NODAD = 0x02


def _fail(op: str, obj: str, exc: NetlinkError) -> SystemFailure:
    return SystemFailure(f"{op} {obj}: {os.strerror(exc.code) if exc.code else exc}")


class HostLinks:
    """Netlink in the host's network namespace."""

    def __init__(self) -> None:
        self._ipr: AsyncIPRoute | None = None

    async def ipr(self) -> AsyncIPRoute:
        if self._ipr is None:
            ipr = AsyncIPRoute()
            await ipr.setup_endpoint()
            self._ipr = ipr
        return self._ipr

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None

    async def index(self, name: str) -> int | None:
        ipr = await self.ipr()
        try:
            links = await ipr.link("get", ifname=name)
        except NetlinkError as exc:
            if exc.code == ENODEV:
                return None
            raise _fail("look up link", name, exc) from exc
        return int(links[0]["index"])

    async def kind(self, name: str) -> str:
        ipr = await self.ipr()
        try:
            links = await ipr.link("get", ifname=name)
        except NetlinkError:
            return ""
        info = links[0].get_attr("IFLA_LINKINFO")
        return (info.get_attr("IFLA_INFO_KIND") if info is not None else "") or ""

    async def routes_and_addresses(self) -> tuple[list[str], list[str]]:
        """IPv4 route destinations (every table but local) and interface addresses, as CIDRs."""
        ipr = await self.ipr()
        routes = []
        async for r in await ipr.route("dump", family=socket.AF_INET):
            if r.get("table") == 255:
                continue
            dst = r.get_attr("RTA_DST")
            if dst:
                routes.append(f"{dst}/{r['dst_len']}")
        addrs = []
        async for a in await ipr.addr("dump", family=socket.AF_INET):
            addrs.append(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
        return routes, addrs

    async def bridge_addresses(self, index: int) -> list[str]:
        ipr = await self.ipr()
        out = []
        async for a in await ipr.addr("dump", family=socket.AF_INET, index=index):
            if a["index"] == index:
                out.append(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
        return out

    async def ensure_bridge(self, name: str, address: str, prefixlen: int, mtu: int) -> int:
        """The bridge ``name`` with exactly the address ``address/prefixlen``, up; its index.

        A leftover bridge of the same name (a daemon killed before it cleaned up) is reused;
        a non-bridge link of that name is a conflict."""
        ipr = await self.ipr()
        index = await self.index(name)
        if index is None:
            try:
                await ipr.link("add", ifname=name, kind="bridge", mtu=mtu)
            except NetlinkError as exc:
                raise _fail("create bridge", name, exc) from exc
            index = await self.index(name)
            assert index is not None
        elif await self.kind(name) != "bridge":
            raise Conflict(f"create bridge {name}: a link of that name exists and is not a bridge")
        want = f"{address}/{prefixlen}"
        for have in await self.bridge_addresses(index):
            if have != want:
                ip, _, plen = have.partition("/")
                await ipr.addr("del", index=index, address=ip, prefixlen=int(plen))
        if want not in await self.bridge_addresses(index):
            try:
                await ipr.addr("add", index=index, address=address, prefixlen=prefixlen)
            except NetlinkError as exc:
                raise _fail("add address to bridge", f"{name} ({want})", exc) from exc
        try:
            await ipr.link("set", index=index, state="up", mtu=mtu)
        except NetlinkError as exc:
            raise _fail("bring up bridge", name, exc) from exc
        return index

    async def ensure_address6(self, index: int, address: str, prefixlen: int) -> None:
        """The bridge's IPv6 gateway address (no DAD: it is ours by construction)."""
        ipr = await self.ipr()
        have = set()
        async for a in await ipr.addr("dump", family=socket.AF_INET6, index=index):
            if a["index"] == index:
                have.add(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
        if f"{address}/{prefixlen}" in have:
            return
        try:
            await ipr.addr("add", index=index, address=address, prefixlen=prefixlen, flags=IFA_F_NODAD)
        except NetlinkError as exc:
            raise _fail("add IPv6 address to bridge", f"{address}/{prefixlen}", exc) from exc

    async def delete(self, name: str) -> bool:
        """Delete a link by name; False if there was none."""
        ipr = await self.ipr()
        index = await self.index(name)
        if index is None:
            return False
        try:
            await ipr.link("del", index=index)
        except NetlinkError as exc:
            if exc.code == ENODEV:
                return False
            raise _fail("delete link", name, exc) from exc
        return True

    async def add_veth(
        self, host_name: str, peer_name: str, mac: str, netns_path: Path, bridge_index: int, mtu: int
    ) -> None:
        ipr = await self.ipr()
        fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            await ipr.link(
                "add",
                ifname=host_name,
                kind="veth",
                mtu=mtu,
                master=bridge_index,
                state="up",
                peer={"ifname": peer_name, "address": mac, "net_ns_fd": fd, "mtu": mtu},
            )
        except NetlinkError as exc:
            raise _fail("create veth", f"{host_name} ({peer_name} in {netns_path.name})", exc) from exc
        finally:
            os.close(fd)

    async def hairpin(self, name: str) -> None:
        """Let the bridge send a frame back out of the port it came in: a container reaching its
        own published port through a host address (br_netfilter DNATs it as a bridged frame)."""
        ipr = await self.ipr()
        index = await self.index(name)
        if index is None:
            raise SystemFailure(f"set hairpin mode on {name}: no such link")
        try:
            await ipr.brport("set", index=index, mode=1)
        except NetlinkError as exc:
            raise _fail("set hairpin mode on", name, exc) from exc

    async def isolate(self, name: str) -> None:
        """icc=false: an isolated bridge port cannot reach the other isolated ports of its bridge
        (only the bridge itself, the gateway), whether or not br_netfilter sees bridged frames."""
        ipr = await self.ipr()
        index = await self.index(name)
        if index is None:
            raise SystemFailure(f"isolate bridge port {name}: no such link")
        try:
            await ipr.brport("set", index=index, isolated=1)
        except NetlinkError as exc:
            raise _fail("isolate bridge port", name, exc) from exc

    async def veths_on(self, bridge_index: int) -> list[str]:
        ipr = await self.ipr()
        out = []
        async for link in await ipr.link("dump"):
            if link.get_attr("IFLA_MASTER") == bridge_index:
                out.append(link.get_attr("IFLA_IFNAME"))
        return out


async def configure_inside(
    sock: socket.socket,
    ifname: str,
    address: str,
    prefixlen: int,
    gateway: str,
    loopback: bool,
    default_route: bool,
    address6: str = "",
    prefixlen6: int = 0,
    gateway6: str = "",
) -> None:
    """Inside a container's namespace: ``lo`` up (a new namespace), the address on ``ifname``,
    ``ifname`` up, and the default route through the gateway. The socket is closed after."""
    ipr = AsyncIPRoute(use_socket=sock)
    try:
        await ipr.setup_endpoint()
        if loopback:
            await ipr.link("set", index=1, state="up")
        links = await ipr.link("get", ifname=ifname)
        index = links[0]["index"]
        if address:
            await ipr.addr("add", index=index, address=address, prefixlen=prefixlen)
        await ipr.link("set", index=index, state="up")
        if address6:
            # no duplicate address detection: IPAM made the address unique, and DAD would hold it
            # "tentative" (unusable) for a second after the start
            await ipr.addr("add", index=index, address=address6, prefixlen=prefixlen6, flags=IFA_F_NODAD)
        if default_route and gateway:
            await ipr.route("add", dst="0.0.0.0/0", gateway=gateway, oif=index)
        if default_route and address6 and gateway6:
            await ipr.route("add", dst="::/0", gateway=gateway6, oif=index, family=socket.AF_INET6)
    except NetlinkError as exc:
        raise _fail("configure container interface", f"{ifname} ({address}/{prefixlen})", exc) from exc
    finally:
        ipr.close()
        sock.close()  # pyroute2 leaves a socket it was given open


async def unconfigure_inside(sock: socket.socket, ifname: str) -> None:
    """Delete ``ifname`` inside a container's namespace (disconnect of a running container);
    the host end goes with it."""
    ipr = AsyncIPRoute(use_socket=sock)
    try:
        await ipr.setup_endpoint()
        try:
            links = await ipr.link("get", ifname=ifname)
        except NetlinkError as exc:
            if exc.code == ENODEV:
                return
            raise
        await ipr.link("del", index=links[0]["index"])
    except NetlinkError as exc:
        raise _fail("delete container interface", ifname, exc) from exc
    finally:
        ipr.close()
        sock.close()  # pyroute2 leaves a socket it was given open


def write_sysctl(path: str, value: str) -> str:
    """Write ``/proc/sys/<path>`` if it differs; the previous value."""
    p = Path("/proc/sys") / path
    try:
        old = p.read_text().strip()
        if old != value:
            p.write_text(value + "\n")
        return old
    except OSError as exc:
        raise SystemFailure(f"set sysctl {path.replace('/', '.')}={value}: {exc.strerror}") from exc
