"""IP address management for one network (pure; the leases themselves live in SQLite).

Addresses are handed out serially, as dockerd's bridge driver does: the next free address after
the last one given, wrapping around, so a just-released address is not reused at once. The
network and broadcast addresses, the gateway and auxiliary addresses are never given; dynamic
addresses come from ``ip_range`` when the network has one, a requested (``--ip``) address may be
anywhere in the subnet.

    >>> pool = AddressPool("10.1.0.0/29", "10.1.0.1")
    >>> pool.allocate(used=set(), last="")
    '10.1.0.2'
    >>> pool.allocate(used={"10.1.0.2"}, last="10.1.0.2")
    '10.1.0.3'
    >>> pool.allocate(used=set(), last="", requested="10.1.0.6")
    '10.1.0.6'
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from berth.errors import Forbidden, InvalidParameter, Unavailable


class AddressPool:
    def __init__(self, subnet: str, gateway: str = "", ip_range: str = "", reserved: Iterable[str] = ()) -> None:
        self.subnet = ipaddress.ip_network(subnet)
        self.range = ipaddress.ip_network(ip_range) if ip_range else self.subnet
        self.gateway = gateway
        self.reserved = {str(ipaddress.ip_address(a)) for a in reserved}
        if gateway:
            self.reserved.add(str(ipaddress.ip_address(gateway)))

    def _forbidden(self, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if str(addr) in self.reserved or addr == self.subnet.network_address:
            return True
        return self.subnet.version == 4 and self.subnet.prefixlen < 31 and addr == self.subnet.broadcast_address

    def check(self, requested: str, used: set[str]) -> str:
        """Validate a requested address; its canonical text."""
        try:
            addr = ipaddress.ip_address(requested)
        except ValueError as exc:
            raise InvalidParameter(f"invalid IP address {requested!r}") from exc
        if addr not in self.subnet:
            raise InvalidParameter(
                f"invalid address {requested}: it does not belong to any of this network's subnets"
            )
        text = str(addr)
        if text in used or self._forbidden(addr):
            raise Forbidden(f"Address already in use: {text}")
        return text

    def allocate(self, used: set[str], last: str, requested: str = "") -> str:
        """An address not in ``used``: ``requested`` if given, else the next after ``last``."""
        if requested:
            return self.check(requested, used)
        first = int(self.range.network_address)
        size = self.range.num_addresses
        start = 0
        if last:
            lastnum = int(ipaddress.ip_address(last))
            if first <= lastnum < first + size:
                start = lastnum - first + 1
        for i in range(size):
            num = first + (start + i) % size
            addr = ipaddress.ip_address(num)
            text = str(addr)
            if text in used or self._forbidden(addr) or addr not in self.subnet:
                continue
            return text
        raise Unavailable(f"No available addresses on this pool ({self.subnet})")


def default_gateway(subnet: str) -> str:
    """The first usable address of the subnet (dockerd's choice when none is given).

    >>> default_gateway("10.1.0.0/24")
    '10.1.0.1'
    """
    net = ipaddress.ip_network(subnet)
    return str(net.network_address + 1)
