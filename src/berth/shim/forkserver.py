"""The fork server: a warm, single-threaded Python that forks one monitor per container.

The daemon (asyncio, threads) must never fork into namespaces itself, and starting a fresh
interpreter per container costs 10-70 ms. So the daemon starts this process once
(``python -m berth.shim.forkserver FD [SECCOMP_CACHE_DIR [CGROUP_PARENT]]``); it imports the shim and libcontainer, runs
the shim's hot code once (:mod:`berth.shim.warmup`), calls
``gc.freeze()`` (so no collection in a child ever touches, and so copies, the shared pages) and
says ``ready`` on its control socket FD (a ``SOCK_SEQPACKET`` socketpair with the daemon).

Protocol: each request is one message ``spawn`` carrying one fd (``SCM_RIGHTS``): the monitor's
end of a fresh stream socketpair (``ahead``: the same, for a connection the daemon keeps until its
next create; ``view``: a docker cp view; ``kick``, no fd: a container was handed out, warm the
cgroup migrations). The fork server double-forks (the middle child calls
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
import signal
import socket
import sys
import types

from berth.libcontainer import view
from berth.shim import main as shim
from berth.shim.cgroupwarm import WarmerProcess
from berth.shim.helper import Standby
from berth.shim.native import standby_ahead, standby_create, standby_gone, standby_twin
from berth.shim.warmup import (
    SHIM_CLASSES,
    fill_heap_holes,
    fill_pool_holes,
    fill_small_chunks,
    move_classes,
    pack_code,
    run_code,
    warm_lifecycle,
    warm_service,
    warm_up,
)


def serve(control: socket.socket) -> None:
    """Answer spawn requests until the daemon closes the control socket."""
    control.send(b"ready")
    warmer = WarmerProcess.start()  # berth.shim.cgroupwarm
    private = (warmer.kick_w,) if warmer is not None else ()  # the fork server's alone: not a shim's
    # The first spare is forked at once; the next ones when a request comes: the daemon hands
    # its next connection out ahead of its next create (``ahead``), so no start waits for them.
    spare: Spare | None = Spare(control, private)
    # recvmsg, not socket.recv_fds: every page this loop writes after a fork is copied, and the
    # old copy stays with the shim just forked, so the loop touches as little as it can
    space = socket.CMSG_SPACE(4 * 4)
    try:
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
            if msg == b"kick" and warmer is not None:
                warmer.kick()  # a container handed out ahead is being set up
            if msg not in (b"spawn", b"view", b"ahead") or not fds:
                if fds:
                    os.close(fds[0])
                continue
            if spare is None:
                spare = Spare(control, private)
            kind = b"spawn" if msg == b"ahead" else msg
            if not spare.hand(fds[0], kind):
                spawn(fds[0], control, kind, private)  # the spare died (someone killed it): fork one now
            os.close(fds[0])
            if msg == b"spawn" and warmer is not None:
                warmer.kick()  # while the new shim sets its container up
            spare = None
    finally:
        if spare is not None:
            spare.dismiss()
        if warmer is not None:
            warmer.stop()


class Spare:
    """A shim forked in advance (double-forked, in a session of its own, like any shim), waiting
    for the fd of its daemon connection: a create pays for no fork on its way."""

    __slots__ = ("sock",)

    def __init__(self, control: socket.socket, private: tuple[int, ...] = ()) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = os.fork()
        except OSError as exc:
            print(f"berth forkserver: fork a spare shim: {exc}", file=sys.stderr)
            ours.close()
            theirs.close()
            self.sock: socket.socket | None = None
            return
        if pid == 0:
            try:
                os.setsid()
                if os.fork() != 0:
                    os._exit(0)
                control.close()
                ours.close()
                for fd in private:
                    os.close(fd)
                _wait_for_work(theirs)
            finally:
                os._exit(1)
        theirs.close()
        os.waitpid(pid, 0)
        self.sock = ours

    def hand(self, fd: int, kind: bytes) -> bool:
        """Give the spare its connection; False if it is gone."""
        sock, self.sock = self.sock, None
        if sock is None:
            return False
        try:
            sock.sendmsg([kind], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fd.to_bytes(4, sys.byteorder))])
        except OSError:
            return False
        finally:
            sock.close()
        return True

    def dismiss(self) -> None:
        """The daemon is gone: the spare exits; wait (up to 2 s) until it has."""
        sock, self.sock = self.sock, None
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(2)
            sock.recv(1)  # EOF once the spare has exited
        except OSError:
            pass  # gone already, or stuck: the harness and the daemon do not wait for it
        finally:
            sock.close()


def _wait_for_work(sock: socket.socket) -> None:
    """In the spare: fork the create helper ahead too, wait for a connection, then become its
    shim (or view); EOF: exit."""
    parent = _cgroup_parent
    standby = Standby(standby_create, standby_ahead(parent, _sample), standby_gone(parent) if parent else None,
                      standby_twin(parent))
    _msg, ancdata, _flags, _addr = sock.recvmsg(64, socket.CMSG_SPACE(4))
    fds = [int.from_bytes(data[:4], sys.byteorder)
           for level, kind, data in ancdata if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS]
    if not fds or _msg == b"view":
        standby.dismiss()
    if not fds:
        os._exit(0)
    sock.close()
    if _msg == b"view":
        view.main(socket.socket(fileno=fds[0]))
        os._exit(0)
    shim.main(socket.socket(fileno=fds[0]), standby=standby)


def spawn(fd: int, control: socket.socket, kind: bytes = b"spawn", private: tuple[int, ...] = ()) -> None:
    """Double-fork a shim that owns ``fd`` (``view``: a file-system view for docker cp,
    :mod:`berth.libcontainer.view`); the middle child is reaped at once."""
    try:
        pid = os.fork()
    except OSError as exc:
        print(f"berth forkserver: fork monitor: {exc}", file=sys.stderr)
        return  # the caller closes fd: the daemon reads EOF and reports the failure
    if pid == 0:
        try:
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            control.close()
            for other in private:
                os.close(other)
            if kind == b"view":
                view.main(socket.socket(fileno=fd))
                os._exit(0)
            shim.main(socket.socket(fileno=fd))
        finally:
            os._exit(1)
    os.waitpid(pid, 0)


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


# the daemon's cgroup parent (the third argument): a standby makes its cgroup placeholder there
_cgroup_parent = ""
# the daemon's sample of a create's body (the fourth): a standby rehearses its work on it
_sample = ""


def _rehearse() -> None:
    warm_up(2)
    warm_service(2)
    warm_lifecycle(1)


def _entry_code() -> list[types.CodeType]:
    """The code of a shim's way in (this module's, berth.shim.main's, the standby's), which no
    rehearsal in the fork server runs."""
    codes = [obj.__code__ for module in (sys.modules[__name__], shim) for obj in vars(module).values()
             if isinstance(obj, types.FunctionType) and obj.__module__ == module.__name__]
    for cls in (Spare, Standby):
        codes += [obj.__code__ for obj in vars(cls).values() if isinstance(obj, types.FunctionType)]
    return codes


WARMUP_NICE = 19  # the fork server's nice value while it warms up, until the daemon asks for it


def main() -> None:
    global _cgroup_parent, _sample
    # The warm-ups (~0.2-0.3 s of CPU) yield to the daemon's own start-up on a busy machine: the
    # daemon sets us back to 0 once it serves or a create waits for us (NativeDriver.hurry), and
    # we do before the first fork (what we fork inherits our nice value)
    niced = _nice(WARMUP_NICE)
    fd = int(sys.argv[1])
    _cgroup_parent = sys.argv[3] if len(sys.argv) > 3 else ""
    _sample = sys.argv[4] if len(sys.argv) > 4 else ""
    control = socket.socket(fileno=fd)
    # Ctrl-C in the daemon's terminal is the daemon's to handle; we end when it closes the socket
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    shim.set_name(b"berth-forksrv")  # comm holds 15 bytes
    # the code a shim runs (its entry here, then a rehearsal of its work), packed first, into
    # fresh pools, before the warm-ups: they quicken the copies
    hot = _entry_code() + run_code(_rehearse)
    fillers = [fill_pool_holes()]
    pack_code(hot=hot)
    del hot
    fillers.append(fill_heap_holes(1))  # the classes a shim instantiates, remade at the heap's top
    move_classes((*SHIM_CLASSES, (__name__, "Spare")))
    precompile_seccomp(sys.argv[2] if len(sys.argv) > 2 else None)
    # the warm-ups last: the interpreter's attribute cache (4096 entries in libpython's data, a
    # miss writes one) then holds the lookups a shim makes, not the seccomp compiler's
    warm_up()
    warm_service()
    warm_lifecycle()
    gc.collect()
    fillers.append(fill_heap_holes())  # the C heap's first: its walk frees small blocks
    fillers.append(fill_small_chunks())  # then malloc's free lists: small Python objects of its own
    fillers.append(fill_pool_holes())
    gc.freeze()
    _test_pause()
    if niced:
        _nice(0)
    serve(control)
    del fillers


def _test_pause() -> None:
    """``BERTH_TEST_FORKSERVER_PAUSE=<seconds>``: ready that much later (tests of what the daemon
    serves while the fork server boots, and of a create that waits for it)."""
    seconds = float(os.environ.get("BERTH_TEST_FORKSERVER_PAUSE") or 0)
    if seconds > 0:
        import time

        time.sleep(seconds)


def _nice(value: int) -> bool:
    """Set our nice value (root only: an unprivileged process could not set it back)."""
    if os.geteuid() != 0:
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, 0, value)
    except OSError as exc:
        print(f"berth-forksrv: set nice value {value}: {exc}", file=sys.stderr)
        return False
    return True


if __name__ == "__main__":
    main()
