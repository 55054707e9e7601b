"""The shim's :class:`~berth.shim.runtime.Runtime` on berth's own libcontainer.

Everything that parses the spec, builds namespaces or walks cgroup trees runs in a helper
process (:mod:`berth.shim.helper`), so the shim's pages stay the fork server's:

- ``create``: a helper creates the cgroup (the limits of the spec's ``linux.resources``), saves
  what every exec inherits (``container.json``), calls ``libcontainer.create`` and answers the
  init's pid; it then holds the init's barrier until ``start`` releases it and answers again;
- ``exec``: a helper becomes the exec's launcher (``libcontainer.exec_in_launcher``: it joins the
  container and forks the process there) and answers its pid;
- ``pause``/``resume``: a helper freezes or thaws the cgroup;
- ``kill`` is a plain ``kill(2)``; ``state`` and ``delete`` run in the shim itself, which calls
  them only once the container is gone and the shim is about to exit.

OCI hooks (a CDI device's, say) run at their phase's moment, each phase where the runtime spec
puts it: ``prestart`` and ``createRuntime`` by the create helper once the init waits at its
barrier (a failure kills the init and fails the create); ``createContainer`` and
``startContainer`` by the init itself, in the container; ``poststart`` by a start helper after the
process was exec'd and before the start answers, ``poststop`` by a delete helper after the
cgroup is gone (a failure of those two is a warning in monitor.log). Without such hooks the start
and the delete need no helper.

    runtime = NativeRuntime(hello, body)     # body: {"spec", "rootfs_mounts"} as the daemon sent it
    op = runtime.create(stdio)               # Result.pid: the init, at its barrier
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from typing import Any

from berth.errors import SystemFailure

# hookrun, idmapped, setns, userns: what process loads only when used (berth-runtime's commands need not
# pay for them), loaded here before the fork server freezes its heap, so every shim shares them
from berth.libcontainer import (  # noqa: F401
    ContainerInitError,
    Mount,
    Stdio,
    cgroup_mount,
    hookrun,
    idmapped,
    setns,
    userns,
)
from berth.libcontainer.cgroups import Cgroup, is_unified, open_cgroup, resources_from_oci
from berth.libcontainer.cgroups.placeholder import Placeholder, remove_left
from berth.libcontainer.defaultmounts import default_mounts
from berth.libcontainer.failure import READY, init_failure
from berth.libcontainer.process import _compile_seccomp as compile_seccomp
from berth.libcontainer.process import _fork_in_pidns as fork_in_pidns
from berth.libcontainer.process import create_shared, exec_in_launcher, prepare_exec
from berth.libcontainer.spec import parse as parse_spec
from berth.shim import protocol as P
from berth.shim.helper import (
    Ahead,
    Helper,
    HelperOp,
    Standby,
    Twin,
    answer,
    twin_hands_back,
    twin_hold,
    twin_of_standby,
    twin_took,
)
from berth.shim.process import Refused
from berth.shim.runtime import Done, Op, Result, RuntimeState
from berth.steptrace import mark

# in <exec_root>/<id>: the container's process object and seccomp profile, written at create,
# read by every exec's helper (the shim itself keeps nothing of the spec): an exec'd process
# gets the container's walls whatever its request leaves out
CONTAINER_FILE = "container.json"
# Test hook, like the daemon's crash points (never set outside tests): an exec whose program is
# BERTH_TEST_EXEC_STALL gets a helper that never answers (a stuck exec).
_STALL = os.environ.get("BERTH_TEST_EXEC_STALL")


class NativeRuntime:
    """One container on libcontainer, through helpers."""

    worker = "container helper process"  # what the shim calls a worker that gives no answer

    def __init__(self, req: dict[str, Any], body: bytes, standby: Standby | None = None) -> None:
        self.id: str = req["id"]
        self.dir = os.path.join(req["exec_root"], self.id)
        self.cgroup_name: str = req.get("cgroup") or ""
        self._req = req
        self._body = body  # parsed in the create helper only; dropped once it is forked
        self._report = -1  # the init's report pipe: READY or its error (read by CreateOp); unread after the barrier
        self._barrier = -1  # one byte releases the init; closing it makes the init exit
        self._standby = standby  # the create helper, forked before the request came
        self._helper = 0  # the create helper's pid, until the start has seen it gone
        self.pid = 0
        self.pidfd = -1  # names the init for exec helpers, even once its pid is recycled
        self._poststart = self._poststop = False  # the spec has such hooks (the create helper says)
        self._apart = False  # the create helper was never in the container's cgroup (a twin's standby)

    def create(self, stdio: Stdio) -> Op:
        req, body = self._req, self._body
        self._body = b""
        try:
            os.unlink(os.path.join(self.dir, CONTAINER_FILE))  # a previous run's (a restart without cleanup)
        except FileNotFoundError:
            pass
        # the init's report and barrier pipes are ours: the helper only makes the init, and the
        # start goes from us to the init and back, with no helper in between
        report_r, report_w = os.pipe2(os.O_CLOEXEC)
        barrier_r, barrier_w = os.pipe2(os.O_CLOEXEC)
        try:
            helper = self._create_helper(req, body, stdio, (report_r, report_w), barrier_r, barrier_w)
        except BaseException:
            for fd in (report_r, barrier_w):
                os.close(fd)
            raise
        finally:
            os.close(report_w)
            os.close(barrier_r)
        self._report, self._barrier = report_r, barrier_w
        self._helper = helper.pid
        return CreateOp(helper, report_r, self._created)

    def _create_helper(self, req: dict[str, Any], body: bytes, stdio: Stdio, report: tuple[int, int],
                       barrier_r: int, barrier_w: int) -> Helper:
        standby, self._standby = self._standby, None
        if standby is not None:
            ends = [stdio.stdin, stdio.stdout, stdio.stderr, stdio.console_socket]
            fds = [fd for fd in ends if fd >= 0] + [*report, barrier_r, barrier_w]
            try:
                return standby.give({"req": req, "stdio": ends, "tty": stdio.tty}, body, fds)
            except OSError:
                standby.dismiss()  # gone (killed?): fork a helper as usual
        return Helper(lambda res_w, go_r: helper_create(req, body, stdio, report, barrier_r, barrier_w, res_w))

    def _created(self, result: Result) -> None:
        if not result.ok:
            self._drop_init_pipes()
            return
        self.pid = result.pid
        # not reaped before the shim's loop runs, so the pid is still the init's: pin it
        self.pidfd = os.pidfd_open(self.pid)
        later = result.value if isinstance(result.value, dict) else {}
        self._poststart, self._poststop = bool(later.get("poststart")), bool(later.get("poststop"))
        self._apart = bool(later.get("apart"))

    def _drop_init_pipes(self) -> None:
        for fd in (self._report, self._barrier):
            if fd >= 0:
                os.close(fd)
        self._report = self._barrier = -1

    def start(self) -> Op:
        barrier, self._barrier = self._barrier, -1
        if barrier < 0:
            return Done(Result(error=f"start container {self.id}: the init is not at its barrier", exit_code=128))
        # The create helper answered and exited meanwhile (its exit overlapped the daemon's
        # round trip): reap it if the SIGCHLD handling has not. It may have been in the
        # container's cgroup (the init is born there) and must be gone before the process
        # runs: `docker top` and the pids count see the container's processes only. A standby
        # whose twin became the init never was (the twin made and joined the cgroup): it exits
        # once the init said READY, and the SIGCHLD handling reaps it.
        creator, self._helper = self._helper, 0
        if creator and not self._apart:
            try:
                os.waitpid(creator, 0)
            except ChildProcessError:
                pass  # reaped already
        try:
            os.write(barrier, b"\0")
            mark("m:released")
        except BrokenPipeError:
            return Done(Result(error=f"start container init {self.pid}: it exited before start", exit_code=128))
        finally:
            os.close(barrier)
        report, self._report = self._report, -1
        if self._poststart:
            exec_dir, cid, pid = self.dir, self.id, self.pid
            try:
                helper = Helper(lambda res_w, go_r: helper_start(cid, pid, report, exec_dir, res_w))
            finally:
                os.close(report)  # the helper's now
            return HelperOp(helper)
        # Past its barrier init only execs, and a failing execve is the process's own exit
        # (127/126, its text on the container's stderr, as with runc): the start is answered
        # now, while init execs on the other CPU, as runc's start is answered once init took
        # its byte. Nothing reads the report pipe any more.
        os.close(report)
        return Done(Result())

    def exec(self, process: dict[str, Any], stdio: Stdio) -> Op:
        init_pid, init_pidfd, cgroup_name, exec_dir = self.pid, self.pidfd, self.cgroup_name, self.dir
        helper = Helper(lambda res_w, go_r: helper_exec(init_pid, init_pidfd, process, stdio, cgroup_name,
                                                        exec_dir, res_w))
        return HelperOp(helper)

    def kill(self, pid: int, signum: int) -> Op:
        try:
            os.kill(pid or self.pid, signum)
        finally:
            if not pid and self._barrier >= 0:
                self._drop_init_pipes()  # a created container killed: its barrier goes with it
        return Done()

    def pause(self) -> Op:
        return self._cgroup_op("freeze")

    def resume(self) -> Op:
        return self._cgroup_op("thaw")

    def _cgroup_op(self, op: str) -> Op:
        if not self.cgroup_name:
            raise Refused("invalid", "the container has no cgroup to freeze")
        name = self.cgroup_name
        return HelperOp(Helper(lambda res_w, go_r: helper_cgroup(name, op, res_w)))

    def state(self) -> Op:
        # in the shim itself: asked once the container is gone and the shim is about to exit
        # (no more helpers: from here on it may touch pages freely)
        cgroup = self._cgroup()
        try:
            oom = cgroup is not None and cgroup.oom_killed()  # False for a cgroup that is gone
        except (OSError, SystemFailure):
            oom = False  # the memory controller is gone or unreadable: no OOM is known
        status = "stopped" if self.pid and not _alive(self.pid) else "running"
        return Done(Result(value=RuntimeState(status, oom)))

    def delete(self) -> Op:
        if self._poststop and self.pid:
            name, exec_dir, cid = self.cgroup_name, self.dir, self.id
            return HelperOp(Helper(lambda res_w, go_r: helper_delete(cid, name, exec_dir, res_w)))
        cgroup = self._cgroup()
        if cgroup is not None and cgroup.exists():
            try:
                cgroup.destroy()
            except (OSError, SystemFailure) as exc:
                return Done(Result(error=f"destroy cgroup {self.cgroup_name}: {exc}", exit_code=128))
        return Done()

    def _cgroup(self) -> Cgroup | None:
        return open_cgroup(self.cgroup_name) if self.cgroup_name else None

    def reaped(self, pid: int, status: int) -> bool:
        return False  # its workers are helpers, whose statuses say nothing

    def close(self) -> None:
        if self._standby is not None:
            self._standby.dismiss()
            self._standby = None
        self._drop_init_pipes()
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ---- in the helpers -------------------------------------------------------------------------


def helper_create(req: dict[str, Any], body: bytes, stdio: Stdio, report: tuple[int, int], barrier_r: int,
                  barrier_w: int, res_w: int, spot: Placeholder | None = None,
                  work: dict[str, Any] | None = None, become: bool = False) -> None:
    """In the helper: cgroup, then the init (``libcontainer.create_shared`` on the shim's pipes);
    answers its pid once it waits at the barrier, and exits. The barrier's write end is the
    shim's (the init must see EOF if the shim goes); kept here only while the init may wait for
    the runtime's create hooks. ``spot``: the cgroup a standby made and joined ahead; when it
    can become the container's, the init is born inside. ``work``: ``body`` decoded already;
    ``become``: this process is a standby's twin, pid 1 of the new pid namespace the spec asks
    for (:func:`in_place`): it becomes the init (answering its pid first) instead of forking it."""
    try:
        mark("h:work")
        if work is None:
            work = P.decode_json(body)
        spec = work["spec"]
        hooks_at_create = _phase(spec, "prestart") or _phase(spec, "createRuntime")
        cgroup = open_cgroup(req["cgroup"]) if req.get("cgroup") else None
        inside = False
        if cgroup is not None:
            # the limits the spec holds, converted as berth-runtime converts a bundle's
            resources = resources_from_oci((spec.get("linux") or {}).get("resources"))
            # the runtime's create hooks run from this helper: then it stays out of the cgroup
            inside = (spot is not None and not hooks_at_create and spot.fits(cgroup.name, resources)
                      and spot.adopt(cgroup.name))
            # adopted: the directories and the default device rules are there, the limits not yet
            rest = Placeholder.remaining(resources) if inside else resources
            if rest is not None:
                cgroup.create(rest)
            mark("h:cgroup")
        if spot is not None and not inside:
            spot.discard()
        mounts = [Mount(m[0], m[1], m[2], tuple(m[3])) for m in work.get("rootfs_mounts", ())]
        template = _hook_state(req, spec)
        in_container = template if any(_phase(spec, p) for p in ("createContainer", "startContainer")) else None

        def create_hooks(pid: int) -> None:
            # the runtime's own phases at create, once the init made its namespaces and mounts
            # and waits before pivot_root: a failure is the create's (the init is killed)
            state = hookrun.state_for(P.dumps(template).decode(), pid, "created")
            for phase in ("prestart", "createRuntime"):
                hookrun.run(hookrun.hooks_of(spec, phase), phase, state)
            os.write(barrier_w, b"\0")  # go on

        if not hooks_at_create:
            os.close(barrier_w)
            barrier_w = -1
        def save() -> None:  # while init sets itself up: only what comes after the create reads it
            _save_container(os.path.join(req["exec_root"], req["id"], CONTAINER_FILE), spec, template)
            mark("h:saved")

        # init's READY goes to the shim directly (it holds the report pipe too) unless this helper
        # must see it: the runtime's create hooks, a user namespace's stage A
        direct = not hooks_at_create and not _has_userns(spec)
        # the hooks of later phases: the shim's start and delete fork a helper for them
        later: dict[str, bool] = {p: True for p in ("poststart", "poststop") if _phase(spec, p)}
        if direct:
            later["direct"] = True  # init is forked, its READY is still to come (CreateOp)

        def told(pid: int) -> int:  # in place: the answer before this process becomes the init
            hold = twin_hold()
            # the helper the shim knows is the standby, which the twin (now the init) leaves
            # outside the container's cgroup: the start need not wait for its exit
            answer(res_w, {"pid": pid, "result": {**later, "apart": True} if hold >= 0 else later})
            mark("h:ready")
            return hold  # the init closes it at READY: its standby exits then

        pid = create_shared(spec, mounts, stdio, None if inside else cgroup, report, barrier_r, in_container,
                            create_hooks if hooks_at_create else None, forked=save, wait_ready=not direct,
                            in_place=told if become else None)
        mark("h:ready")
    except ContainerInitError as exc:
        answer(res_w, {"message": exc.message, "exit_code": exc.exit_code})
        return
    except Exception as exc:
        import traceback

        traceback.print_exc()  # to monitor.log; the daemon gets the one-line message
        answer(res_w, {"message": f"create container {req['id']}: {exc}", "exit_code": 128})
        return
    finally:
        if barrier_w >= 0:
            os.close(barrier_w)
    answer(res_w, {"pid": pid, "result": later})


def _has_userns(spec: dict[str, Any]) -> bool:
    return any(ns.get("type") == "user" for ns in ((spec.get("linux") or {}).get("namespaces") or ()))


def _phase(spec: dict[str, Any], phase: str) -> bool:
    return bool((spec.get("hooks") or {}).get(phase))


def _hook_state(req: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """The OCI state the hooks get (its status and pid set per phase)."""
    bundle = req.get("bundle") or os.path.join(req["exec_root"], req["id"])
    state: dict[str, Any] = {"ociVersion": spec.get("ociVersion", ""), "id": req["id"], "status": "creating",
                             "pid": 0, "bundle": bundle}
    if spec.get("annotations"):
        state["annotations"] = spec["annotations"]
    return state


def helper_start(cid: str, pid: int, report: int, exec_dir: str, res_w: int) -> None:
    """In a helper, for a container with poststart hooks: the init's report after its barrier
    (released by the shim: EOF once the process was exec'd, else its error), then the hooks;
    a hook's failure is a warning (monitor.log), the start still succeeds."""
    try:
        chunks = []
        while chunk := os.read(report, 65536):
            chunks.append(chunk)
    finally:
        os.close(report)
    if chunks:
        err = ContainerInitError.from_wire(b"".join(chunks))
        answer(res_w, {"message": err.message, "exit_code": err.exit_code})
        return
    _after(cid, exec_dir, "poststart", "running", pid)
    answer(res_w, {})


def helper_delete(cid: str, cgroup_name: str, exec_dir: str, res_w: int) -> None:
    """In a helper, for a container with poststop hooks: the cgroup removed, then the hooks
    (a failure is a warning)."""
    try:
        cgroup = open_cgroup(cgroup_name) if cgroup_name else None
        if cgroup is not None and cgroup.exists():
            cgroup.destroy()
    except (OSError, SystemFailure) as exc:
        answer(res_w, {"message": f"destroy cgroup {cgroup_name}: {exc}", "exit_code": 128})
        return
    finally:
        _after(cid, exec_dir, "poststop", "stopped", 0)
    answer(res_w, {})


def _after(cid: str, exec_dir: str, phase: str, status: str, pid: int) -> None:
    """Run ``phase``'s hooks as kept at create; failures (and a missing record) are warnings."""
    import sys

    try:
        with open(os.path.join(exec_dir, CONTAINER_FILE), "rb") as f:
            container = P.decode_json(f.read())
        hooks = hookrun.hooks_of(container, phase)
        template = P.dumps(container.get("hook_state") or {}).decode()
        warnings = hookrun.run_warning(hooks, phase, hookrun.state_for(template, pid, status))
    except (OSError, ValueError, ContainerInitError) as exc:
        warnings = [f"{phase} hooks: {exc}"]
    for warning in warnings:
        print(f"monitor: container {cid}: warning: {warning}", file=sys.stderr, flush=True)


def standby_create(msg: dict[str, Any], body: bytes, fds: list[int], res_w: int, go_r: int) -> None:
    """In a standby helper (:class:`~berth.shim.helper.Standby`): ``helper_create`` on the fds
    it was given, in the order ``NativeRuntime`` sends them (an OCI runtime binary's create when
    the message says so: the spare shim's standby serves either runtime). In the standby's twin
    (:func:`standby_twin`): the container's init made in place when the spec lets it, else the
    work handed back to the standby."""
    work = None
    if twin_of_standby():
        try:
            work = None if msg.get("oci") else P.decode_json(body)
        except ValueError:
            work = None
        if work is None or not in_place(work):
            if _ahead.spot is not None:
                _ahead.spot.discard()  # the standby's init joins the container's cgroup as usual
                _ahead.spot = None
            twin_hands_back(msg, body, fds)
            return
        twin_took()
        mark("h:twin")
    if msg.get("oci"):
        from berth.shim.oci import standby_create as oci_create

        oci_create(msg, body, fds, res_w)
        return
    given = iter(fds)
    ends = [next(given) if fd >= 0 else -1 for fd in msg["stdio"]]
    report = (next(given), next(given))
    barrier_r, barrier_w = next(given), next(given)
    stdio = Stdio(ends[0], ends[1], ends[2], tty=bool(msg["tty"]), console_socket=ends[3])
    helper_create(msg["req"], body, stdio, report, barrier_r, barrier_w, res_w, _ahead.spot, work, work is not None)


def in_place(work: dict[str, Any]) -> bool:
    """Whether a create's init can be a standby's twin (pid 1 of a new pid namespace, made
    ahead): the spec asks for a new pid namespace and no user namespace, and has no hooks for
    the runtime to run at create (the helper that runs them must be another process)."""
    spec = work.get("spec")
    if not isinstance(spec, dict):
        return False
    linux = spec.get("linux") or {}
    kinds = {ns.get("type"): ns for ns in linux.get("namespaces") or () if isinstance(ns, dict)}
    pid = kinds.get("pid")
    return (pid is not None and not pid.get("path") and "user" not in kinds
            and not _phase(spec, "prestart") and not _phase(spec, "createRuntime"))


class _Ahead:
    """What a standby prepared before its work came (in the standby process: one per process)."""

    spot: Placeholder | None = None
    owner = 0  # in a standby's twin: the standby's (host) pid, which its placeholder is named after


_ahead = _Ahead()


def standby_twin(cgroup_parent: str, root: str = "/sys/fs/cgroup") -> Twin | None:
    """A standby's twin (:class:`~berth.shim.helper.Standby`), forked ahead as pid 1 of a new
    pid namespace: it makes and joins the cgroup placeholder and rehearses instead of the
    standby, and becomes the container's init itself when the work comes (no fork, and none of
    the init's first steps, on the start's path); work it cannot do (an OCI runtime's, another
    pid namespace, a user namespace, create hooks) it hands back to the standby. Only where a
    placeholder can be made: elsewhere the init is forked into its cgroup2 directory
    (CLONE_INTO_CGROUP), which a process forked ahead could only join."""
    if not cgroup_parent.strip("/") or is_unified(root):
        return None

    def fork() -> int:
        owner = os.getpid()
        try:
            pid, _ = fork_in_pidns("")
        except (OSError, ContainerInitError):
            return -1
        if pid == 0:
            _ahead.owner = owner
        return pid

    return fork


def standby_ahead(cgroup_parent: str, sample: str = "") -> Ahead:
    """A standby's work ahead (:class:`~berth.shim.helper.Standby`): the cgroup placeholder
    under the daemon's cgroup parent, made and joined (:mod:`berth.libcontainer.cgroups.placeholder`),
    and a rehearsal of its work on the daemon's ``sample`` (:func:`rehearse`)."""

    def ahead(came: Callable[[], bool]) -> Callable[[], None] | None:
        if sample:
            rehearse(sample)
        if came():
            return None  # the work is there: the placeholder (1-2 ms of cgroup work) would delay it
        _ahead.spot = Placeholder.make(cgroup_parent, pid=_ahead.owner) if cgroup_parent else None
        if _ahead.spot is None:
            return None
        # the container's /sys/fs/cgroup too, of the placeholder's directories (used only if
        # the container's are those, renamed, and its mount asks what docker run's asks)
        if not came():
            cgroup_mount.make_ahead(_DOCKER_CGROUP_OPTIONS, came)
        return _undo_ahead

    return ahead


def _undo_ahead() -> None:
    cgroup_mount.drop_ahead()
    if _ahead.spot is not None:
        _ahead.spot.discard()


# the cgroup mount's options in docker run's spec (berth.libcontainer.defaultmounts)
_DOCKER_CGROUP_OPTIONS = tuple(next(m["options"] for m in default_mounts() if m["type"] == "cgroup"))


def rehearse(sample: str) -> None:
    """In a standby, before its work comes: what :func:`helper_create` does in Python before
    the kernel work, on a recent create's body (the daemon writes one to ``sample``). A forked
    process copies every page it writes, and its first run of the decoder, the spec's parser and
    the rest writes to hundreds (reference counts, caches): done here, while nobody waits, the
    real create finds them copied already (decode + parse + the seccomp lookup: ~0.95 -> ~0.22 ms
    in a forked child). Nothing is done with the result; a sample that is missing, not root's
    own, or not a spec this parser takes is left alone."""
    try:
        fd = os.open(sample, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o077:
            return  # only the daemon's own file
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:
        return
    finally:
        os.close(fd)
    try:
        work = P.decode_json(b"".join(chunks))
        spec = work["spec"]
        resources = resources_from_oci((spec.get("linux") or {}).get("resources"))
        Placeholder.remaining(resources)
        [Mount(m[0], m[1], m[2], tuple(m[3])) for m in work.get("rootfs_mounts", ())]
        template = _hook_state({"id": "0" * 64, "exec_root": "/"}, spec)
        P.dumps({"process": spec.get("process") or {}, "linux": {}, "hook_state": template})
        # the namespaces the sample's container joined by path are gone (or another's): new ones
        linux = dict(spec.get("linux") or {})
        linux["namespaces"] = [{"type": ns.get("type")} for ns in linux.get("namespaces") or ()]
        parsed = parse_spec({**spec, "linux": linux})
        compile_seccomp(parsed.seccomp)
    except (ContainerInitError, ValueError, KeyError, TypeError, IndexError, AttributeError, SystemFailure):
        pass  # a rehearsal only: whatever it warmed, it warmed


def standby_gone(cgroup_parent: str) -> Callable[[int], None]:
    """After a standby was dismissed: its placeholder, should it have been killed with one."""
    return lambda pid: remove_left(cgroup_parent, pid)


class CreateOp:
    """The create: the helper's answer (init's pid), then, when the helper says so (``direct``),
    init's READY or error on the shim's own report pipe: one hand-over less than the helper
    reading READY and answering after it. The fd it waits on changes between the two, and the
    runtime hears of the result in ``close`` (after the waiter forgot the fd, which a failed
    create closes)."""

    __slots__ = ("first", "report", "fd", "answer", "buf", "on_result", "result")

    def __init__(self, helper: Helper, report: int, on_result: Callable[[Result], None]) -> None:
        self.first = HelperOp(helper)
        self.report = report
        self.fd = self.first.fd
        self.answer: Result | None = None  # the helper's, while READY is awaited
        self.buf = b""
        self.on_result = on_result
        self.result: Result | None = None

    def poll(self) -> Result | None:
        if self.answer is None:
            res = self.first.poll()
            if res is None:
                return None
            if not (res.ok and isinstance(res.value, dict) and res.value.pop("direct", False)):
                self.result = res
                return res
            self.answer = res
            os.set_blocking(self.report, False)
            self.fd = self.report  # the waiter watches this one from now on
        try:
            chunk = os.read(self.report, 4096)
        except BlockingIOError:
            return None
        self.buf += chunk
        if chunk and not self.buf.endswith(b"\n"):
            return None
        if self.buf == READY:
            res = self.answer
        else:
            err = init_failure(self.buf, self.answer.pid)
            res = Result(error=err.message, exit_code=err.exit_code)
        self.result = res
        return res

    def close(self) -> None:
        self.first.helper.close()  # it answered and exited
        if self.result is not None:
            self.on_result(self.result)

    def abandon(self) -> None:
        self.first.abandon()


def _save_container(path: str, spec: dict[str, Any], hook_state: dict[str, Any]) -> None:
    """What every exec of this container inherits: its process object and seccomp profile; and
    the poststart and poststop hooks, as they were at create, with the state they get."""
    seccomp = (spec.get("linux") or {}).get("seccomp")
    doc: dict[str, Any] = {"process": spec.get("process") or {}, "linux": {} if seccomp is None else {"seccomp": seccomp}}
    later = {p: h for p, h in (spec.get("hooks") or {}).items() if p in ("poststart", "poststop") and h}
    if later:
        doc["hooks"] = later
        doc["hook_state"] = hook_state
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
    """In a helper: freeze or thaw the cgroup; ``{}`` or ``{"message": ...}``."""
    cg = open_cgroup(name)
    try:
        getattr(cg, op)()
    except (OSError, SystemFailure) as exc:
        answer(res_w, {"message": f"{op} cgroup {name}: {exc}"})
        return
    answer(res_w, {})
