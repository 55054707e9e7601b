"""Host ports: who has which, choosing ephemeral ones, and holding them on the host.

A published port is served by DNAT in the kernel, not by a process listening on it; so that no
host process can take the port while a container has it (and so that a port a host process
already has is refused at start with a clear error), berth binds a socket on it without
listening and holds it for as long as the mapping exists. The socket has no SO_REUSEADDR, so any
other bind of that port on an overlapping address fails.

    ports = PortAllocator()
    done, held = ports.allocate("web", "1a2b…", [PortMapping("tcp", 80, "127.0.0.1", 0)])
    ports.release(held)
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from berth.drivers.network.model import PortMapping
from berth.errors import SystemFailure

IPPROTO_SCTP = 132
EPHEMERAL_DEFAULT = (49153, 65535)


@dataclass
class Held:
    """The host ports one container holds."""

    mappings: list[PortMapping]
    sockets: list[socket.socket]


def ephemeral_range(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in path.read_text().split())
        return lo, hi
    except (OSError, ValueError):
        return EPHEMERAL_DEFAULT


def _bind(proto: str, ip: str, port: int) -> socket.socket | None:
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    protonum = IPPROTO_SCTP if proto == "sctp" else 0
    try:
        s = socket.socket(socket.AF_INET, kind | socket.SOCK_CLOEXEC, protonum)
    except OSError:
        if proto == "sctp":
            return None  # no SCTP in this kernel: nothing to hold
        raise
    try:
        s.bind((ip or "0.0.0.0", port))
    except OSError:
        s.close()
        raise
    return s


class PortAllocator:
    def __init__(self) -> None:
        self.taken: dict[tuple[str, int], set[str]] = {}  # (proto, port) -> host IPs ("" = all)
        self._next: dict[str, int] = {}

    def _conflicts(self, proto: str, ip: str, port: int) -> bool:
        ips = self.taken.get((proto, port), set())
        return bool(ips) and ("" in ips or ip == "" or ip in ips)

    def _take(self, m: PortMapping) -> None:
        self.taken.setdefault((m.proto, m.host_port), set()).add(m.host_ip)

    def _untake(self, m: PortMapping) -> None:
        ips = self.taken.get((m.proto, m.host_port))
        if ips is not None:
            ips.discard(m.host_ip)
            if not ips:
                del self.taken[(m.proto, m.host_port)]

    def allocate(self, endpoint: str, requested: Iterable[PortMapping]) -> Held:
        """Choose and hold a host port for every mapping; all or none. ``endpoint`` names the
        endpoint in errors (Docker's ``NAME (ID)``)."""
        held = Held([], [])
        try:
            for m in requested:
                done, sock = self._one(endpoint, m)
                held.mappings.append(done)
                if sock is not None:
                    held.sockets.append(sock)
        except BaseException:
            self.release(held)
            raise
        return held

    def _one(self, endpoint: str, m: PortMapping) -> tuple[PortMapping, socket.socket | None]:
        if m.host_port and not m.host_port_end:
            candidates: Iterable[int] = [m.host_port]
        elif m.host_port:
            candidates = range(m.host_port, m.host_port_end + 1)
        else:
            lo, hi = ephemeral_range()
            start = self._next.get(m.proto, lo)
            if not lo <= start <= hi:
                start = lo
            candidates = [*range(start, hi + 1), *range(lo, start)]
        fixed = bool(m.host_port) and not m.host_port_end
        last_error = ""
        for port in candidates:
            if self._conflicts(m.proto, m.host_ip, port):
                last_error = f"Bind for {m.shown_ip()}:{port} failed: port is already allocated"
                if fixed:
                    break
                continue
            try:
                sock = _bind(m.proto, m.host_ip, port)
            except OSError as exc:
                last_error = f"listen {m.proto}4 {m.shown_ip()}:{port}: bind: {_text(exc)}"
                if fixed or exc.errno != errno.EADDRINUSE:
                    break
                continue
            done = replace(m, host_port=port, host_port_end=0)
            self._take(done)
            if not m.host_port:
                self._next[m.proto] = port + 1
            return done, sock
        if not last_error:
            last_error = f"no free host port for {m.key}"
        raise SystemFailure(f"driver failed programming external connectivity on endpoint {endpoint}: {last_error}")

    def restore(self, mappings: Iterable[PortMapping]) -> Held:
        """After a daemon restart: take the recorded ports again; a port some host process took
        meanwhile stays mapped (the DNAT still wins) but cannot be held."""
        held = Held([], [])
        for m in mappings:
            self._take(m)
            held.mappings.append(m)
            with contextlib.suppress(OSError):
                sock = _bind(m.proto, m.host_ip, m.host_port)
                if sock is not None:
                    held.sockets.append(sock)
        return held

    def release(self, held: Held) -> None:
        for s in held.sockets:
            s.close()
        for m in held.mappings:
            self._untake(m)
        held.sockets.clear()
        held.mappings.clear()


def _text(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "address already in use"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "cannot assign requested address"
    return (exc.strerror or str(exc)).lower()
