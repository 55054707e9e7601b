"""The shim's entry point: one forked process per container, which exits when the container has.

The fork server (:mod:`berth.shim.forkserver`) forks the shim and calls :func:`main` with one end
of a socketpair whose other end the daemon holds. On it come the create request (a small JSON
hello for the shim, and a body only the runtime reads) and go the answers::

    daemon -> {"op": "create", "id", "exec_root", "cgroup", "tty", "open_stdin", "log_path", ...}
    daemon -> {"spec", "rootfs_mounts"}                      (parsed in the runtime's helper only)
    shim   -> {"event": "created", "pid", "monitor_pid"} | {"event": "error", "message", "exit_code"}

Then the shim serves the container (:class:`~berth.shim.service.Service`) on its reactor until
the container has exited and been deleted, and exits. The Runtime comes from ``make_runtime``:
berth's libcontainer (:class:`~berth.shim.native.NativeRuntime`), or an OCI runtime binary
(:class:`~berth.shim.oci.OciRuntime`) when the create request names one (``"runtime": {"name",
"path", "args", "root"}``: the ``oci`` exec driver), unless the caller (a test with
:mod:`berth.shim.fake`) gives another.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal.signal without the enum wrapping
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

from berth.libcontainer import kernel
from berth.shim import faults
from berth.shim import protocol as P
from berth.shim.helper import Standby
from berth.shim.native import NativeRuntime
from berth.shim.oci import OciRuntime
from berth.shim.reactor import Reactor
from berth.shim.runtime import Runtime
from berth.shim.service import Service
from berth.steptrace import mark

PR_SET_CHILD_SUBREAPER = 36
# handlers, not SIG_IGN: an ignored signal would stay ignored in the container's process across
# execve (Python starts with SIGPIPE and SIGXFSZ ignored). SIGINT, SIGHUP, SIGCHLD, SIGPIPE,
# SIGXFSZ, SIGTERM
SIGNALS = (2, 1, 17, 13, 25, 15)

MakeRuntime = Callable[[dict[str, Any], bytes, Standby | None], Runtime]


def read_request(sock: socket.socket) -> tuple[dict[str, Any], bytes]:
    """The create request: a small hello for the shim, and the body only the runtime parses."""
    decoder = P.FrameDecoder()
    frames: list[tuple[int, bytes]] = []
    while len(frames) < 2:
        data = sock.recv(64 * 1024)
        if not data:
            raise EOFError("monitor: the daemon closed the connection before sending a request")
        frames += decoder.feed(data)
    if len(frames) > 2 or decoder.pending or any(kind != P.CONTROL for kind, _ in frames):
        raise P.ProtocolError("monitor: expected exactly a create hello and its body")
    return P.decode_json(frames[0][1]), frames[1][1]


def set_name(name: bytes) -> None:
    """The process name (comm, 15 bytes) without ctypes: /proc/self/comm is writable."""
    try:
        with open("/proc/self/comm", "wb", buffering=0) as f:
            f.write(name[:15])
    except OSError:
        pass  # only cosmetic: ps shows the fork server's name instead


def _detach_stdio(log_path: str) -> None:
    """stdin/stdout to /dev/null, stderr to monitor.log: the shim has no terminal."""
    null = os.open("/dev/null", os.O_RDWR)
    err = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(err, 2)
    os.close(null)
    os.close(err)


def runtime_for(req: dict[str, Any], body: bytes, standby: Standby | None = None) -> Runtime:
    """The request's runtime: an OCI runtime binary if it names one, else berth's libcontainer."""
    if req.get("runtime"):
        return OciRuntime(req, body, standby)
    return NativeRuntime(req, body, standby)


def main(daemon: socket.socket, make_runtime: MakeRuntime = runtime_for, standby: Standby | None = None) -> None:
    """Run one container; called in the forked shim process, which exits at the end. ``standby``:
    a helper the spare shim forked while it waited, for the runtime's create."""
    code = 0
    try:
        daemon.setblocking(True)
        try:
            req, body = read_request(daemon)
        except EOFError:
            # a connection handed out ahead that the daemon let go (its shutdown): no container
            if standby is not None:
                standby.dismiss()
            os._exit(0)
        mark("m:request")
        exec_dir = os.path.join(req["exec_root"], req["id"])
        os.makedirs(exec_dir, mode=0o700, exist_ok=True)
        kernel.prctl(PR_SET_CHILD_SUBREAPER, 1)  # exec'd processes are double-forked into the pid ns
        runtime = make_runtime(req, body, standby)
        del body  # the spec is the runtime's business: nothing of it stays in the shim
        reactor = Reactor()
        service = Service(req, daemon, runtime, reactor)
        try:
            # The create first: its helper (the standby) makes the container while this process
            # sets itself up, on the other CPU (the helper's work is what the start waits for).
            service.create()
            _detach_stdio(os.path.join(exec_dir, "monitor.log"))
            set_name(b"berth-monitor")  # what ps -o comm / top show (the cmdline stays the fork server's)
            for signum in SIGNALS:
                _signal.signal(signum, _wake)
            faults.armed = True
            reactor.catch_signals(service.on_signals)
            mark("m:ready")
            reactor.run(lambda: service.finished)
        except BaseException as exc:
            service.crashed(exc)
            raise
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stderr.flush()
        os._exit(code)


def _wake(signum: int, frame: object) -> None:
    """No-op: the wakeup fd already told the loop; SIGINT/SIGHUP/SIGPIPE are thereby ignored."""
