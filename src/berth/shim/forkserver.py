"""The fork server: a warm, single-threaded Python that forks one monitor per container.

The daemon (asyncio, threads) must never fork into namespaces itself, and starting a fresh
interpreter per container costs 10-70 ms. So the daemon starts this process once
(``python -m berth.shim.forkserver FD [SECCOMP_CACHE_DIR]``); it imports the monitor and libcontainer, calls
``gc.freeze()`` (so no collection in a child ever touches, and so copies, the shared pages) and
says ``ready`` on its control socket FD (a ``SOCK_SEQPACKET`` socketpair with the daemon).

Protocol: each request is one message ``spawn`` carrying one fd (``SCM_RIGHTS``): the monitor's
end of a fresh stream socketpair. The fork server double-forks (the middle child calls
``setsid`` and exits at once, so the monitor is in its own session and is reparented away from
us and the daemon) and closes its copy of the fd. Everything else -- the create request, the
result of ``libcontainer.create``, the monitor's pid -- travels on that socketpair between the
daemon and the monitor, so the fork server never waits for a container and serves requests
back to back. If the fork fails the fd is closed and the daemon reads EOF.

The fork server exits when its control socket hits EOF: the daemon is gone.

    daemon                         fork server                    monitor
    send_fds("spawn", [b]) ----->  fork, setsid, fork  ------->   main(b): read create request,
    write {"op":"create"} on a                                    libcontainer.create, answer
    read {"event":"created"} <----------------------------------- on b
"""

from __future__ import annotations

import gc
import os
import select
import signal
import socket
import sys
import time

import berth.shim.monitor as monitor
from berth.container.logs import LogWriter, format_time
from berth.libcontainer import view
from berth.shim import protocol as P
from berth.shim.session import atomic_write_json, exit_code_of


def serve(control: socket.socket) -> None:
    """Answer spawn requests until the daemon closes the control socket."""
    control.send(b"ready")
    # recvmsg, not socket.recv_fds: every page this loop writes after a fork is copied, and the
    # old copy stays with the monitor just forked, so the loop touches as little as it can
    space = socket.CMSG_SPACE(4 * 4)
    while True:
        try:
            msg, ancdata, _flags, _addr = control.recvmsg(64, space)
        except ConnectionResetError:
            return
        fds = [int.from_bytes(data[i : i + 4], sys.byteorder)
               for level, kind, data in ancdata if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
               for i in range(0, len(data) - len(data) % 4, 4)]
        if not msg and not fds:
            return  # EOF: the daemon is gone
        for fd in fds[1:]:
            os.close(fd)
        if msg not in (b"spawn", b"view") or not fds:
            if fds:
                os.close(fds[0])
            continue
        spawn(fds[0], control, msg)


def spawn(fd: int, control: socket.socket, kind: bytes = b"spawn") -> None:
    """Double-fork a monitor that owns ``fd`` (``view``: a file-system view for docker cp,
    :mod:`berth.libcontainer.view`); the middle child is reaped at once."""
    try:
        pid = os.fork()
    except OSError as exc:
        print(f"berth forkserver: fork monitor: {exc}", file=sys.stderr)
        os.close(fd)  # the daemon reads EOF and reports the failure
        return
    if pid == 0:
        try:
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            control.close()
            if kind == b"view":
                view.main(socket.socket(fileno=fd))
                os._exit(0)
            monitor.main(socket.socket(fileno=fd))
        finally:
            os._exit(1)
    os.close(fd)
    os.waitpid(pid, 0)


def warm_up(rounds: int = 64) -> None:
    """Run the monitor's hot pure code in the fork server, before gc.freeze() and fork.

    Python 3.11 rewrites bytecode as it specialises it ("quickening") and fills caches on
    first use; done here once, those writes land in pages every monitor shares instead of
    in private copies in each monitor.
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
                atomic_write_json(os.path.join(tmp, "state.json"), {"monitor_pid": 1, "pid": 2, "started_at": ""})
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


def warm_monitor(rounds: int = 32) -> None:
    """Drive a container-less Monitor's loop code (output, stdin, a request) over pipes and a
    socketpair, so that its methods are specialised here, in pages every monitor shares."""
    from berth.shim.session import make_stdio

    ours, peer = socket.socketpair()
    mon = monitor.Monitor({"id": "warm-up", "exec_root": "/nonexistent"}, ours)
    stdio, sess, child_fds = make_stdio(False, True)
    try:
        sess.started = True
        mon.init = sess
        sess.conns.append(mon.daemon)
        mon._add_conn(mon.daemon)
        out_fd = next(fd for fd, stream in sess.outputs.items() if stream == P.STDOUT)
        for _ in range(rounds):
            os.write(stdio.stdout, b"hello\n")
            mon._on_output(sess, out_fd)
            peer.recv(65536)
            peer.sendall(P.encode(P.STDIN, b"in\n") + P.encode_json({"op": "resize", "h": 1, "w": 1, "req": 1}))
            mon._on_readable(mon.daemon)
            os.read(stdio.stdin, 100)
            peer.recv(65536)
    finally:
        for fd in {*child_fds, *sess.outputs, sess.stdin_fd} - {-1}:
            os.close(fd)
        mon.ep.close()
        ours.close()
        peer.close()
    warm_console(rounds)


def warm_console(rounds: int) -> None:
    """The tty path: a console socket, a pty master sent over it (as the container's process
    does) and taken by the Session, so that a tty monitor runs code warmed here too."""
    from berth.shim.session import close_console, make_stdio, take_master

    for _ in range(rounds):
        stdio, sess, child_fds = make_stdio(True, True)
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


def precompile_seccomp(cache_dir: str | None) -> None:
    """Compile Docker's default profile for the default capabilities once here (monitors
    inherit libcontainer's cache), and keep other profiles' programs in ``cache_dir``."""
    from berth.libcontainer import seccomp
    from berth.libcontainer.capabilities import DEFAULT_CAPS
    from berth.libcontainer.seccompprofile import default_oci

    seccomp.set_cache_dir(cache_dir)
    try:
        seccomp.compile_profile(default_oci(list(DEFAULT_CAPS)))
    except seccomp.SeccompError as exc:
        # containers asking for it will fail with this same message from libcontainer
        print(f"berth forkserver: seccomp unavailable: {exc}", file=sys.stderr)


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


def main() -> None:
    fd = int(sys.argv[1])
    control = socket.socket(fileno=fd)
    # Ctrl-C in the daemon's terminal is the daemon's to handle; we end when it closes the socket
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    monitor._set_name(b"berth-forksrv")  # comm holds 15 bytes
    warm_up()
    warm_monitor()
    precompile_seccomp(sys.argv[2] if len(sys.argv) > 2 else None)
    gc.collect()
    fillers = fill_pool_holes()
    gc.freeze()
    serve(control)
    del fillers


if __name__ == "__main__":
    main()
