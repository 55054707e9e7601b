"""The embedded DNS server of user-defined networks (dnslib for the wire format).

As in Docker, every container on a user-defined network has ``nameserver 127.0.0.11`` in its
resolv.conf. The daemon listens there *inside the container's network namespace* (a UDP and a
TCP socket made in the namespace, served by the daemon's event loop), so it knows which container
asks and answers from that container's networks only: containers on different networks cannot
resolve each other. Names are container names, ids (full and 12-character) and aliases; anything
else is forwarded to the container's upstream servers (``--dns`` or the host's), from the host's
namespace, and the answer relayed.

    server = DnsServer(lookup=lambda cid, name: ["10.1.0.2"] if name == "db" else [],
                       upstreams=lambda cid: ["10.0.0.53"])
    server.listen(cid, udp_sock, tcp_sock)     # sockets bound to 127.0.0.11:53 in the netns
    server.stop(cid)
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable
from typing import Any

from dnslib import AAAA, PTR, QTYPE, RCODE, RR, A, DNSRecord  # type: ignore[import-untyped]
from dnslib.dns import DNSError  # type: ignore[import-untyped]

log = logging.getLogger(__name__)
TTL = 600  # dockerd's
FORWARD_TIMEOUT = 2.0

Lookup = Callable[[str, str], list[str]]
Reverse = Callable[[str, str], str]
Upstreams = Callable[[str], list[str]]


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer, cid: str) -> None:
        self.server, self.cid = server, cid
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        answer = self.server.answer_local(self.cid, data)
        if answer is not None:
            if self.transport is not None:
                self.transport.sendto(answer, addr)
            return
        self.server.spawn(self._forward(data, addr))

    async def _forward(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = await self.server.forward(self.cid, data, tcp=False)
        if reply is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)


class _Listener:
    def __init__(self, udp: asyncio.DatagramTransport, tcp: asyncio.Server | None) -> None:
        self.udp, self.tcp = udp, tcp

    def close(self) -> None:
        self.udp.close()
        if self.tcp is not None:
            self.tcp.close()


class DnsServer:
    def __init__(self, lookup: Lookup, upstreams: Upstreams, reverse: Reverse | None = None) -> None:
        self.lookup = lookup
        self.upstreams = upstreams
        self.reverse = reverse
        self._listeners: dict[str, _Listener] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def listen(self, cid: str, udp: socket.socket, tcp: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        self.stop(cid)
        transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self, cid), sock=udp)
        server = await asyncio.start_server(lambda r, w: self._tcp_client(cid, r, w), sock=tcp)
        self._listeners[cid] = _Listener(transport, server)

    def stop(self, cid: str) -> None:
        listener = self._listeners.pop(cid, None)
        if listener is not None:
            listener.close()

    def listening(self, cid: str) -> bool:
        return cid in self._listeners

    async def close(self) -> None:
        for cid in list(self._listeners):
            self.stop(cid)
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- answering -------------------------------------------------------------------------
    def answer_local(self, cid: str, data: bytes) -> bytes | None:
        """The reply for a name berth knows, or None to forward the query."""
        try:
            query = DNSRecord.parse(data)
        except (DNSError, struct.error, IndexError, ValueError):
            return None if len(data) >= 12 else b""
        if not query.questions:
            return None
        q = query.q
        name = str(q.qname).rstrip(".").lower()
        if q.qtype == QTYPE.PTR and self.reverse is not None:
            target = self.reverse(cid, _ptr_address(name))
            if not target:
                return None
            reply = query.reply()
            reply.header.ra = 1
            reply.add_answer(RR(q.qname, QTYPE.PTR, rdata=PTR(target + "."), ttl=TTL))
            return bytes(reply.pack())
        ips = self.lookup(cid, name)
        if not ips:
            return None
        reply = query.reply()
        reply.header.ra = 1
        for ip in ips:
            if q.qtype == QTYPE.A and ":" not in ip:
                reply.add_answer(RR(q.qname, QTYPE.A, rdata=A(ip), ttl=TTL))
            elif q.qtype == QTYPE.AAAA and ":" in ip:
                reply.add_answer(RR(q.qname, QTYPE.AAAA, rdata=AAAA(ip), ttl=TTL))
        # a known name with no record of the asked type: NODATA (NOERROR, no answer), never
        # forwarded (the outside world must not answer for a container's name)
        return bytes(reply.pack())

    async def forward(self, cid: str, data: bytes, tcp: bool) -> bytes | None:
        servers = self.upstreams(cid)
        for server in servers:
            try:
                if tcp:
                    return await asyncio.wait_for(_ask_tcp(server, data), FORWARD_TIMEOUT)
                return await asyncio.wait_for(_ask_udp(server, data), FORWARD_TIMEOUT)
            except (TimeoutError, OSError) as exc:
                log.debug("dns forward to %s for %s: %s", server, cid[:12], exc)
                continue
        return _servfail(data)

    async def _tcp_client(self, cid: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readexactly(2)
                (size,) = struct.unpack("!H", head)
                data = await reader.readexactly(size)
                answer = self.answer_local(cid, data)
                if answer is None:
                    answer = await self.forward(cid, data, tcp=True)
                if answer:
                    writer.write(struct.pack("!H", len(answer)) + answer)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _ptr_address(name: str) -> str:
    """``2.0.1.10.in-addr.arpa`` → ``10.1.0.2`` ("" for anything else)."""
    if name.endswith(".in-addr.arpa"):
        parts = name.removesuffix(".in-addr.arpa").split(".")
        if len(parts) == 4 and all(p.isdigit() for p in parts):
            return ".".join(reversed(parts))
    return ""


def _servfail(data: bytes) -> bytes | None:
    try:
        query = DNSRecord.parse(data)
    except (DNSError, struct.error, IndexError, ValueError):
        return None
    reply = query.reply()
    reply.header.rcode = RCODE.SERVFAIL
    return bytes(reply.pack())


class _Once(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.done.done():
            self.done.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


def _split(server: str) -> tuple[str, int]:
    host, port = server, 53
    if server.count(":") == 1:
        host, _, p = server.partition(":")
        port = int(p)
    return host, port


async def _ask_udp(server: str, data: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(_Once, remote_addr=_split(server))
    try:
        transport.sendto(data)
        return await proto.done
    finally:
        transport.close()


async def _ask_tcp(server: str, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(*_split(server))
    try:
        writer.write(struct.pack("!H", len(data)) + data)
        await writer.drain()
        (size,) = struct.unpack("!H", await reader.readexactly(2))
        return await reader.readexactly(size)
    finally:
        writer.close()
