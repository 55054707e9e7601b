"""``berth registry serve|gc``: run berth's registry server (a separate program, not the daemon).

The server lives in ``berth.registry.server``, which the client side may not import (the
import contracts keep the CLI apart from the daemon side), so this command checks its flags
here and then replaces itself with that program: ``python -m berth.registry.server serve ...``.
"""

from __future__ import annotations

import os
import sys

from berth.cli.options import Command, Flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SERVE = Command(
    "registry serve",
    "berth registry serve --root DIR [OPTIONS]",
    "Serve an OCI distribution registry (and Docker's v1 search) from DIR",
    (
        Flag(("--root",), "value", "Storage directory"),
        Flag(("--addr",), "value", "HOST:PORT to listen on (default 127.0.0.1:5000)"),
        Flag(("--auth",), "value", "none, basic or token (default: basic with --htpasswd, else none)"),
        Flag(("--htpasswd",), "value", "htpasswd file with bcrypt entries"),
        Flag(("--anonymous-pull",), help="With token auth: anonymous clients may pull"),
        Flag(("--service",), "value", "Token service name (default berth-registry)"),
        Flag(("--realm",), "value", "Token realm URL (default: this server's /token)"),
        Flag(("--token-lifetime",), "value", "Seconds a token is valid (default 300)"),
        Flag(("--tls-cert",), "value", "TLS certificate (PEM)"),
        Flag(("--tls-key",), "value", "TLS private key (PEM)"),
        Flag(("--tls-client-ca",), "value", "Require client certificates signed by this CA (PEM)"),
        Flag(("--max-blob-size",), "value", "Refuse blobs larger than this many bytes"),
        Flag(("--allow-sparse",), help="Accept manifests that reference blobs or manifests not pushed"),
    ),
    max_args=0,
)
GC = Command(
    "registry gc",
    "berth registry gc --root DIR [--dry-run]",
    "Delete the blobs no manifest references (with the server stopped)",
    (
        Flag(("--root",), "value", "Storage directory"),
        Flag(("--dry-run",), help="Only report what would be deleted"),
    ),
    max_args=0,
)


def _exec(ctx: Any, spec: Command, verb: str, argv: list[str]) -> int:
    opts, _ = ctx.parse(spec, argv)  # --help and flag errors end here, without the server
    if not opts["root"]:
        ctx.usage_error(spec, "--root is required")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "berth.registry.server", verb, *argv])
    return 1  # not reached


def serve(ctx: Any, argv: list[str]) -> int:
    return _exec(ctx, SERVE, "serve", argv)


def gc(ctx: Any, argv: list[str]) -> int:
    return _exec(ctx, GC, "gc", argv)
