"""Where the daemon is and how to reach it: ``unix://``, ``tcp://`` (optionally TLS), ``fd://``.

Model: a host string parses into a frozen ``Endpoint``; ``Endpoint.connect()`` returns a connected
stream socket. Plain sockets come from ``_socket`` rather than ``socket`` (the latter pulls in
``enum`` and ``selectors``, ~10 ms the CLI cannot afford); ``ssl`` is imported only for TLS.

    >>> parse_host("tcp://127.0.0.1")
    Endpoint(scheme='tcp', address='127.0.0.1:2375', tls=None)
    >>> parse_host("unix:///run/berth/berth.sock").address
    '/run/berth/berth.sock'

``fd://N`` names a socket the caller already connected and passed down (e.g. one end of a
socketpair): it carries exactly one connection, so keep-alive works but a second concurrent
connection (hijack, wait + start) cannot be opened on it.
"""

from __future__ import annotations

import _socket
import os

from berth.errors import Forbidden, InvalidParameter, Unavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_HOST = "unix:///run/berth/berth.sock"
DEFAULT_CERT_DIR = "~/.berth"


class TLSOptions:
    """Client TLS settings, like the docker CLI's ``--tls*`` flags (immutable by convention)."""

    __slots__ = ("verify", "cacert", "cert", "key")

    def __init__(
        self, verify: bool, cacert: str | None = None, cert: str | None = None, key: str | None = None
    ) -> None:
        self.verify = verify
        self.cacert = cacert
        self.cert = cert
        self.key = key

    def __repr__(self) -> str:
        return f"TLSOptions(verify={self.verify!r}, cacert={self.cacert!r}, cert={self.cert!r}, key={self.key!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TLSOptions) and repr(self) == repr(other)

    __hash__ = None  # type: ignore[assignment]


class Endpoint:
    """One daemon address. ``address`` is a path (unix), ``host:port`` (tcp) or an fd number.

    Plain classes, not dataclasses: ``dataclasses`` imports ``inspect`` (~8 ms of start-up)."""

    __slots__ = ("scheme", "address", "tls")

    def __init__(self, scheme: str, address: str, tls: TLSOptions | None = None) -> None:
        self.scheme = scheme
        self.address = address
        self.tls = tls

    def __repr__(self) -> str:
        return f"Endpoint(scheme={self.scheme!r}, address={self.address!r}, tls={self.tls!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Endpoint) and (self.scheme, self.address, self.tls) == (
            other.scheme,
            other.address,
            other.tls,
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.address}"

    @property
    def host_header(self) -> str:
        # What the docker CLI sends; daemons ignore it, proxies may not.
        return self.address if self.scheme == "tcp" else "api.moby.localhost"

    def connect(self, timeout: float | None = None) -> Any:
        """Open a new connected socket to the daemon; Unavailable when nobody answers."""
        if self.scheme == "fd":
            return _take_fd(int(self.address))
        if self.scheme == "unix":
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            target: Any = self.address
        else:
            host, _, port = self.address.rpartition(":")
            host = host.strip("[]")
            try:
                infos = _socket.getaddrinfo(host, int(port), 0, _socket.SOCK_STREAM)
            except OSError as exc:
                raise not_running(self, exc) from exc
            family, _, _, _, target = infos[0]
            sock = _socket.socket(family, _socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(target)
        except OSError as exc:
            sock.close()
            raise not_running(self, exc) from exc
        sock.settimeout(None)
        if self.scheme == "tcp":
            # small requests (resize, kill, chunk headers) must not wait for Nagle; Go sets it too
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        if self.scheme == "tcp" and self.tls is not None:
            from berth.client.tls import wrap

            return wrap(sock, self)
        return sock


_taken_fds: set[int] = set()


def _take_fd(fd: int) -> Any:
    if fd in _taken_fds:
        raise Unavailable(f"connect to fd://{fd}: an inherited socket carries one connection only")
    _taken_fds.add(fd)
    try:
        return _socket.socket(fileno=fd)
    except OSError as exc:
        raise Unavailable(f"connect to fd://{fd}: {exc.strerror or exc}") from exc


def not_running(endpoint: Endpoint, exc: OSError | None = None) -> Unavailable | Forbidden:
    """The docker CLI's text for "nobody listens there" (or "not allowed to talk to it")."""
    if isinstance(exc, PermissionError):
        return Forbidden(
            f"permission denied while trying to connect to the berth daemon socket at {endpoint.url}: "
            f"connect: permission denied"
        )
    return Unavailable(f"Cannot connect to the berth daemon at {endpoint.url}. Is the berth daemon running?")


def parse_host(text: str, tls: TLSOptions | None = None) -> Endpoint:
    """Parse ``-H`` / ``BERTH_HOST``; InvalidParameter for anything else."""
    text = text.strip()
    if not text:
        text = DEFAULT_HOST
    scheme, sep, rest = text.partition("://")
    if not sep:
        if text.startswith("/"):
            return Endpoint("unix", text)
        scheme, rest = "tcp", text
    scheme = scheme.lower()
    if scheme == "unix":
        if not rest:
            raise InvalidParameter(f"parse host {text!r}: unix socket path is empty")
        return Endpoint("unix", rest)
    if scheme == "fd":
        if not rest.isdigit():
            raise InvalidParameter(f"parse host {text!r}: fd:// needs a file descriptor number")
        return Endpoint("fd", rest)
    if scheme in ("tcp", "http", "https"):
        rest = rest.rstrip("/")
        if "/" in rest:
            raise InvalidParameter(f"parse host {text!r}: a path is not allowed")
        if scheme == "https" and tls is None:
            tls = TLSOptions(verify=False)
        default_port = "2376" if tls is not None else "2375"
        if rest.startswith("["):
            host, _, tail = rest[1:].partition("]")
            port = tail[1:] if tail.startswith(":") else default_port
            address = f"[{host}]:{port}"
        else:
            host, sep2, port = rest.rpartition(":")
            if not sep2:
                host, port = rest, default_port
            address = f"{host or '127.0.0.1'}:{port or default_port}"
        if not address.rpartition(":")[2].isdigit():
            raise InvalidParameter(f"parse host {text!r}: invalid port")
        return Endpoint("tcp", address, tls)
    raise InvalidParameter(f"parse host {text!r}: unsupported protocol {scheme!r}")


def tls_options(
    env: dict[str, str],
    tls: bool = False,
    tlsverify: bool = False,
    cacert: str | None = None,
    cert: str | None = None,
    key: str | None = None,
) -> TLSOptions | None:
    """Combine the TLS flags with BERTH_TLS_VERIFY / BERTH_CERT_PATH the way docker does.

    TLS is on with ``--tls``, ``--tlsverify`` or a non-empty BERTH_TLS_VERIFY. Certificate files
    default to ``ca.pem``, ``cert.pem``, ``key.pem`` in BERTH_CERT_PATH (else ~/.berth) when they
    exist there.
    """
    verify = tlsverify or bool(env.get("BERTH_TLS_VERIFY"))
    if not (tls or verify or cacert or cert or key):
        return None
    cert_dir = os.path.expanduser(env.get("BERTH_CERT_PATH") or DEFAULT_CERT_DIR)

    def default(given: str | None, name: str) -> str | None:
        if given:
            return os.path.expanduser(given)
        path = os.path.join(cert_dir, name)
        return path if os.path.exists(path) else None

    return TLSOptions(verify, default(cacert, "ca.pem"), default(cert, "cert.pem"), default(key, "key.pem"))
