"""A container's file-system view for copying files in and out (``docker cp``).

Docker's cp sees the container's root file system with its volumes, binds and the network
files (``/etc/hosts``, ``/etc/hostname``, ``/etc/resolv.conf``) mounted on it, and nothing else:
not ``/proc``, ``/sys``, ``/dev`` or tmpfs mounts. A view process builds exactly that in a mount
namespace of its own and then only waits; the daemon opens ``/proc/<view>/root`` and does every
file operation from that directory fd with ``openat2(RESOLVE_IN_ROOT)``, so no path, ``..`` or
symlink in the container can lead to a host file. When the daemon closes the socket, the view
exits and its namespace, with every mount in it, goes away: nothing is ever mounted on the host.

Two ways to build it:

- a running container (``pid``): enter its mount namespace, copy it (``unshare``), make the copy
  private, and detach every mount that is not the root or below a kept destination (volumes,
  binds, network files). Entering is what lets the view share the container's overlay instead
  of mounting the same upper directory a second time (undefined behaviour in overlayfs).
- a stopped container: a new mount namespace, the graph driver's plan (the overlay) on
  ``root``, then each bind at its destination resolved inside the root (``securepath.resolve_in_root``), the
  root read-only when the container's is; then ``chroot`` into it.

Protocol, on a ``SOCK_SEQPACKET`` socket: one JSON request in, one JSON answer out
(``{"pid": N}`` once the view is ready, or ``{"message": "..."}``), then the view waits for EOF.

    {"pid": 1234, "keep": ["/data", "/etc/hosts"]}                       # running
    {"pid": 0, "root": ".../rootfs", "rootfs_mounts": [...], "mounts": [...],
     "readonly_root": false}                                             # stopped
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
from typing import Any

from berth.libcontainer import kernel, record
from berth.libcontainer.failure import ContainerInitError
from berth.libcontainer.mounts import mount_one, remount_readonly
from berth.libcontainer.securepath import resolve_in_root
from berth.libcontainer.spec import Mount, parse_mount

MAX_REQUEST = 1 << 20


def main(sock: socket.socket) -> None:
    """Serve one view on ``sock`` (the fork server's child runs this, then exits)."""
    try:
        request = json.loads(sock.recv(MAX_REQUEST) or b"{}")
        if request.get("pid"):
            enter_running(int(request["pid"]), list(request.get("keep") or []))
        else:
            build_stopped(request)
    except (OSError, ContainerInitError, ValueError, KeyError, TypeError) as exc:
        sock.send(json.dumps({"message": _text(exc)}).encode())
        return
    sock.send(json.dumps({"pid": os.getpid()}).encode())
    kernel.wait_for_eof(sock)  # until the daemon closes its end (or dies)


def _text(exc: BaseException) -> str:
    if isinstance(exc, ContainerInitError):
        return exc.message
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}" + (f": {exc.filename}" if exc.filename else "")
    return str(exc)


def enter_running(pid: int, keep: list[str]) -> None:
    # the host's /proc, kept for after the move: the container's /proc (its own pid namespace)
    # has no entry for us
    proc = os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        kernel.setns(fd, kernel.CLONE_NEWNS)
    finally:
        os.close(fd)
    # a copy of the container's mounts that only we see; private, so nothing we detach
    # propagates back to the container (whatever its rootfsPropagation)
    kernel.unshare(kernel.CLONE_NEWNS)
    kernel.mount(None, "/", None, kernel.MS_REC | kernel.MS_PRIVATE, None)
    os.chdir("/")
    points = _mount_points(proc)
    os.close(proc)
    for point in sorted(points, key=lambda p: p.count("/"), reverse=True):
        if point == "/" or _kept(point, keep, points):
            continue
        try:
            kernel.umount2(point, kernel.MNT_DETACH | kernel.UMOUNT_NOFOLLOW)
        except OSError as exc:
            # gone with a mount detached before it, or shadowed: either way not in the view
            if exc.errno not in (errno.EINVAL, errno.ENOENT):
                raise


def _kept(point: str, keep: list[str], points: list[str]) -> bool:
    """A destination the view keeps, a mount below one, or a mount that holds one (detaching it
    would take the kept mount with it)."""
    for k in keep:
        k = k.rstrip("/") or "/"
        if point == k or point.startswith(k + "/") or k.startswith(point + "/"):
            return True
    return False


def _mount_points(proc: int) -> list[str]:
    out = []
    with open(os.open("self/mountinfo", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc), "rb") as f:
        for line in f:
            fields = line.split(b" ")
            if len(fields) > 4:
                out.append(_unescape(fields[4].decode("utf-8", "surrogateescape")))
    return out


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def build_stopped(request: dict[str, Any]) -> None:
    root = str(request["root"])
    kernel.unshare(kernel.CLONE_NEWNS)
    kernel.mount(None, "/", None, kernel.MS_REC | kernel.MS_PRIVATE, None)
    for m in request.get("rootfs_mounts") or []:
        mount_one(_mount(m), str(m["target"]))
    # every bind below the root was made by us, in this namespace: they go when it goes
    for m in request.get("mounts") or []:
        dest = resolve_in_root(root, str(m["destination"]))
        if not os.path.exists(str(m["source"])):
            continue  # a bind source that is gone (dockerd fails the start; cp has nothing to show)
        mount_one(record.replace(parse_mount({**m, "type": m.get("type") or "bind"}), target=dest), dest)
    if request.get("readonly_root"):
        remount_readonly(root)
    os.chroot(root)
    os.chdir("/")


def _mount(m: dict[str, Any]) -> Mount:
    return Mount(type=str(m["type"]), source=str(m["source"]), target=str(m["target"]),
                 options=tuple(m.get("options") or ()))
