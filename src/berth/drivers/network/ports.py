"""Published ports: Docker's ``PortBindings``/``ExposedPorts``/``PublishAllPorts`` → mappings (pure).

The docker CLI has already expanded ``-p 8000-8001:80-81`` into one key per container port; a
host port may still be a range (``-p 8000-8010:80``: the first free one is taken) or empty
(an ephemeral port). ``-P`` publishes every exposed port that has no binding on an ephemeral port.

    >>> requested({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}, None, False)
    [PortMapping(proto='tcp', container_port=80, host_ip='127.0.0.1', host_port=8080, host_port_end=0)]
    >>> docker_ports({"80/tcp": {}, "53/udp": {}}, [PortMapping("tcp", 80, "", 8080)])
    {'53/udp': None, '80/tcp': [{'HostIp': '0.0.0.0', 'HostPort': '8080'}]}
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from berth.drivers.network.model import PortMapping
from berth.errors import InvalidParameter

PROTOCOLS = ("tcp", "udp", "sctp")


def split_key(key: str) -> tuple[int, str]:
    """``"80/tcp"`` → (80, "tcp"); ``"80"`` is tcp. InvalidParameter with Docker's text."""
    number, _, proto = str(key).partition("/")
    proto = (proto or "tcp").lower()
    port = _port(number)
    if proto not in PROTOCOLS:
        raise InvalidParameter(f"invalid port specification: {key!r}".replace("'", '"'))
    return port, proto


def _port(text: str, allow_zero: bool = False) -> int:
    if not text.isdigit() or not (0 if allow_zero else 1) <= int(text) <= 65535:
        raise InvalidParameter(f'invalid port specification: "{text}"')
    return int(text)


def host_port_range(text: str) -> tuple[int, int]:
    """``""`` → (0, 0) (ephemeral), ``"8080"`` → (8080, 0), ``"8000-8010"`` → (8000, 8010)."""
    text = (text or "").strip()
    if not text:
        return 0, 0
    lo, sep, hi = text.partition("-")
    start = _port(lo, allow_zero=True)
    if not sep:
        return start, 0
    end = _port(hi)
    if end < start:
        raise InvalidParameter(f'invalid port specification: "{text}"')
    return start, (end if end != start else 0)


def _host_ip(text: str) -> str:
    text = (text or "").strip().strip("[]")
    if not text:
        return ""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError as exc:
        raise InvalidParameter(f"invalid IP address in port binding: {text!r}") from exc
    if ip.version == 6 and not ip.is_unspecified:
        raise InvalidParameter(f"publishing on the IPv6 address {text} is not supported by berth (IPv4 only)")
    return "" if ip.is_unspecified else str(ip)


def validate(bindings: dict[str, Any] | None, exposed: dict[str, Any] | None) -> None:
    """The checks dockerd makes at create (400 ``invalid port specification``)."""
    requested(bindings, exposed, False)
    for key in exposed or {}:
        split_key(key)


def requested(
    bindings: dict[str, Any] | None, exposed: dict[str, Any] | None, publish_all: bool
) -> list[PortMapping]:
    """The mappings asked for, host ports not yet chosen where they are 0 or a range."""
    out: list[PortMapping] = []
    for key, items in sorted((bindings or {}).items(), key=lambda kv: split_key(kv[0])):
        port, proto = split_key(key)
        for item in items or [{}]:
            item = item or {}
            start, end = host_port_range(str(item.get("HostPort") or ""))
            out.append(PortMapping(proto, port, _host_ip(str(item.get("HostIp") or "")), start, end))
    if publish_all:
        bound = {m.key for m in out}
        for key in sorted(exposed or {}, key=split_key):
            port, proto = split_key(key)
            if f"{port}/{proto}" not in bound:
                out.append(PortMapping(proto, port))
    return out


def exposed_keys(exposed: dict[str, Any] | None, mappings: Iterable[PortMapping]) -> list[str]:
    keys = {f"{p}/{proto}" for p, proto in (split_key(k) for k in exposed or {})}
    keys.update(m.key for m in mappings)
    return sorted(keys)  # as Go orders map keys in JSON


def docker_ports(exposed: dict[str, Any] | None, mappings: Iterable[PortMapping]) -> dict[str, Any]:
    """``NetworkSettings.Ports`` of a running container: every exposed port, its bindings or null."""
    mappings = list(mappings)
    out: dict[str, Any] = {}
    for key in exposed_keys(exposed, mappings):
        binds = [{"HostIp": m.shown_ip(), "HostPort": str(m.host_port)} for m in mappings if m.key == key]
        out[key] = binds or None
    return out


def ps_ports(exposed: dict[str, Any] | None, mappings: Iterable[PortMapping]) -> list[dict[str, Any]]:
    """The ``Ports`` of a ``GET /containers/json`` row."""
    mappings = list(mappings)
    out: list[dict[str, Any]] = []
    for key in exposed_keys(exposed, mappings):
        port, proto = split_key(key)
        published = [m for m in mappings if m.key == key]
        for m in published:
            out.append({"IP": m.shown_ip(), "PrivatePort": port, "PublicPort": m.host_port, "Type": proto})
        if not published:
            out.append({"PrivatePort": port, "Type": proto})
    return out


def from_docker(ports: dict[str, Any] | None) -> list[PortMapping]:
    """Back from ``NetworkSettings.Ports`` (what a record keeps) to mappings."""
    out = []
    for key, binds in (ports or {}).items():
        port, proto = split_key(key)
        for b in binds or []:
            ip = b.get("HostIp") or ""
            out.append(PortMapping(proto, port, "" if ip in ("0.0.0.0", "::") else ip, int(b.get("HostPort") or 0)))
    return out
