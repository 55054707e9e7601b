"""Network namespaces as files: create, enter briefly, remove.

A container's network namespace (its "sandbox", Docker's ``SandboxKey``) is made by the daemon,
not by the container's init: the namespace is bind-mounted on ``<exec-root>/netns/<id>`` and the
OCI spec joins it by path. So the driver can configure it (veth, addresses, routes) before the
container exists, ``--network container:NAME`` joins the same file, and after a daemon restart the
namespace of a running container is still at a known path.

Entering a namespace is per thread (``setns`` changes only the calling thread), so every enter
happens on one dedicated thread (:class:`NetnsThread`) that always returns to the host namespace
before it takes the next job; the event loop's threads never leave it. Sockets made while inside
stay in that namespace (a netlink socket to configure it, the embedded DNS server's listeners).

Removing the file (``umount`` + ``unlink``) drops the last reference of a stopped container's
namespace: the kernel then destroys it, and its veth, in a work queue, so the ~16 ms a veth
deletion costs is never on the daemon's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from berth.errors import SystemFailure
from berth.libcontainer import kernel

log = logging.getLogger(__name__)
T = TypeVar("T")
NETLINK_ROUTE = 0
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


class NetnsThread:
    """The one thread that enters network namespaces."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="berth-netns")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, fn, *args)
        except _Stranded as exc:
            # The thread could not get back to the host namespace: never use it again.
            self._pool.shutdown(wait=False)
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="berth-netns")
            raise SystemFailure(str(exc)) from exc

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class _Stranded(Exception):
    pass


@contextlib.contextmanager
def _inside(path: str | None) -> Iterator[None]:
    """On the calling thread: enter the namespace at ``path`` (None: a new one), then go back."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if path is None:
            kernel.unshare(kernel.CLONE_NEWNET)
        else:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                kernel.setns(fd, kernel.CLONE_NEWNET)
            finally:
                os.close(fd)
        try:
            yield
        finally:
            try:
                kernel.setns(own, kernel.CLONE_NEWNET)
            except OSError as exc:
                raise _Stranded(f"return to the host network namespace: {exc.strerror}") from exc
    finally:
        os.close(own)


def netlink_socket() -> socket.socket:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    return s


def loopback_up() -> None:
    """``lo`` up in the calling thread's namespace (a new one starts with it down): 127.0.0.1/8
    appears with it, so the DNS listeners bind a real local address and answer from it."""
    import fcntl
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def dns_sockets(address: str, port: int = 53) -> tuple[socket.socket, socket.socket]:
    """A UDP and a listening TCP socket on ``address:port`` (made inside a namespace whose ``lo``
    is up)."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        for s in (udp, tcp):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((address, port))
            s.setblocking(False)
        tcp.listen(64)
    except OSError:
        udp.close()
        tcp.close()
        raise
    return udp, tcp


USERNS_SUFFIX = ".user"  # beside a namespace made in a user namespace: that user namespace


def userns_path(path: Path) -> Path:
    return path.with_name(path.name + USERNS_SUFFIX)


def _new_file(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    except OSError as exc:
        raise SystemFailure(f"create network namespace file {path}: {exc.strerror}") from exc
    os.close(fd)


def _create_in_userns(path: Path, maps: dict[str, list[list[int]]]) -> None:
    """The network namespace at ``path`` owned by a new user namespace with ``maps``, itself
    kept at :func:`userns_path` (the container joins it: its root then holds NET_ADMIN and
    NET_RAW over its own network, as with dockerd, whose runtime makes both). A thread may not
    enter a user namespace, so a helper process (``unshare --user --net``) makes them; its
    namespaces are bound here and it is killed."""
    import subprocess
    import time

    own = os.readlink("/proc/self/ns/user")
    helper = subprocess.Popen(["unshare", "--user", "--net", "--", "sleep", "60"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{helper.pid}/ns/user") == own:  # until it has unshared
            if helper.poll() is not None or time.monotonic() > deadline:
                err = helper.stderr.read().decode(errors="replace").strip() if helper.stderr else ""
                raise SystemFailure(f"create the user namespace of network namespace {path}: {err or 'no answer'}")
            time.sleep(0.001)
        for name in ("gid_map", "uid_map"):
            text = "".join(f"{c} {h} {n}\n" for c, h, n in maps[name[:3]])
            with open(f"/proc/{helper.pid}/{name}", "w") as f:
                f.write(text)
        user = userns_path(path)
        _new_file(user)
        kernel.mount(f"/proc/{helper.pid}/ns/user", str(user), None, kernel.MS_BIND, None)
        kernel.mount(f"/proc/{helper.pid}/ns/net", str(path), None, kernel.MS_BIND, None)
    finally:
        helper.kill()
        helper.wait()
        if helper.stderr is not None:
            helper.stderr.close()


def create(
    path: Path, dns_address: str = "", userns: dict[str, list[list[int]]] | None = None
) -> tuple[socket.socket, tuple[socket.socket, socket.socket] | None]:
    """Make a new network namespace at ``path`` (inside a new user namespace with the maps
    ``userns``, when given); a netlink socket inside it, and the DNS listeners on
    ``dns_address`` when asked. Runs on the :class:`NetnsThread`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _new_file(path)
    mounted = False
    nl: socket.socket | None = None
    try:
        if userns is not None:
            _create_in_userns(path, userns)
            mounted = True
        with _inside(str(path) if userns is not None else None):
            if userns is None:
                kernel.mount("/proc/thread-self/ns/net", str(path), None, kernel.MS_BIND, None)
                mounted = True
            loopback_up()
            nl = netlink_socket()
            dns = dns_sockets(dns_address) if dns_address else None
        return nl, dns
    except OSError as exc:
        if nl is not None:
            nl.close()
        if mounted or userns is not None:
            remove(path)  # and the user namespace beside it
        else:
            path.unlink(missing_ok=True)
        raise SystemFailure(f"create network namespace {path}: {exc.strerror or exc}") from exc
    except BaseException:
        remove(path)
        raise


def open_in(path: Path, dns_address: str = "", netlink: bool = True) -> tuple[socket.socket | None, tuple[socket.socket, socket.socket] | None]:
    """A netlink socket and/or DNS listeners inside the existing namespace at ``path``."""
    try:
        with _inside(str(path)):
            nl = netlink_socket() if netlink else None
            try:
                dns = dns_sockets(dns_address) if dns_address else None
            except OSError:
                if nl is not None:
                    nl.close()
                raise
        return nl, dns
    except OSError as exc:
        raise SystemFailure(f"enter network namespace {path}: {exc.strerror or exc}") from exc


def remove(path: Path) -> None:
    """Unmount and delete a namespace file (and the user namespace beside a network namespace
    made in one); a missing one is fine."""
    if not path.name.endswith(USERNS_SUFFIX):
        user = userns_path(path)
        if user.exists():
            remove(user)
    try:
        kernel.umount2(str(path), kernel.MNT_DETACH)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOENT):
            raise SystemFailure(f"unmount network namespace {path}: {exc.strerror}") from exc
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise SystemFailure(f"remove network namespace file {path}: {exc.strerror}") from exc


def is_mounted_netns(path: Path) -> bool:
    """Whether ``path`` is a bind-mounted network namespace (not just a leftover empty file)."""
    try:
        return os.stat(path).st_dev != os.stat(path.parent).st_dev
    except OSError:
        return False
