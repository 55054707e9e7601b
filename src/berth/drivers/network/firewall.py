"""berth's nftables rules, rendered as text (pure).

berth keeps all of its rules in tables of its own, named for the daemon (``berth-<tag>``), and
never reads or edits any other table. The ``ip`` table is replaced as a whole in one transaction
when networks change (``table {}; delete table; table {...}``: nft applies a buffer atomically),
and published ports are elements of two maps, added and deleted one container at a time::

    map dnat_ip   { ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service }  # -p IP:P:C
    map dnat_any  { inet_proto . inet_service : ipv4_addr . inet_service }              # -p P:C

Both are looked up for packets to a local address, in prerouting (from outside and from
containers: hairpin) and in output (from the host itself, 127.0.0.1 included: the bridges have
``route_localnet`` and the 127/8 source is masqueraded, so no userland proxy is needed).

    >>> t = render(Table("berth-1a2b", [Net("br0", "10.1.0.0/24")], outbound=True))
    >>> "ip saddr 10.1.0.0/24 oifname != \\"br0\\" masquerade" in t
    True
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Net:
    """One bridge network as the firewall sees it."""

    bridge: str
    subnet: str
    internal: bool = False
    icc: bool = True
    masquerade: bool = True


@dataclass(frozen=True)
class Dnat:
    """One published port: ``host_ip`` "" means every local address."""

    proto: str
    host_ip: str
    host_port: int
    ip: str
    port: int

    def key(self) -> str:
        if self.host_ip:
            return f"{self.host_ip} . {self.proto} . {self.host_port}"
        return f"{self.proto} . {self.host_port}"

    def element(self) -> str:
        return f"{self.key()} : {self.ip} . {self.port}"

    @property
    def map(self) -> str:
        return "dnat_ip" if self.host_ip else "dnat_any"


@dataclass(frozen=True)
class Table:
    name: str
    nets: list[Net]
    # False (--ip-forward=false): nothing from a bridge may leave through another interface
    outbound: bool = True
    dnats: list[Dnat] = field(default_factory=list)


def _q(name: str) -> str:
    return '"' + name.replace('"', "") + '"'


def render(t: Table) -> str:
    """The whole ``ip`` table, replacing any previous one atomically."""
    bridges = [n.bridge for n in t.nets]
    lines = [f"table ip {t.name} {{}}", f"delete table ip {t.name}", f"table ip {t.name} {{"]
    lines.append("\tset bridges { type ifname;" + (f" elements = {{ {', '.join(map(_q, bridges))} }};" if bridges else "") + " }")
    for m, key in (("dnat_ip", "ipv4_addr . inet_proto . inet_service"), ("dnat_any", "inet_proto . inet_service")):
        elems = [d.element() for d in t.dnats if d.map == m]
        body = f" elements = {{ {', '.join(elems)} }};" if elems else ""
        lines.append(f"\tmap {m} {{ type {key} : ipv4_addr . inet_service;{body} }}")
    lines += [
        "\tchain ports {",
        "\t\tdnat ip to ip daddr . meta l4proto . th dport map @dnat_ip",
        "\t\tdnat ip to meta l4proto . th dport map @dnat_any",
        "\t}",
        "\tchain prerouting {",
        "\t\ttype nat hook prerouting priority dstnat; policy accept;",
        "\t\tfib daddr type local jump ports",
        "\t}",
        "\tchain output {",
        "\t\ttype nat hook output priority -100; policy accept;",
        "\t\tfib daddr type local jump ports",
        "\t}",
        "\tchain postrouting {",
        "\t\ttype nat hook postrouting priority srcnat; policy accept;",
        "\t\tip saddr 127.0.0.0/8 oifname @bridges masquerade",
    ]
    for n in t.nets:
        # hairpin: a container reaching a published port of its own network through a host
        # address must see the reply come from the host, not straight from the other container
        lines.append(f"\t\tip saddr {n.subnet} oifname {_q(n.bridge)} ct status dnat masquerade")
        if n.masquerade and not n.internal and t.outbound:
            lines.append(f"\t\tip saddr {n.subnet} oifname != {_q(n.bridge)} masquerade")
    lines += [
        "\t}",
        "\tchain raw_prerouting {",
        "\t\ttype filter hook prerouting priority raw; policy accept;",
        # route_localnet on the bridges must not let a container reach the host's loopback services
        "\t\tiifname @bridges ip daddr 127.0.0.0/8 drop",
        "\t}",
        "\tchain forward {",
        "\t\ttype filter hook forward priority filter; policy accept;",
    ]
    for n in t.nets:
        b = _q(n.bridge)
        if n.internal:
            lines.append(f"\t\tiifname {b} oifname != {b} drop")
            lines.append(f"\t\toifname {b} iifname != {b} drop")
        # networks are isolated from each other
        lines.append(f"\t\tiifname {b} oifname @bridges oifname != {b} drop")
        if not n.icc:
            lines.append(f"\t\tiifname {b} oifname {b} drop")
        if not t.outbound:
            lines.append(f"\t\tiifname {b} oifname != @bridges drop")
    lines += ["\t}", "}"]
    return "\n".join(lines) + "\n"


def render_bridge(name: str) -> str:
    """Removes a ``bridge`` table of an older berth (icc=false is now bridge port isolation)."""
    return f"table bridge {name} {{}}\ndelete table bridge {name}\n"


def elements(op: str, table: str, dnats: Iterable[Dnat]) -> str:
    """``add``/``delete`` the given published ports, in one transaction."""
    out = []
    for d in dnats:
        item = d.element() if op == "add" else d.key()
        out.append(f"{op} element ip {table} {d.map} {{ {item} }}")
    return "\n".join(out) + ("\n" if out else "")


def drop_tables(name: str) -> str:
    return f"table ip {name} {{}}\ndelete table ip {name}\ntable bridge {name} {{}}\ndelete table bridge {name}\n"
