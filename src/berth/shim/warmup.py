"""Warming the fork server up: the shim's hot code runs here once, before ``gc.freeze()`` and fork.

Python 3.11 rewrites bytecode as it specialises it ("quickening") and fills caches on first
use; done in the fork server, those writes land in pages every shim shares instead of in
private copies in each. :func:`fill_pool_holes` then makes a shim's own allocations go to
fresh, compact pages (docs/monitor.md has the numbers).
"""

from __future__ import annotations

import os
import select
import socket
import sys
import time

from berth.container.logs import LogWriter, format_time
from berth.shim import protocol as P
from berth.shim.process import exit_code_of
from berth.shim.statefiles import write_state


def warm_up(rounds: int = 64) -> None:
    """Run the shim's hot pure code in the fork server, before gc.freeze() and fork.

    Python 3.11 rewrites bytecode as it specialises it ("quickening") and fills caches on
    first use; done here once, those writes land in pages every shim shares instead of
    in private copies in each shim.
    """
    req = {"op": "create", "id": "x" * 64, "spec": {"process": {"args": ["sh"], "env": ["A=b"]}, "n": [1, 2]}}
    tmp = f"/dev/shm/berth-warm-{os.getpid()}"  # tempfile would import random, shutil, bz2, lzma...
    os.mkdir(tmp, 0o700)
    try:
        log = LogWriter(os.devnull)
        ep = select.epoll()
        r, w = os.pipe()
        ep.register(r, select.EPOLLIN)
        try:
            for _ in range(rounds):
                dec = P.FrameDecoder()
                for kind, payload in dec.feed(P.encode_json(req) + P.encode(P.STDIN, b"data")):
                    if kind == P.CONTROL:
                        P.decode_json(payload)
                log.write(P.STDOUT, b"line one\npartial")
                log.write(P.STDERR, b"x" * 100 + b"\n")
                P.encode(P.STDOUT, b"out")
                os.write(w, b"x")
                for _fd, _mask in ep.poll(0):
                    os.read(r, 16)
                format_time(time.time_ns())
                P.decode_json(P.dumps({"event": "reply", "req": 1, "op": "start", "error": "", "kind": ""}))
                write_state(tmp, 1, 2, "")
                exit_code_of(0)
            log.close()
        finally:
            ep.close()
            os.close(r)
            os.close(w)
    finally:
        for name in os.listdir(tmp):
            os.unlink(os.path.join(tmp, name))
        os.rmdir(tmp)


def warm_service(rounds: int = 32) -> None:
    """Drive a container-less Service (output, stdin, requests) through the real reactor over
    pipes and a socketpair, so that its methods are specialised here, in pages every shim shares."""
    from berth.shim.process import RUNNING
    from berth.shim.reactor import Reactor
    from berth.shim.runtime import Done, Op
    from berth.shim.service import Service
    from berth.shim.stdio import make_stdio

    class Idle:
        """A runtime whose container is already running: signals reach nobody."""

        def kill(self, pid: int, signum: int) -> Op:
            return Done()

    ours, peer = socket.socketpair()
    reactor = Reactor()
    service = Service({"id": "warm-up", "exec_root": "/nonexistent"}, ours, Idle(), reactor)  # type: ignore[arg-type]
    init = service.init
    stdio, child_fds = make_stdio(init, False, True)
    try:
        init.started, init.state = True, RUNNING
        init.conns.append(service.daemon)
        service._add_conn(service.daemon)
        service.pump.watch_outputs(init)
        for _ in range(rounds):
            os.write(stdio.stdout, b"hello\n")
            reactor.run_once()
            peer.recv(65536)
            peer.sendall(P.encode(P.STDIN, b"in\n") + P.encode_json({"op": "resize", "h": 1, "w": 1, "req": 1})
                         + P.encode_json({"op": "signal", "signal": 0, "req": 2}))
            reactor.run_once()
            os.read(stdio.stdin, 100)
            peer.recv(65536)
    finally:
        service.pump.close_all(init)
        for fd in child_fds:
            os.close(fd)
        reactor.close()
        ours.close()
        peer.close()
    warm_console(rounds)


def warm_console(rounds: int) -> None:
    """The tty path: a console socket, a pty master sent over it (as the container's process
    does) and taken by the Process, so that a tty shim runs code warmed here too."""
    from berth.shim.process import Process
    from berth.shim.stdio import close_console, make_stdio, take_master

    for _ in range(rounds):
        sess = Process(True)
        stdio, child_fds = make_stdio(sess, True, True)
        master, slave = os.openpty()
        try:
            with socket.socket(fileno=os.dup(stdio.console_socket)) as sock:
                rights = (socket.SOL_SOCKET, socket.SCM_RIGHTS, master.to_bytes(4, sys.byteorder))
                sock.sendmsg([b"/dev/pts/0"], [rights])
            take_master(sess)
        finally:
            close_console(sess)
            for fd in (master, slave, *child_fds, sess.master):
                if fd >= 0:
                    os.close(fd)


def fill_pool_holes() -> list[bytes]:
    """Occupy every free block in pymalloc's partly used pools; returns the fillers to keep.

    A monitor's new objects would otherwise land in those holes, scattered over hundreds of
    pages it shares with us, and copy each of them (4 KiB per small object). With the holes
    filled, its allocations go to fresh pools, a few compact pages of its own. The counts come
    from ``sys._debugmallocstats()`` (CPython's own allocator report, on stderr).
    """
    report = os.memfd_create("berth-mallocstats", os.MFD_CLOEXEC)
    saved = os.dup(2)
    try:
        os.dup2(report, 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
        size = os.lseek(report, 0, os.SEEK_END)
        text = os.pread(report, size, 0).decode("ascii", "replace")
    finally:
        os.close(saved)
        os.close(report)
    fillers: list[bytes] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 5 and all(p.isdigit() for p in parts):
            size, avail = int(parts[1]), int(parts[4])
            if size >= 48:  # a bytes object of length n is a (33 + n)-byte block; n >= 2 is never cached
                fillers.extend(b"\0" * (size - 33) for _ in range(avail))
    return fillers


