"""``berth registry serve|gc``: the registry server's command line (also ``berth-registry``).

    berth registry serve --addr 127.0.0.1:5000 --root /srv/registry [--htpasswd FILE]
                         [--auth none|basic|token] [--anonymous-pull] [--tls-cert C --tls-key K]
    berth registry gc --root /srv/registry [--dry-run]
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import signal
import ssl
import sys
from pathlib import Path

from aiohttp import web

from berth.errors import BerthError, InvalidParameter
from berth.registry.server.app import Authorizer, Registry, make_app
from berth.registry.server.auth import BasicAuth, Htpasswd, NoAuth, TokenAuth, load_key
from berth.registry.server.gc import collect
from berth.registry.server.store import RegistryStore


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="berth registry", description="berth's OCI distribution registry")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="Serve a registry")
    s.add_argument("--addr", default="127.0.0.1:5000", help="HOST:PORT to listen on (default 127.0.0.1:5000)")
    s.add_argument("--root", required=True, help="Storage directory")
    s.add_argument("--auth", choices=("none", "basic", "token"), help="Authentication (default: basic with --htpasswd, else none)")
    s.add_argument("--htpasswd", help="htpasswd file with bcrypt entries")
    s.add_argument("--anonymous-pull", action="store_true", help="With token auth: anonymous clients may pull")
    s.add_argument("--service", default="berth-registry", help="Token service name")
    s.add_argument("--realm", help="Token realm URL (default: this server's /token)")
    s.add_argument("--token-lifetime", type=int, default=300, help="Seconds a token is valid (default 300)")
    s.add_argument("--tls-cert", help="TLS certificate (PEM)")
    s.add_argument("--tls-key", help="TLS private key (PEM)")
    s.add_argument("--tls-client-ca", help="Require client certificates signed by this CA (PEM)")
    s.add_argument("--max-blob-size", type=int, help="Refuse blobs larger than this many bytes")
    s.add_argument("--allow-sparse", action="store_true",
                   help="Accept manifests that reference blobs or manifests not pushed")
    g = sub.add_parser("gc", help="Delete blobs no manifest references (server stopped)")
    g.add_argument("--root", required=True, help="Storage directory")
    g.add_argument("--dry-run", action="store_true", help="Only report what would be deleted")
    return p


def _lock(root: Path, what: str) -> int:
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(root / "registry.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
        raise BerthError(f"{what}: registry root {root} is in use by another process (pid {pid or '?'})") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _auth(args: argparse.Namespace, root: Path) -> tuple[Authorizer, TokenAuth | None]:
    mode = args.auth or ("basic" if args.htpasswd else "none")
    users = Htpasswd(Path(args.htpasswd)) if args.htpasswd else None
    if mode == "none":
        return NoAuth(), None
    if mode == "basic":
        if users is None:
            raise InvalidParameter("--auth basic needs --htpasswd")
        return BasicAuth(users), None
    token = TokenAuth(users, load_key(root), args.service, args.anonymous_pull, args.realm, args.token_lifetime)
    return token, token


async def _serve(args: argparse.Namespace) -> None:
    root = Path(args.root)
    _lock(root, "serve")
    store = RegistryStore(root)
    auth, token = _auth(args, root)
    app = make_app(Registry(store, auth, args.max_blob_size, args.allow_sparse), token)
    host, _, port = args.addr.rpartition(":")
    ctx = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            raise InvalidParameter("--tls-cert and --tls-key go together")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=args.tls_client_ca)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host.strip("[]") or "127.0.0.1", int(port), ssl_context=ctx)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    bound = runner.addresses[0]  # the real port when --addr asked for port 0
    print(f"berth registry: serving {root} on {'https' if ctx else 'http'}://{bound[0]}:{bound[1]}",
          file=sys.stderr, flush=True)
    await stop.wait()
    await runner.cleanup()
    store.close()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "serve":
            asyncio.run(_serve(args))
            return 0
        root = Path(args.root)
        _lock(root, "gc")
        report = collect(RegistryStore(root), dry_run=args.dry_run)
        verb = "would delete" if args.dry_run else "deleted"
        print(f"{verb} {report.blobs} blobs ({report.bytes} bytes), {report.links} repository links, "
              f"{report.uploads} stale uploads")
        return 0
    except (BerthError, OSError, ValueError) as exc:
        print(f"berth registry: {exc}", file=sys.stderr)
        return 1
