"""Helpers for the graph's root tests (no tests here): tar builders and a plan executor.

``run_mounted`` performs a graph driver's mount plan the way libcontainer will -- in a mount
namespace of its own -- using mount(8) in an ``unshare --mount`` child, then runs a shell
script there. The mounts vanish with the child; the host's mount table never sees them.
"""

from __future__ import annotations

import io
import shlex
import subprocess
import tarfile

from berth.libcontainer import Mount


def entry(
    name: str,
    kind: bytes = tarfile.REGTYPE,
    data: bytes = b"",
    link: str = "",
    mode: int = 0o644,
    **extra: object,
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mtime = 1_700_000_000
    for key, value in extra.items():
        setattr(info, key, value)
    return info, data


def make_tar(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


def mount_command(mount: Mount) -> str:
    if mount.type == "bind":
        flag = "--rbind" if "rbind" in mount.options else "--bind"
        return f"mount {flag} {shlex.quote(mount.source)} {shlex.quote(mount.target)}"
    options = ",".join(mount.options)
    return (
        f"mount -t {shlex.quote(mount.type)} -o {shlex.quote(options)} "
        f"{shlex.quote(mount.source)} {shlex.quote(mount.target)}"
    )


def run_mounted(mounts: list[Mount], script: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Mount ``mounts`` in a private mount namespace and run ``script`` (sh) there."""
    commands = " && ".join(mount_command(m) for m in mounts)
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-ec", f"{commands}\n{script}"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def host_mounts_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if path in line]
