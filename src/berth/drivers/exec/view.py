"""The daemon's end of a container's file-system view (:mod:`berth.libcontainer.view`).

    async with await driver.view(request) as view:
        fd = view.root_fd          # a directory fd: the view's "/" (O_PATH)

The fork server forks the view process; the daemon sends the request and reads the view's pid,
then opens ``/proc/<pid>/root``. The socket stays open while the view is used: the view cannot
exit before the daemon closes it (unless killed, which the liveness check after the open sees),
so the pid opened is the view's and not a recycled one. Closing the view closes the socket and
the root fd; the view process exits and its mount namespace goes with it.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import socket
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from berth.errors import SystemFailure

VIEW_TIMEOUT = 30.0  # seconds for a view to be built (mounting an overlay takes milliseconds)


class View:
    def __init__(self, sock: socket.socket, pid: int, root_fd: int) -> None:
        self.sock, self.pid, self.root_fd = sock, pid, root_fd

    def close(self) -> None:
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1
        self.sock.close()

    async def __aenter__(self) -> View:
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


async def open_view(spawn: Callable[[int, bytes], Awaitable[None]], request: dict[str, Any]) -> View:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        try:
            await spawn(theirs.fileno(), b"view")
        finally:
            theirs.close()
        ours.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(ours, json.dumps(request).encode())
        try:
            raw = await asyncio.wait_for(loop.sock_recv(ours, 1 << 16), VIEW_TIMEOUT)
        except TimeoutError:
            raise SystemFailure(f"file-system view: no answer within {VIEW_TIMEOUT:g} s") from None
        if not raw:
            raise SystemFailure("file-system view: the view process exited (see the daemon's stderr)")
        answer = json.loads(raw)
        if "pid" not in answer:
            raise SystemFailure(f"file-system view: {answer.get('message') or 'failed'}")
        pid = int(answer["pid"])
        root_fd = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        # still connected, so the pid we opened is the view's (it cannot exit before we close)
        readable, _, _ = select.select([ours], [], [], 0)
        if readable:
            os.close(root_fd)
            raise SystemFailure("file-system view: the view process exited before it was used")
    except BaseException:
        ours.close()
        raise
    return View(ours, pid, root_fd)
