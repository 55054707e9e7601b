"""The embedded DNS server's answers (no sockets): names, AAAA NODATA, reverse lookups, forwarding."""

from __future__ import annotations

import asyncio

from dnslib import QTYPE, RCODE, DNSRecord  # type: ignore[import-untyped]

from berth.drivers.network.dns import DnsServer

NAMES = {("c1", "db"): ["10.1.0.2", "fd00::2"], ("c1", "web"): ["10.1.0.3"]}


def server() -> DnsServer:
    return DnsServer(
        lookup=lambda cid, name: NAMES.get((cid, name), []),
        upstreams=lambda cid: [],
        reverse=lambda cid, ip: "db.net" if (cid, ip) == ("c1", "10.1.0.2") else "",
    )


def ask(name: str, qtype: str, cid: str = "c1") -> DNSRecord | None:
    raw = server().answer_local(cid, DNSRecord.question(name, qtype).pack())
    return None if raw is None else DNSRecord.parse(raw)


def test_names_and_types() -> None:
    a = ask("db", "A")
    assert a is not None and [str(r.rdata) for r in a.rr] == ["10.1.0.2"] and a.header.rcode == RCODE.NOERROR
    aaaa = ask("DB.", "AAAA")  # case and the trailing dot do not matter
    assert aaaa is not None and [str(r.rdata) for r in aaaa.rr] == ["fd00::2"]
    nodata = ask("web", "AAAA")
    assert nodata is not None and nodata.rr == [] and nodata.header.rcode == RCODE.NOERROR
    assert ask("db", "A", cid="other") is None  # another container's view: forwarded
    assert ask("example.test", "A") is None


def test_reverse_lookups() -> None:
    ptr = ask("2.0.1.10.in-addr.arpa", "PTR")
    assert ptr is not None and ptr.rr[0].rtype == QTYPE.PTR and str(ptr.rr[0].rdata) == "db.net."
    assert ask("9.9.9.9.in-addr.arpa", "PTR") is None


def test_no_upstream_is_servfail() -> None:
    q = DNSRecord.question("example.test", "A")
    raw = asyncio.run(server().forward("c1", q.pack(), tcp=False))
    assert raw is not None and DNSRecord.parse(raw).header.rcode == RCODE.SERVFAIL


def test_garbage_is_not_answered() -> None:
    assert server().answer_local("c1", b"\x01\x02") == b""
    assert server().answer_local("c1", b"\x00" * 12) is None
