"""Short-lived helper processes that do the monitor's heavy work, so the monitor stays small.

A forked Python copies every page it writes; parsing an OCI spec, building namespaces and
walking cgroup trees touch hundreds of them. The monitor therefore forks a helper for that work:
it calls ``libcontainer.create`` (and later releases the init's barrier), ``exec_process``, or
one ``Cgroup`` method, answers one JSON line on a pipe and exits. The process it forked is
reparented to the monitor (a child subreaper), which reaps it as its own.

    helper = Helper(lambda res_w, go_r: helper_exec(init_pid, process, stdio, cgroup, res_w))
    answer = helper.result()     # {"pid": N} or {"message": ..., "exit_code": N}
    helper.close()
"""

from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import Callable
from typing import Any

from berth.container import protocol as P
from berth.errors import SystemFailure
from berth.libcontainer import ContainerInitError, Mount, Stdio, create, exec_process
from berth.libcontainer.cgroups import Cgroup, Resources

SECCOMP_FILE = "seccomp.json"  # in <exec_root>/<id>: the container's profile, for exec helpers
RESULT_TIMEOUT = 30.0  # seconds: creating a container (mounts, namespaces) is far faster


class Helper:
    """A short-lived child that does the heavy work (libcontainer) so the monitor stays small.

    Every page a forked Python touches becomes its own; parsing a spec and setting up namespaces
    touch hundreds. The helper does that and exits; the process it forked is reparented to the
    monitor (a child subreaper), which reaps it. ``result()`` reads the helper's first answer
    (one JSON line); ``go()`` releases the container init's barrier and reads the second.
    """

    __slots__ = ("pid", "res_r", "go_w")

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

    def go(self) -> dict[str, Any]:
        try:
            os.write(self.go_w, b"g")
        except BrokenPipeError:
            return {"message": "container helper process died before start (see monitor.log)"}
        answer = self.result()
        self.close()
        return answer

    def close(self) -> None:
        """Close the pipes (an init still at its barrier then exits) and reap the helper."""
        for fd in (self.res_r, self.go_w):
            if fd >= 0:
                os.close(fd)
        self.res_r = self.go_w = -1
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass  # the loop's SIGCHLD handling reaped it already


def answer(fd: int, obj: dict[str, Any]) -> None:
    os.write(fd, P.dumps(obj) + b"\n")


def helper_create(req: dict[str, Any], body: bytes, stdio: Stdio, res_w: int, go_r: int) -> None:
    """In the helper: cgroup, libcontainer.create, then wait for "go" and release the init."""
    try:
        work = P.decode_json(body)
        cgroup = Cgroup(req["cgroup"]) if req.get("cgroup") else None
        if cgroup is not None:
            res = dict(work.get("resources") or {})
            if "device_rules" in res:
                res["device_rules"] = tuple(res["device_rules"])
            cgroup.create(Resources(**res))
        mounts = [Mount(m[0], m[1], m[2], tuple(m[3])) for m in work.get("rootfs_mounts", ())]
        seccomp = work["spec"].get("linux", {}).get("seccomp")
        if seccomp is not None:
            # for later exec helpers: the monitor itself keeps nothing of the spec
            with open(os.path.join(req["exec_root"], req["id"], SECCOMP_FILE), "wb") as f:
                f.write(P.dumps(seccomp))
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


def helper_exec(init_pid: int, process: dict[str, Any], stdio: Stdio, cgroup_name: str, exec_dir: str,
                res_w: int) -> None:
    """In the helper: libcontainer.exec_process; the exec'd process is then ours to reap.

    The container's ``linux.seccomp`` (saved in ``exec_dir`` at create) applies to the exec'd
    process too: a filter belongs to a process, and the new one does not inherit init's."""
    try:
        try:
            with open(os.path.join(exec_dir, SECCOMP_FILE), "rb") as f:
                seccomp = P.decode_json(f.read())
        except FileNotFoundError:
            seccomp = None  # the container runs unconfined
        cgroup = Cgroup(cgroup_name) if cgroup_name else None
        pid = exec_process(init_pid, process, stdio, cgroup, seccomp)
    except ContainerInitError as exc:
        answer(res_w, {"message": exc.message, "exit_code": exc.exit_code})
        return
    answer(res_w, {"pid": pid})


def helper_cgroup(name: str, op: str, res_w: int) -> None:
    """In a helper: one Cgroup method; ``{"result": ...}`` or ``{"message": ...}``."""
    cg = Cgroup(name)
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
