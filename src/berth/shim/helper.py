"""Short-lived helper processes that do the monitor's heavy work, so the monitor stays small.

A forked Python copies every page it writes; parsing an OCI spec, building namespaces and
walking cgroup trees touch hundreds of them. The monitor therefore forks a helper for that work:
it calls ``libcontainer.create`` (and later releases the init's barrier), becomes the launcher
of an exec'd process (``libcontainer.exec_in_launcher``: it enters the container and forks the
process there), or runs one ``Cgroup`` method, answers one JSON line on a pipe and exits. The
process it forked is reparented to the monitor (a child subreaper), which reaps it as its own.

    helper = Helper(lambda res_w, go_r: helper_cgroup(name, "freeze", res_w))
    answer = helper.result()     # {"result": ...} or {"message": ...}
    helper.close()

An exec's helper is waited for by the monitor's loop instead (``read_ready`` when its pipe is
readable, a deadline): whatever happens to it, the container's other work goes on.
"""

from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import Callable
from typing import Any

from berth.errors import SystemFailure
from berth.libcontainer import ContainerInitError, Mount, Stdio, create
from berth.libcontainer.cgroups import open_cgroup, resources_from_oci
from berth.libcontainer.process import exec_in_launcher, prepare_exec
from berth.shim import protocol as P

# in <exec_root>/<id>: the container's process object and seccomp profile, written at create,
# read by every exec's helper (the monitor itself keeps nothing of the spec): an exec'd process
# gets the container's walls whatever its request leaves out
CONTAINER_FILE = "container.json"
# seconds: creating a container (mounts, namespaces) is far faster. Test hooks, like the
# daemon's crash points (never set outside tests): BERTH_TEST_HELPER_TIMEOUT shortens it, and an
# exec whose program is BERTH_TEST_EXEC_STALL gets a helper that never answers (a stuck exec).
RESULT_TIMEOUT = float(os.environ.get("BERTH_TEST_HELPER_TIMEOUT") or 30.0)
_STALL = os.environ.get("BERTH_TEST_EXEC_STALL")


class Helper:
    """A short-lived child that does the heavy work (libcontainer) so the monitor stays small.

    Every page a forked Python touches becomes its own; parsing a spec and setting up namespaces
    touch hundreds. The helper does that and exits; the process it forked is reparented to the
    monitor (a child subreaper), which reaps it. ``result()`` reads the helper's first answer
    (one JSON line); ``go()`` releases the container init's barrier and reads the second.
    """

    __slots__ = ("pid", "res_r", "go_w", "buf")

    def __init__(self, body: Callable[[int, int], None]) -> None:
        res_r, res_w = os.pipe2(os.O_CLOEXEC)
        go_r, go_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.set_wakeup_fd(-1)
                os.close(res_r)
                os.close(go_w)
                body(res_w, go_r)
                code = 0
            finally:
                os._exit(code)
        os.close(res_w)
        os.close(go_r)
        self.pid, self.res_r, self.go_w = pid, res_r, go_w
        self.buf = b""

    def result(self, timeout: float = RESULT_TIMEOUT) -> dict[str, Any]:
        """The helper's next answer; a helper silent for ``timeout`` seconds is killed.

        The monitor's loop waits here, so a helper must never hang it (a frozen container can
        block an exec forever, for one).
        """
        line = b""
        deadline = time.monotonic() + timeout
        poller = select.poll()
        poller.register(self.res_r, select.POLLIN)
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(left * 1000):
                os.kill(self.pid, signal.SIGKILL)
                return {"message": f"container helper process gave no answer in {timeout:g} s", "exit_code": 128}
            chunk = os.read(self.res_r, 4096)
            if not chunk:
                break
            line += chunk
        if not line:
            return {"message": "container helper process died (see monitor.log)", "exit_code": 128}
        return P.decode_json(line)

    def read_ready(self) -> dict[str, Any] | None:
        """For a loop watching ``res_r`` (made non-blocking here): the answer once its line is
        complete (or the helper died), None while more is to come."""
        os.set_blocking(self.res_r, False)
        try:
            chunk = os.read(self.res_r, 4096)
        except BlockingIOError:
            return None
        self.buf += chunk
        if chunk and not self.buf.endswith(b"\n"):
            return None
        if not self.buf:
            return {"message": "container helper process died (see monitor.log)", "exit_code": 128}
        try:
            return P.decode_json(self.buf)
        except ValueError:
            return {"message": f"container helper process answered garbage: {self.buf[:100]!r}", "exit_code": 128}

    def go(self) -> dict[str, Any]:
        try:
            os.write(self.go_w, b"g")
        except BrokenPipeError:
            return {"message": "container helper process died before start (see monitor.log)"}
        answer = self.result()
        self.close()
        return answer

    def close(self, wait: bool = True) -> None:
        """Close the pipes (an init still at its barrier then exits) and reap the helper (or,
        without ``wait``, leave it to the loop's SIGCHLD handling: a killed helper in a frozen
        cgroup dies only when thawed)."""
        for fd in (self.res_r, self.go_w):
            if fd >= 0:
                os.close(fd)
        self.res_r = self.go_w = -1
        try:
            os.waitpid(self.pid, 0 if wait else os.WNOHANG)
        except ChildProcessError:
            pass  # the loop's SIGCHLD handling reaped it already


def answer(fd: int, obj: dict[str, Any]) -> None:
    os.write(fd, P.dumps(obj) + b"\n")


def helper_create(req: dict[str, Any], body: bytes, stdio: Stdio, res_w: int, go_r: int) -> None:
    """In the helper: cgroup, libcontainer.create, then wait for "go" and release the init."""
    try:
        work = P.decode_json(body)
        cgroup = open_cgroup(req["cgroup"]) if req.get("cgroup") else None
        if cgroup is not None:
            # the limits the spec holds, converted as berth-runtime converts a bundle's
            cgroup.create(resources_from_oci((work["spec"].get("linux") or {}).get("resources")))
        mounts = [Mount(m[0], m[1], m[2], tuple(m[3])) for m in work.get("rootfs_mounts", ())]
        _save_container(os.path.join(req["exec_root"], req["id"], CONTAINER_FILE), work["spec"])
        init = create(work["spec"], mounts, stdio, cgroup)
    except ContainerInitError as exc:
        answer(res_w, {"message": exc.message, "exit_code": exc.exit_code})
        return
    except Exception as exc:
        import traceback

        traceback.print_exc()  # to monitor.log; the daemon gets the one-line message
        answer(res_w, {"message": f"create container {req['id']}: {exc}", "exit_code": 128})
        return
    answer(res_w, {"pid": init.pid})
    if not os.read(go_r, 1):
        return  # the monitor gave up: exiting closes the barrier, so init exits without running
    try:
        init.start()
    except ContainerInitError as exc:
        answer(res_w, {"message": exc.message, "exit_code": exc.exit_code})
        return
    answer(res_w, {})


def _save_container(path: str, spec: dict[str, Any]) -> None:
    """What every exec of this container inherits: its process object and seccomp profile."""
    seccomp = (spec.get("linux") or {}).get("seccomp")
    doc = {"process": spec.get("process") or {}, "linux": {} if seccomp is None else {"seccomp": seccomp}}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, P.dumps(doc))
    finally:
        os.close(fd)


def helper_exec(init_pid: int, init_pidfd: int, process: dict[str, Any], stdio: Stdio, cgroup_name: str,
                exec_dir: str, res_w: int) -> None:
    """In the helper, which becomes the exec's launcher: the exec'd process is then ours to reap.

    The container's process object and seccomp profile (saved in ``exec_dir`` at create) give
    the exec'd process every wall the request leaves out, and always the seccomp filter."""
    if _STALL and (process.get("args") or [None])[0] == _STALL:
        while True:
            time.sleep(3600)
    try:
        try:
            with open(os.path.join(exec_dir, CONTAINER_FILE), "rb") as f:
                container = P.decode_json(f.read())
        except (OSError, ValueError) as exc:
            # no record of the container's walls: refuse rather than run the process without them
            raise ContainerInitError(f"exec in container {init_pid}: read {CONTAINER_FILE}: {exc}", 126) from exc
        parsed, program = prepare_exec(process, container)
        cgroup = open_cgroup(cgroup_name) if cgroup_name else None
        pid = exec_in_launcher(init_pid, parsed, stdio, cgroup, program, init_pidfd, keep=(res_w,))
    except ContainerInitError as exc:
        answer(res_w, {"message": exc.message, "exit_code": exc.exit_code})
        return
    except Exception as exc:  # noqa: BLE001 -- anything else still gets an answer (we may be inside the container: no traceback import)
        answer(res_w, {"message": f"exec in container {init_pid}: {type(exc).__name__}: {exc}", "exit_code": 126})
        return
    answer(res_w, {"pid": pid})


def helper_cgroup(name: str, op: str, res_w: int) -> None:
    """In a helper: one Cgroup method; ``{"result": ...}`` or ``{"message": ...}``."""
    cg = open_cgroup(name)
    try:
        if op == "destroy":
            if cg.exists():
                cg.destroy()
            result: object = None
        elif op == "oom_killed":
            result = cg.exists() and cg.oom_killed()
        else:
            result = getattr(cg, op)()
    except (OSError, SystemFailure) as exc:
        answer(res_w, {"message": f"{op} cgroup {name}: {exc}"})
        return
    answer(res_w, {"result": result})
