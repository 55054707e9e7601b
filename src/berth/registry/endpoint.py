"""Where a registry is reached: mirrors, https or plain http, and which certificates to use.

Docker's rules, with one extension:

- ``docker.io`` is served by ``registry-1.docker.io``.
- A registry is tried over https first; an *insecure* registry (``--insecure-registry``
  HOST[:PORT] or CIDR, and always 127.0.0.0/8 and ::1, as Docker) is tried with https
  without verification, then over plain http.
- ``/etc/docker/certs.d/HOST[:PORT]/`` (and berth's own ``/etc/berth/certs.d``) holds ``*.crt``
  CA certificates and ``*.cert``/``*.key`` client certificate pairs for that registry.
- Mirrors are tried first, in order. Docker takes mirrors for Docker Hub only
  (``registry-mirrors``); berth also takes them for any registry (``HOST=URL``).

    eps = Endpoints(insecure=["10.0.0.0/8"], mirrors={"docker.io": ["https://mirror.local"]})
    for ep in eps.for_domain("127.0.0.1:5000"):   # [https unverified, http]
        ep.url("/v2/")
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from berth.errors import InvalidParameter

DOCKER_HUB = "docker.io"
DOCKER_HUB_HOST = "registry-1.docker.io"
CERTS_DIRS = (Path("/etc/docker/certs.d"), Path("/etc/berth/certs.d"))
_ALWAYS_INSECURE = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@dataclass(frozen=True)
class Endpoint:
    domain: str  # the registry as named in references ("docker.io", "127.0.0.1:5000")
    host: str  # what is dialled ("registry-1.docker.io", "mirror.local:5000")
    scheme: str  # "https" or "http"
    verify: bool  # check the server's certificate (https only)
    mirror: bool = False
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False)

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.host}{path}"


class Endpoints:
    def __init__(
        self,
        insecure: list[str] | tuple[str, ...] = (),
        mirrors: dict[str, list[str]] | None = None,
        certs_dirs: tuple[Path, ...] = CERTS_DIRS,
    ) -> None:
        self.insecure_hosts: set[str] = set()
        self.insecure_nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = list(_ALWAYS_INSECURE)
        for item in insecure:
            try:
                self.insecure_nets.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                self.insecure_hosts.add(item.removeprefix("http://").removeprefix("https://").rstrip("/"))
        self.mirrors = {k: list(v) for k, v in (mirrors or {}).items()}
        for urls in self.mirrors.values():
            for url in urls:
                if not url.startswith(("http://", "https://")):
                    raise InvalidParameter(f"invalid mirror {url!r}: want http:// or https:// URL")
        self.certs_dirs = certs_dirs

    def is_insecure(self, host: str) -> bool:
        if host in self.insecure_hosts:
            return True
        bare = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
        bare = bare.strip("[]")
        if bare == "localhost":
            return True
        try:
            addr = ipaddress.ip_address(bare)
        except ValueError:
            return host.split(":")[0] in self.insecure_hosts
        return any(addr in net for net in self.insecure_nets)

    def for_domain(self, domain: str) -> list[Endpoint]:
        """The endpoints to try for ``domain``, in order."""
        out: list[Endpoint] = []
        for url in self.mirrors.get(domain, []):
            scheme, _, host = url.partition("://")
            host = host.rstrip("/")
            out.append(Endpoint(domain, host, scheme, scheme == "https" and not self.is_insecure(host), True,
                                self._context(host)))
        host = DOCKER_HUB_HOST if domain == DOCKER_HUB else domain
        if self.is_insecure(host):
            out.append(Endpoint(domain, host, "https", False, False, self._context(host, verify=False)))
            out.append(Endpoint(domain, host, "http", False))
        else:
            out.append(Endpoint(domain, host, "https", True, False, self._context(host)))
        return out

    def _context(self, host: str, verify: bool = True) -> ssl.SSLContext | None:
        """An SSL context with the CA and client certificates of certs.d/HOST, if any."""
        dirs = [d / host for d in self.certs_dirs if (d / host).is_dir()]
        if not dirs and verify:
            return None
        ctx = ssl.create_default_context()
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        for d in dirs:
            for ca in sorted(d.glob("*.crt")):
                ctx.load_verify_locations(cafile=str(ca))
            for cert in sorted(d.glob("*.cert")):
                key = cert.with_suffix(".key")
                if not key.exists():
                    raise InvalidParameter(f"missing key {key.name} for client certificate {cert}")
                ctx.load_cert_chain(str(cert), str(key))
        return ctx
