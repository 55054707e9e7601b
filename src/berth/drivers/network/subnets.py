"""Choosing a subnet for a bridge network that collides with nothing on the host (pure).

Like dockerd, berth takes the first subnet of its address pools that overlaps no route, no
interface address and no nameserver of the host, and no other network of its own. The pools are
Docker's defaults (172.17.0.0/16 … 172.31.0.0/16, then 192.168.0.0/16 cut into /20s) unless
``--default-address-pool base=CIDR,size=N`` says otherwise.

    >>> pools = parse_pools(["base=10.10.0.0/16,size=24"])
    >>> str(pick(pools, [ipaddress.ip_network("10.10.0.0/24")]))
    '10.10.1.0/24'
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from berth.errors import InvalidParameter, Unavailable

IPv4Net = ipaddress.IPv4Network


@dataclass(frozen=True)
class Pool:
    base: IPv4Net
    size: int  # prefix length of the subnets cut from base

    def subnets(self) -> Iterator[IPv4Net]:
        if self.size <= self.base.prefixlen:
            yield self.base
        else:
            yield from self.base.subnets(new_prefix=self.size)


DEFAULT_POOLS: tuple[Pool, ...] = tuple(
    Pool(ipaddress.IPv4Network(f"172.{n}.0.0/16"), 16) for n in range(17, 32)
) + (Pool(ipaddress.IPv4Network("192.168.0.0/16"), 20),)


def parse_pool(text: str) -> Pool:
    """``base=10.10.0.0/16,size=24`` (dockerd's ``--default-address-pool``)."""
    fields = dict(part.partition("=")[::2] for part in text.split(",") if part)
    try:
        base = ipaddress.IPv4Network(fields["base"], strict=True)
        size = int(fields.get("size") or base.prefixlen)
    except (KeyError, ValueError) as exc:
        raise InvalidParameter(
            f"invalid default address pool {text!r}: want base=CIDR,size=PREFIXLEN ({exc})"
        ) from exc
    if not base.prefixlen <= size <= 30:
        raise InvalidParameter(f"invalid default address pool {text!r}: size must be {base.prefixlen}..30")
    return Pool(base, size)


def parse_pools(texts: Iterable[str]) -> tuple[Pool, ...]:
    pools = tuple(parse_pool(t) for t in texts)
    return pools or DEFAULT_POOLS


def overlaps(net: IPv4Net, taken: Iterable[IPv4Net]) -> bool:
    return any(net.overlaps(t) for t in taken)


def check_free(net: IPv4Net, taken: Iterable[IPv4Net], what: str) -> None:
    """InvalidParameter when ``net`` overlaps something the host has.

    >>> check_free(ipaddress.IPv4Network("10.1.0.0/24"), [ipaddress.IPv4Network("10.2.0.0/16")], "--bip")
    """
    for t in taken:
        if net.overlaps(t):
            raise InvalidParameter(f"{what} {net} overlaps {t}, which the host already routes or has an address in")


def pick(pools: Iterable[Pool], taken: list[IPv4Net]) -> IPv4Net:
    """The first pool subnet that overlaps nothing in ``taken``; Unavailable when none is left."""
    for pool in pools:
        for net in pool.subnets():
            if not overlaps(net, taken):
                return net
    raise Unavailable("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")


def host_taken(routes: Iterable[str], addresses: Iterable[str], nameservers: Iterable[str]) -> list[IPv4Net]:
    """What the host already uses: route destinations (not the default route), interface
    networks, and each nameserver as a /32."""
    out: list[IPv4Net] = []
    for r in routes:
        net = ipaddress.ip_network(r, strict=False)
        if isinstance(net, IPv4Net) and net.prefixlen > 0:
            out.append(net)
    for a in addresses:
        iface = ipaddress.ip_interface(a)
        if isinstance(iface, ipaddress.IPv4Interface) and not iface.ip.is_loopback:
            out.append(iface.network)
    for ns in nameservers:
        try:
            ip = ipaddress.ip_address(ns)
        except ValueError:
            continue
        if isinstance(ip, ipaddress.IPv4Address):
            out.append(ipaddress.IPv4Network(f"{ip}/32"))
    return out
