"""A container's ``/etc/hosts`` and ``/etc/resolv.conf``, as dockerd writes them (pure).

resolv.conf on the default bridge is the host's with loopback nameservers left out (they mean
nothing inside the container's namespace), or Google's public servers when none is left; on a
user-defined network the embedded DNS server (127.0.0.11) is the nameserver and the host's (or
``--dns``) servers become its upstreams. ``--dns``/``--dns-search``/``--dns-option`` replace the
host's lines of the same kind.

    >>> print(resolv_conf(parse_resolv("nameserver 127.0.0.53\\nsearch lan\\n"), embedded=False), end="")
    search lan
    nameserver 8.8.8.8
    nameserver 8.8.4.4
    >>> hosts_file([("10.1.0.2", "web")], [("db", "10.1.0.3")]).splitlines()[-2:]
    ['10.1.0.3\\tdb', '10.1.0.2\\tweb']
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from berth.errors import InvalidParameter

EMBEDDED_DNS = "127.0.0.11"
DEFAULT_NAMESERVERS = ("8.8.8.8", "8.8.4.4")
HOSTS_HEADER = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


@dataclass
class Resolv:
    nameservers: list[str] = field(default_factory=list)
    search: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)


def parse_resolv(text: str) -> Resolv:
    r = Resolv()
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if not words:
            continue
        if words[0] == "nameserver" and len(words) > 1:
            r.nameservers.append(words[1])
        elif words[0] in ("search", "domain"):
            r.search = words[1:]
        elif words[0] == "options":
            r.options += words[1:]
    return r


def is_loopback(ns: str) -> bool:
    try:
        return ipaddress.ip_address(ns.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def upstreams(host: Resolv, dns: Iterable[str] = ()) -> list[str]:
    """The servers the embedded DNS forwards to: ``--dns`` if given, else the host's."""
    return list(dns) or list(host.nameservers)


def resolv_conf(
    host: Resolv,
    embedded: bool,
    dns: Iterable[str] = (),
    dns_search: Iterable[str] = (),
    dns_options: Iterable[str] = (),
) -> str:
    dns, dns_search, dns_options = list(dns), list(dns_search), list(dns_options)
    search = dns_search or host.search
    if search == ["."]:
        search = []
    options = dns_options or list(host.options)
    if embedded:
        servers = [EMBEDDED_DNS]
        if not any(o.startswith("ndots:") for o in options):
            options = options + ["ndots:0"]
    else:
        servers = dns or [ns for ns in host.nameservers if not is_loopback(ns)] or list(DEFAULT_NAMESERVERS)
    lines = []
    if search:
        lines.append("search " + " ".join(search))
    lines += [f"nameserver {ns}" for ns in servers]
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def parse_extra_host(item: str, host_gateway: str) -> tuple[str, str]:
    """``name:ip`` or ``name=ip`` (API ≥ 1.44); ``host-gateway`` is the default bridge's gateway."""
    if "=" in item:
        name, _, ip = item.partition("=")
    else:
        name, _, ip = item.partition(":")
    name, ip = name.strip(), ip.strip().strip("[]")
    if ip == "host-gateway":
        if not host_gateway:
            raise InvalidParameter(f"invalid --add-host {item!r}: no host-gateway address (no default bridge)")
        ip = host_gateway
    if not name:
        raise InvalidParameter(f"invalid argument {item!r} for \"--add-host\" flag: bad format for add-host")
    try:
        ip = str(ipaddress.ip_address(ip))
    except ValueError as exc:
        raise InvalidParameter(f"invalid IP address in add-host: {ip!r}") from exc
    return name, ip


def hosts_file(own: Iterable[tuple[str, str]], extra: Iterable[tuple[str, str]]) -> str:
    """Docker's layout: the standard lines, ``--add-host`` entries, then the container's own."""
    text = HOSTS_HEADER
    for name, ip in extra:
        text += f"{ip}\t{name}\n"
    for ip, names in own:
        text += f"{ip}\t{names}\n"
    return text


def own_names(hostname: str, domainname: str) -> str:
    """``web.example.com web`` with a domain name, else ``web``."""
    if domainname:
        return f"{hostname}.{domainname} {hostname}"
    return hostname
