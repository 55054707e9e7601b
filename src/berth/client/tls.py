"""TLS for ``tcp://`` endpoints: the docker CLI's ``--tls`` / ``--tlsverify`` semantics.

Model: ``--tlsverify`` checks the daemon's certificate against ``--tlscacert`` (or the system
store) and its name against the host; ``--tls`` alone encrypts without checking; a client
certificate is presented when both ``--tlscert`` and ``--tlskey`` are known. Imported only for
TLS endpoints: ``ssl`` costs several milliseconds of start-up.
"""

from __future__ import annotations

from berth.errors import InvalidParameter, Unavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from berth.client.transport import Endpoint


def wrap(sock: Any, endpoint: Endpoint) -> Any:
    """Wrap a connected TCP socket in TLS as the endpoint's options say; ssl errors become
    InvalidParameter (bad files) or Unavailable (failed handshake)."""
    import socket as socket_mod
    import ssl

    opts = endpoint.tls
    assert opts is not None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        if opts.verify:
            if opts.cacert:
                ctx.load_verify_locations(opts.cacert)
            else:
                ctx.load_default_certs()
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if opts.cert and opts.key:
            ctx.load_cert_chain(opts.cert, opts.key)
    except (OSError, ssl.SSLError) as exc:
        sock.close()
        raise InvalidParameter(f"load TLS files for {endpoint.url}: {exc}") from exc
    full = socket_mod.socket(fileno=sock.detach())
    host = endpoint.address.rpartition(":")[0].strip("[]")
    try:
        return ctx.wrap_socket(full, server_hostname=host)
    except (OSError, ssl.SSLError) as exc:
        full.close()
        raise Unavailable(f"TLS handshake with {endpoint.url}: {exc}") from exc
