"""``berth image bootstrap debian``: a real Debian image built from the apt mirror this host uses.

Model: ``mmdebstrap --variant=minbase SUITE - MIRROR`` writes the root file system as a tar on
its stdout, which is sent as the chunked body of ``POST /images/create?fromSrc=-`` (nothing is
staged on disk), with ``CMD ["bash"]`` as Docker's debian images have. The mirror is the host's
own Debian archive from its apt sources (so it works wherever ``apt-get`` does), or ``--mirror``.
``SOURCE_DATE_EPOCH`` is set from ``--epoch`` (default: the suite's Release date as mmdebstrap
takes it) so that the same packages give the same layer.

    $ berth image bootstrap debian --suite bookworm -t debian:bookworm
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from berth.errors import InvalidParameter, SystemFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_MIRROR = "http://deb.debian.org/debian"
SUITE_RE = re.compile(r"^[a-z][a-z0-9.-]{0,40}$")
PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]{0,100}$")


def host_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The Debian archive this host's apt uses (deb822 ``.sources`` or one-line ``.list``)."""
    files = sorted((sources / "sources.list.d").glob("*.sources")) + [sources / "sources.list"]
    files += sorted((sources / "sources.list.d").glob("*.list"))
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        for m in re.finditer(r"^URIs:\s*(\S+)", text, re.M):
            if _is_main_archive(m.group(1)):
                return m.group(1)
        for m in re.finditer(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s", text, re.M):
            if _is_main_archive(m.group(1)):
                return m.group(1)
    return DEFAULT_MIRROR


def _is_main_archive(uri: str) -> bool:
    return uri.startswith(("http://", "https://")) and uri.rstrip("/").endswith("/debian")


def ensure_mmdebstrap(write: Any) -> str:
    exe = shutil.which("mmdebstrap")
    if exe:
        return exe
    write("installing mmdebstrap (apt-get install -y mmdebstrap)\n")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "mmdebstrap"],
                          capture_output=True, text=True, env=env, check=False)
    exe = shutil.which("mmdebstrap")
    if proc.returncode != 0 or not exe:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SystemFailure(f"install mmdebstrap: apt-get exited {proc.returncode}: {tail[0]}")
    return exe


def command(exe: str, suite: str, mirror: str, variant: str, include: list[str]) -> list[str]:
    if not SUITE_RE.match(suite):
        raise InvalidParameter(f"invalid suite {suite!r}")
    if variant not in ("minbase", "buildd", "required", "important", "standard"):
        raise InvalidParameter(f"invalid variant {variant!r}: minbase, buildd, required, important or standard")
    for pkg in include:
        if not PACKAGE_RE.match(pkg):
            raise InvalidParameter(f"invalid package name {pkg!r}")
    if not mirror.startswith(("http://", "https://", "file://")):
        raise InvalidParameter(f"invalid mirror {mirror!r}: want an http(s):// or file:// URL")
    argv = [exe, f"--variant={variant}", "--quiet", "--format=tar"]
    if include:
        argv.append("--include=" + ",".join(include))
    # apt's caches and lists add nothing to an image (Docker's debian images drop them too)
    argv += ["--customize-hook=rm -rf \"$1\"/var/lib/apt/lists/* \"$1\"/var/cache/apt/*.bin"]
    return [*argv, suite, "-", mirror]


def bootstrap_debian(ctx: Any, opts: dict[str, Any]) -> int:
    suite = opts["suite"] or "bookworm"
    include = [p for p in (opts["include"] or "").split(",") if p]
    exe = ensure_mmdebstrap(ctx.err)
    argv = command(exe, suite, opts["mirror"] or host_mirror(), opts["variant"] or "minbase", include)
    tag = opts["tag"] or f"debian:{suite}"
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None and proc.stderr is not None

    def chunks() -> Any:
        while data := proc.stdout.read(1 << 20):  # type: ignore[union-attr]
            yield data
        if proc.wait() != 0:
            err = proc.stderr.read().decode(errors="replace").strip().splitlines()[-3:]  # type: ignore[union-attr]
            raise SystemFailure(f"mmdebstrap exited {proc.returncode}: {' / '.join(err) or 'no output'}")

    try:
        if opts["output"]:
            with open(opts["output"], "wb") as fh:
                for piece in chunks():
                    fh.write(piece)
            return 0
        from berth.cli.commands.imports import import_body

        import_body(ctx.client, chunks(), tag, ['CMD ["bash"]'], None, ctx.out)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return 0
