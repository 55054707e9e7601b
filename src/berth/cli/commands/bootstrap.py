"""``berth image bootstrap busybox``: build a busybox base image on this machine, offline.

Model: the rootfs is Debian's static busybox (installed with apt-get when /bin/busybox is
missing or dynamically linked: an ELF with a PT_INTERP program header needs a loader the image
would not have), every applet from ``busybox --list-full`` as a symlink to /bin/busybox, the
usual /etc/passwd and /etc/group, and the directories a container expects (/tmp 1777, /root
700, /home, /var, /etc, /dev, /proc, /sys). The tar is generated member by member and sent as
the chunked body of ``POST /images/create?fromSrc=-&repo=busybox:latest&changes=CMD ["sh"]``;
nothing is staged on disk. Every member has uid/gid 0 and the busybox binary's mtime, so the
same binary gives the same layer.

    $ berth image bootstrap busybox --tag busybox:latest
    sha256:...
"""

from __future__ import annotations

import os
import struct
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass

from berth.cli.options import Command, Flag
from berth.errors import InvalidParameter, SystemFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SPEC = Command(
    "image bootstrap",
    "berth image bootstrap busybox|debian [OPTIONS]",
    "Build a base image on this machine (busybox from its static busybox, debian from its apt mirror)",
    (
        Flag(("-t", "--tag"), "value", "Name and tag of the image (default busybox:latest, debian:SUITE)"),
        Flag(("--busybox",), "value", "Path of the static busybox binary", default="/bin/busybox"),
        Flag(("-o", "--output"), "value", "Write the rootfs tar to this file instead of importing it"),
        Flag(("--suite",), "value", "debian: the Debian suite (default bookworm)"),
        Flag(("--mirror",), "value", "debian: the archive URL (default: the one this host's apt uses)"),
        Flag(("--variant",), "value", "debian: mmdebstrap variant (default minbase)"),
        Flag(("--include",), "value", "debian: extra packages, comma-separated"),
    ),
    min_args=1,
    max_args=1,
)

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""

GROUP = """\
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
mail:x:8:
wheel:x:10:root
staff:x:50:
www-data:x:33:
users:x:100:
nogroup:x:65534:
"""

# (path, mode) in creation order; parents before children
DIRECTORIES = (
    ("bin", 0o755),
    ("dev", 0o755),
    ("etc", 0o755),
    ("home", 0o755),
    ("proc", 0o555),
    ("root", 0o700),
    ("sbin", 0o755),
    ("sys", 0o555),
    ("tmp", 0o1777),
    ("usr", 0o755),
    ("usr/bin", 0o755),
    ("usr/sbin", 0o755),
    ("var", 0o755),
    ("var/spool", 0o755),
    ("var/spool/mail", 0o755),
    ("var/www", 0o755),
)

PT_INTERP = 3


def elf_interpreter(path: str) -> bool:
    """True when the ELF file asks for a program interpreter (i.e. it is dynamically linked)."""
    with open(path, "rb") as fh:
        head = fh.read(64)
        if head[:4] != b"\x7fELF":
            raise InvalidParameter(f"inspect {path}: not an ELF file")
        is64 = head[4] == 2
        endian = "<" if head[5] == 1 else ">"
        if is64:
            (phoff,) = struct.unpack_from(endian + "Q", head, 0x20)
            phentsize, phnum = struct.unpack_from(endian + "HH", head, 0x36)
        else:
            (phoff,) = struct.unpack_from(endian + "I", head, 0x1C)
            phentsize, phnum = struct.unpack_from(endian + "HH", head, 0x2A)
        fh.seek(phoff)
        table = fh.read(phentsize * phnum)
    for i in range(phnum):
        (p_type,) = struct.unpack_from(endian + "I", table, i * phentsize)
        if p_type == PT_INTERP:
            return True
    return False


def is_static(path: str) -> bool:
    try:
        return not elf_interpreter(path)
    except (OSError, InvalidParameter):
        return False


def ensure_static_busybox(path: str, write: Any) -> str:
    """The static busybox, installing Debian's busybox-static when it is missing or dynamic."""
    if is_static(path):
        return path
    if path != "/bin/busybox":
        raise InvalidParameter(f"use busybox {path}: not a statically linked ELF binary")
    write("installing busybox-static (apt-get install -y busybox-static)\n")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.run(
        ["apt-get", "install", "-y", "busybox-static"], capture_output=True, text=True, env=env, check=False
    )
    if proc.returncode != 0 or not is_static(path):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SystemFailure(f"install busybox-static: apt-get exited {proc.returncode}: {tail[0]}")
    return path


def list_applets(busybox: str) -> list[str]:
    """``busybox --list-full``: paths like ``bin/ls``, ``usr/bin/awk``."""
    proc = subprocess.run([busybox, "--list-full"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemFailure(
            f"list applets of {busybox}: exit status {proc.returncode}: {proc.stderr.strip()}"
        )
    return [line.strip().lstrip("/") for line in proc.stdout.splitlines() if line.strip()]


@dataclass(frozen=True)
class Member:
    """One tar member: a directory, a regular file (content from ``source`` or ``data``) or a symlink."""

    name: str
    kind: str  # "dir" | "file" | "symlink"
    mode: int = 0o644
    data: bytes = b""
    source: str = ""
    target: str = ""


def rootfs_members(applets: list[str], busybox_source: str) -> list[Member]:
    members = [Member(name, "dir", mode) for name, mode in DIRECTORIES]
    known = {name for name, _ in DIRECTORIES}
    members.append(Member("bin/busybox", "file", 0o755, source=busybox_source))
    members.append(Member("etc/passwd", "file", 0o644, PASSWD.encode()))
    members.append(Member("etc/group", "file", 0o644, GROUP.encode()))
    seen = {"bin/busybox"}
    for applet in sorted(set(applets)):
        if applet in seen or not applet:
            continue
        parent = os.path.dirname(applet)
        if parent and parent not in known:
            members.append(Member(parent, "dir", 0o755))
            known.add(parent)
        members.append(Member(applet, "symlink", 0o777, target="/bin/busybox"))
        seen.add(applet)
    return members


def tar_stream(members: list[Member], mtime: int, chunk: int = 64 * 1024) -> Iterator[bytes]:
    """A ustar archive of ``members``, produced piece by piece."""
    written = 0
    for m in members:
        info = tarfile.TarInfo(m.name)
        info.mtime = mtime
        info.mode = m.mode
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        size = 0
        if m.kind == "dir":
            info.type = tarfile.DIRTYPE
        elif m.kind == "symlink":
            info.type = tarfile.SYMTYPE
            info.linkname = m.target
        else:
            size = os.stat(m.source).st_size if m.source else len(m.data)
            info.size = size
        header = info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
        written += len(header)
        yield header
        if m.kind != "file":
            continue
        if m.source:
            sent = 0
            with open(m.source, "rb") as fh:
                while True:
                    data = fh.read(chunk)
                    if not data:
                        break
                    sent += len(data)
                    yield data
            if sent != size:
                raise SystemFailure(f"archive {m.source}: size changed while reading ({size} -> {sent})")
        else:
            yield m.data
        written += size
        if size % 512:
            pad = 512 - size % 512
            written += pad
            yield b"\0" * pad
    end = b"\0" * 1024
    written += len(end)
    record = tarfile.RECORDSIZE
    if written % record:
        end += b"\0" * (record - written % record)
    yield end


def bootstrap(ctx: Any, argv: list[str]) -> int:
    opts, args = ctx.parse(SPEC, argv)
    if args[0] == "debian":
        from berth.cli.commands.debian import bootstrap_debian

        return bootstrap_debian(ctx, opts)
    if args[0] != "busybox":
        raise InvalidParameter(f"bootstrap image {args[0]!r}: busybox or debian")
    busybox = ensure_static_busybox(opts["busybox"], ctx.err)
    members = rootfs_members(list_applets(busybox), busybox)
    mtime = int(os.stat(busybox).st_mtime)
    stream = tar_stream(members, mtime)
    if opts["output"]:
        with open(opts["output"], "wb") as fh:
            for piece in stream:
                fh.write(piece)
        return 0
    from berth.cli.commands.imports import import_body

    import_body(ctx.client, stream, opts["tag"] or "busybox:latest", ['CMD ["sh"]'], None, ctx.out)
    return 0
