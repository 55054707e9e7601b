"""Forking the container init and exec'd processes, and the pipes that synchronise them.

Two pipes per init:

* report (child -> parent, close-on-exec in the child): ``READY`` when init waits at the
  barrier, or a JSON error (then init exits); after the barrier, EOF means ``execve`` worked.
* barrier (parent -> child): one byte releases init; EOF (the caller closed it or died) makes
  init exit without running anything.

With ``create_hooks`` (a caller that runs the runtime's ``prestart``/``createRuntime`` hooks),
init first reports ``HOOKS`` once its namespaces and mounts are made, before its
``createContainer`` hooks and pivot_root -- where the runtime spec puts those hooks -- and waits
for one byte on the barrier: ``create_hooks(pid)`` runs them and writes that byte (the caller
holds the barrier's write end, or reopens the FIFO). If it raises, init is killed and reaped.

PID namespaces: before ``fork`` the caller enters the target PID namespace *for its children*
(``unshare(CLONE_NEWPID)`` or ``setns``), so the child is pid 1 of the new namespace (or a member
of the joined one) without a second fork; right after the fork the caller ``setns``-es back to
its own, so nothing else it forks lands in the container. The caller must be single-threaded
(the monitor is).

``exec_process`` is different on purpose: the caller forks a throwaway launcher that joins
every namespace of init (the PID namespace for its children only), takes on the container's
walls, and only then forks the process (:mod:`berth.libcontainer.setns`), so nothing in the
container ever sees a process of ours before it is confined. The launcher reports
``{"pid": N}`` (or a JSON error) on a pipe once the process has exec'd.
"""

from __future__ import annotations

import os

from berth.libcontainer import fastjson as json
from berth.libcontainer import kernel, record, seccomp
from berth.libcontainer import spec as specmod
from berth.libcontainer.cgroups import Cgroup
from berth.libcontainer.failure import (
    EXIT_CANNOT_EXECUTE,
    EXIT_OTHER,
    HOOKS,
    READY,
    ContainerInitError,
    die,
    init_failure,
)
from berth.libcontainer.init import run_init
from berth.libcontainer.spec import Mount, Process, Stdio
from berth.steptrace import mark

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn


class InitProcess:
    """The container's init, waiting at the barrier until :meth:`start`."""

    def __init__(self, pid: int, report_fd: int, barrier_fd: int) -> None:
        self.pid = pid
        self._report_fd = report_fd
        self._barrier_fd = barrier_fd

    def start(self) -> None:
        """Release the barrier and return once init has exec'd the process.

        An ``execve`` that fails now (the binary vanished) raises ContainerInitError; init
        has then exited with 127/126 and the caller reaps it as usual.
        """
        if self._barrier_fd < 0:
            raise ContainerInitError(
                f"start container init {self.pid}: already started or aborted", EXIT_OTHER
            )
        try:
            os.write(self._barrier_fd, b"\0")
        except BrokenPipeError as exc:
            raise ContainerInitError(
                f"start container init {self.pid}: it exited before start", EXIT_OTHER
            ) from exc
        finally:
            os.close(self._barrier_fd)
            self._barrier_fd = -1
        try:
            data = _read_all(self._report_fd)
        finally:
            os.close(self._report_fd)
            self._report_fd = -1
        if data:
            raise ContainerInitError.from_wire(data)

    def abort(self) -> None:
        """Do not run the process: close the barrier (init exits) and reap init."""
        for fd in (self._barrier_fd, self._report_fd):
            if fd >= 0:
                os.close(fd)
        self._barrier_fd = self._report_fd = -1
        _reap(self.pid)


def create(
    spec: dict[str, Any], rootfs_mounts: list[Mount], stdio: Stdio, cgroup: Cgroup | None
) -> InitProcess:
    """Fork the container init and return when it waits at the barrier.

    ``cgroup`` must already exist (``Cgroup.create``); init joins it first thing. Raises
    ContainerInitError (the child is reaped) if anything fails before the barrier.
    """
    barrier_r, barrier_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid, report_r = _spawn(spec, rootfs_mounts, stdio, cgroup, barrier_r)
    except BaseException:
        os.close(barrier_w)
        raise
    return InitProcess(pid, report_r, barrier_w)


def create_shared(
    spec: dict[str, Any], rootfs_mounts: list[Mount], stdio: Stdio, cgroup: Cgroup | None,
    report: tuple[int, int], barrier_r: int, hook_state: dict[str, Any] | None = None,
    create_hooks: Callable[[int], None] | None = None, forked: Callable[[], None] | None = None,
    wait_ready: bool = True, in_place: Callable[[int], int] | None = None,
) -> int:
    """Like :func:`create`, for a caller whose pipes another process also holds: the shim
    makes ``report`` and the barrier, forks a helper that calls this, and keeps the read end of
    one and the write end of the other. Init's READY is read here; ``report``'s ends and
    ``barrier_r`` are closed here. After the barrier the shim reads, on its own copy of the
    report pipe, EOF (the process was exec'd) or the error of a process that could not be.
    ``hook_state``: as for :func:`create_detached` (a spec with in-container hooks: CDI's);
    ``create_hooks``: see the module's text. ``forked``: the caller's own work, done while
    init sets itself up (once it is forked; a failure there kills init). Not ``wait_ready`` (a
    container without a user namespace or create hooks): return once init is forked, and leave
    its READY (or its error) to the caller, on its own copy of the report pipe.

    ``in_place``: the caller becomes the init itself, without a fork -- a process forked ahead
    as pid 1 of a new pid namespace, the one the spec asks for (a new pid namespace, no user
    namespace, no create hooks, not waiting for READY). Once the spec is parsed, its program
    compiled and ``forked`` done, ``in_place(pid)`` is called with its host pid (to tell the
    caller's caller), then the init runs here: this call does not return. What ``in_place``
    returns is a descriptor the init holds until it has said READY and then closes (-1: none):
    a standby's twin lets its standby exit then, into the wait for the start, rather than beside
    the init's own work."""
    pid, report_r = _spawn(spec, rootfs_mounts, stdio, cgroup, barrier_r, report, hook_state=hook_state,
                           create_hooks=create_hooks, forked=forked, wait_ready=wait_ready, in_place=in_place)
    os.close(report_r)
    return pid


def create_detached(
    spec: dict[str, Any],
    rootfs_mounts: list[Mount],
    stdio: Stdio,
    cgroup: Cgroup | None,
    barrier_fd: int,
    hook_state: dict[str, Any] | None = None,
    parsed: specmod.ContainerSpec | None = None,
    create_hooks: Callable[[int], None] | None = None,
) -> int:
    """Like :func:`create`, for a caller that exits before the start (an OCI runtime CLI).

    Init waits for one byte on ``barrier_fd`` -- typically a FIFO opened O_RDWR, so that it
    never sees EOF and a later ``start`` (another process) releases it by writing to the FIFO.
    Returns init's pid; errors after the barrier are not reported to anyone. ``hook_state``:
    the OCI state the createContainer/startContainer hooks get (init fills in its pid).
    ``parsed``: :func:`berth.libcontainer.spec.parse` of ``spec``, when the caller has it already;
    ``create_hooks``: see the module's text.
    """
    pid, report_r = _spawn(spec, rootfs_mounts, stdio, cgroup, barrier_fd, hook_state=hook_state, parsed=parsed,
                           create_hooks=create_hooks)
    os.close(report_r)
    return pid


def _spawn(
    spec: dict[str, Any],
    rootfs_mounts: list[Mount],
    stdio: Stdio,
    cgroup: Cgroup | None,
    barrier_r: int,
    report: tuple[int, int] | None = None,
    hook_state: dict[str, Any] | None = None,
    parsed: specmod.ContainerSpec | None = None,
    create_hooks: Callable[[int], None] | None = None,
    forked: Callable[[], None] | None = None,
    wait_ready: bool = True,
    in_place: Callable[[int], int] | None = None,
) -> tuple[int, int]:
    """Fork init (which waits on ``barrier_r``; closed here in the parent) and wait until it is
    ready; returns (pid, the report pipe's read end). ``report``: the caller's pipe (its write
    end is closed here), else a new one."""
    try:
        if parsed is None:
            parsed = specmod.parse(spec)
        if hook_state is not None:
            parsed = record.replace(parsed, hook_state=json.dumps(hook_state))
        mark("h:parsed")
        if create_hooks is not None:
            parsed = record.replace(parsed, sync_create_hooks=True)
        program = _compile_seccomp(parsed.seccomp)  # canonical JSON: the cache's key as it is
        mark("h:seccomp")
        if parsed.create_container_hooks or parsed.start_container_hooks:
            # init runs them, where it may import nothing any more (pivot_root, a user namespace)
            from berth.libcontainer import hookrun  # noqa: F401
        pidns = parsed.namespace("pid")
        userns_ = parsed.namespace("user")
        if in_place is not None and (report is None or userns_ is not None or pidns is None or pidns.path
                                     or create_hooks is not None or wait_ready):
            raise ContainerInitError("container init in place: not for this spec", EXIT_OTHER)
        if userns_ is None:
            report_r, report_w = report or os.pipe2(os.O_CLOEXEC)
    except BaseException:
        os.close(barrier_r)
        if report is not None:
            os.close(report[1])
        raise
    if in_place is not None:
        _become_init(parsed, program, rootfs_mounts, stdio, cgroup, report_r, report_w, barrier_r, forked, in_place)
    if userns_ is not None:
        pid, report_r = _spawn_userns(parsed, program, rootfs_mounts, stdio, cgroup, barrier_r, report, create_hooks)
        _after_fork(forked, pid, report_r)
        return pid, report_r
    born = _v2_dir_fd(cgroup)  # init is born in its cgroup2 directory where the kernel can
    try:
        pid, in_v2 = _fork_in_pidns(None if pidns is None else (pidns.path or ""), born)
    except BaseException:
        for fd in (report_r, report_w, barrier_r):
            os.close(fd)
        raise
    finally:
        if born >= 0:
            os.close(born)
    if pid == 0:  # the child: never returns (fds other than stdio, report and barrier are closed there)
        try:
            os.close(report_r)
        finally:
            run_init(parsed, program, rootfs_mounts, stdio, cgroup, report_w, barrier_r, born_in_v2=in_v2)
    mark("h:forked")
    os.close(report_w)
    os.close(barrier_r)
    _after_fork(forked, pid, report_r)
    if not wait_ready and create_hooks is None:
        return pid, report_r  # the caller reads READY on its own copy
    data = _read_line(report_r)
    if data == HOOKS and create_hooks is not None:
        try:
            create_hooks(pid)
        except BaseException:
            os.close(report_r)
            _kill(pid)
            _reap(pid)
            raise
        data = _read_line(report_r)
    if data == READY:
        return pid, report_r
    os.close(report_r)
    status = _reap(pid)
    raise init_failure(data, pid, _describe(status))


def _spawn_userns(
    spec: specmod.ContainerSpec,
    program: bytes | None,
    rootfs_mounts: list[Mount],
    stdio: Stdio,
    cgroup: Cgroup | None,
    barrier_r: int,
    report: tuple[int, int] | None = None,
    create_hooks: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """:func:`_spawn` for a container with a user namespace (:mod:`berth.libcontainer.userns`):
    stage A is forked, init is its child and, once A exits, ours (we are a child subreaper)."""
    from berth.libcontainer import idmapped, userns

    kernel.prctl(kernel.PR_SET_CHILD_SUBREAPER, 1)
    # The graph driver's rootfs in a new user namespace: its layers id-mapped to the
    # container's maps (stage A mounts them, with the host's privileges still held)
    idmap_fd = None
    early_rootfs = bool(rootfs_mounts and not spec.chroot)
    if early_rootfs and not idmapped.premapped(rootfs_mounts):
        try:
            user = spec.namespace("user")
            if user is not None and user.path is not None:  # joined: its maps are the layers'
                idmap_fd = os.open(user.path, os.O_RDONLY)
            else:
                idmap_fd = idmapped.mapping_userns(spec.uid_mappings, spec.gid_mappings)
        except BaseException:
            os.close(barrier_r)
            if report is not None:
                os.close(report[0])
                os.close(report[1])
            raise
    report_r, report_w = report or os.pipe2(os.O_CLOEXEC)
    sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
    try:
        stage_a = os.fork()
    except BaseException:
        for fd in (report_r, report_w, sync_r, sync_w, barrier_r):
            os.close(fd)
        if idmap_fd is not None:
            os.close(idmap_fd)
        raise
    if stage_a == 0:
        os.close(report_r)
        os.close(sync_w)
        userns.stage_a(
            spec, program, rootfs_mounts, stdio, cgroup, report_w, barrier_r, sync_r, idmap_fd, early_rootfs
        )
    for fd in (report_w, sync_r, barrier_r):
        os.close(fd)
    if idmap_fd is not None:
        os.close(idmap_fd)
    lines = _Lines(report_r)
    init_pid, ready, error = 0, False, None
    try:
        # A's "pid" line and init's "ready" (or error) come in either order; an error of A
        # itself comes before any pid, and A's exit then ends the stream
        while not (init_pid and (ready or error is not None)):
            line = lines.next()
            if not line:
                break
            if line == userns.REQUEST:
                userns.write_maps(stage_a, spec)
                os.write(sync_w, b"\0")
            elif line.startswith(userns.PID_PREFIX):
                init_pid = int(line[len(userns.PID_PREFIX) :])
            elif line == READY:
                ready = True
            elif line == HOOKS and create_hooks is not None and init_pid:
                try:
                    create_hooks(init_pid)
                except BaseException:
                    _kill(init_pid)  # it waits for the hooks: reaped below
                    raise
            else:
                error = ContainerInitError.from_wire(line)
        if ready and error is None:
            return init_pid, report_r
        raise error or ContainerInitError("container init died before it was ready", EXIT_OTHER)
    except BaseException:
        os.close(report_r)
        if init_pid:
            _reap(init_pid)
        raise
    finally:
        os.close(sync_w)  # A, if still waiting for its maps, sees EOF and exits
        _reap(stage_a)


def _become_init(
    parsed: specmod.ContainerSpec, program: bytes | None, rootfs_mounts: list[Mount], stdio: Stdio,
    cgroup: Cgroup | None, report_r: int, report_w: int, barrier_r: int, forked: Callable[[], None] | None,
    in_place: Callable[[int], int],
) -> NoReturn:
    """:func:`_spawn` without the fork (see :func:`create_shared`): the caller is the init."""
    try:
        os.close(report_r)  # the caller's caller holds it
        if forked is not None:
            forked()
        hold = in_place(int(os.readlink("/proc/self")))  # /proc is still the host's: the host's pid
    except BaseException:
        for fd in (report_w, barrier_r):
            os.close(fd)
        raise
    run_init(parsed, program, rootfs_mounts, stdio, cgroup, report_w, barrier_r, until_ready=hold)


class _Lines:
    """Lines from a pipe, one at a time (a read may hold more than one)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""

    def next(self) -> bytes:
        """The next line, newline included; what is left at EOF (b"" when nothing)."""
        while b"\n" not in self.buf:
            chunk = os.read(self.fd, 65536)
            if not chunk:
                line, self.buf = self.buf, b""
                return line
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"


def exec_process(
    init_pid: int,
    process: dict[str, Any],
    stdio: Stdio,
    cgroup: Cgroup | None,
    container: dict[str, Any],
    pidfd: int | None = None,
) -> int:
    """Run ``process`` in the running container whose init is ``init_pid``; return its host
    pid once it has exec'd. Errors before exec raise ContainerInitError.

    ``container`` is the container's ``config.json`` (or its ``process`` and ``linux.seccomp``):
    the exec'd process gets the container's seccomp filter, and every part of the container's
    process that ``process`` leaves out (user, capabilities, noNewPrivileges, rlimits,
    oomScoreAdj), as with runc. A throwaway launcher is forked to enter the container
    (:mod:`berth.libcontainer.setns`); the process is the launcher's child, so **the caller
    must be a child subreaper** (``PR_SET_CHILD_SUBREAPER``) to reap it. ``pidfd`` names init
    (opened here from ``init_pid`` when not given: then the caller must be sure the pid is
    not recycled, e.g. by being the one that reaps it).
    """
    parsed, program = prepare_exec(process, container)
    own_pidfd = pidfd is None
    if pidfd is None:
        pidfd = _pidfd_open(init_pid)
    try:
        report_r, report_w = os.pipe2(os.O_CLOEXEC)
        try:
            launcher = os.fork()
        except BaseException:
            os.close(report_r)
            os.close(report_w)
            raise
    except BaseException:
        if own_pidfd:
            os.close(pidfd)
        raise
    if launcher == 0:
        try:
            os.close(report_r)
            pid = exec_in_launcher(init_pid, parsed, stdio, cgroup, program, pidfd, keep=(report_w,))
            os.write(report_w, b'{"pid": %d}\n' % pid)
        except BaseException as exc:
            die(report_w, exc)
        os._exit(0)
    if own_pidfd:
        os.close(pidfd)
    os.close(report_w)
    try:
        data = _read_all(report_r)
    finally:
        os.close(report_r)
        _reap(launcher)
    try:
        return int(json.loads(data)["pid"])
    except (ValueError, KeyError, TypeError):
        raise ContainerInitError.from_wire(data) from None


def prepare_exec(process: dict[str, Any], container: dict[str, Any]) -> tuple[Process, bytes | None]:
    """The exec'd process parsed with the container's defaults, and the container's seccomp
    program compiled -- in the caller, before anything enters the container."""
    parsed = specmod.parse_exec_process(process, container.get("process"))
    return parsed, _compile_seccomp((container.get("linux") or {}).get("seccomp"))


def exec_in_launcher(
    init_pid: int,
    process: Process,
    stdio: Stdio,
    cgroup: Cgroup | None,
    seccomp_program: bytes | None,
    pidfd: int,
    keep: tuple[int, ...] = (),
) -> int:
    """:func:`exec_process` without the fork: the calling throwaway process is the launcher
    (the monitor's helper is one). Returns the exec'd process's pid; afterwards the caller is
    inside the container's walls and must only report (on a ``keep`` fd) and exit."""
    if cgroup is not None and _frozen(cgroup):
        # the launcher would freeze as soon as it joins the cgroup, and its caller wait forever
        raise ContainerInitError(
            f"exec in container {init_pid}: the container is paused", EXIT_CANNOT_EXECUTE
        )
    from berth.libcontainer import setns  # exec only: a create does not load it

    return setns.spawn(pidfd, process, stdio, cgroup, seccomp_program, keep)


def _pidfd_open(pid: int) -> int:
    try:
        return os.pidfd_open(pid)
    except OSError as exc:
        raise ContainerInitError(f"exec in container {pid}: the container is not running ({exc.strerror})",
                                 EXIT_CANNOT_EXECUTE) from exc


def _frozen(cgroup: Cgroup) -> bool:
    try:
        return cgroup.frozen()
    except OSError:
        return False  # no freezer file (gone, or none in this layout): nothing can be frozen


def _compile_seccomp(profile: dict[str, Any] | str | None) -> bytes | None:
    if profile is None:
        return None
    try:
        return seccomp.compile_profile(profile)
    except seccomp.SeccompError as exc:
        raise ContainerInitError(f"seccomp: {exc}", EXIT_OTHER) from exc


def _fork_in_pidns(target: str | None, cgroup_fd: int = -1) -> tuple[int, bool]:
    """fork(), with the child in a new PID namespace (``""``), the one at path ``target``, or
    ours (``None``). The caller's own namespace for later children is restored at once.
    ``cgroup_fd``: a cgroup2 directory to fork the child into (:func:`_fork`). Returns (pid,
    whether the child was born there)."""
    if target is None:
        return _fork(cgroup_fd)
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if target == "":
            try:
                kernel.unshare(kernel.CLONE_NEWPID)
            except OSError as exc:
                raise ContainerInitError(f"unshare pid namespace: {exc.strerror}", EXIT_OTHER) from exc
        else:
            try:
                fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise ContainerInitError(
                    f"open pid namespace '{target}': {exc.strerror}", EXIT_OTHER
                ) from exc
            try:
                kernel.setns(fd, kernel.CLONE_NEWPID)
            except OSError as exc:
                raise ContainerInitError(
                    f"join pid namespace '{target}': {exc.strerror}", EXIT_OTHER
                ) from exc
            finally:
                os.close(fd)
        try:
            pid, in_v2 = _fork(cgroup_fd)
        except BaseException:
            _restore_pidns(own)
            raise
        if pid != 0:
            # The parent goes back to its own namespace for later children. (The child must
            # not: its namespace is a descendant of ours, and setns may only go down.)
            _restore_pidns(own)
        return pid, in_v2
    finally:
        os.close(own)


def _fork(cgroup_fd: int) -> tuple[int, bool]:
    """(pid, born in ``cgroup_fd``): the child forked into that cgroup2 directory where the
    kernel can (:func:`berth.libcontainer.kernel.fork_into_cgroup`: no grace period to wait
    for, as a move through ``cgroup.procs`` has), else forked as usual, to join it itself."""
    if cgroup_fd >= 0:
        try:
            return kernel.fork_into_cgroup(cgroup_fd), True
        except OSError:
            pass  # a kernel before 5.7, or a refusal: init's own join names it
    return os.fork(), False


def _v2_dir_fd(cgroup: Cgroup | None) -> int:
    """The cgroup's cgroup2 directory, open (-1: none, or it cannot be opened: init joins it)."""
    path = None if cgroup is None else cgroup.v2_dir()
    if path is None:
        return -1
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return -1


def _restore_pidns(own: int) -> None:
    try:
        kernel.setns(own, kernel.CLONE_NEWPID)
    except OSError as exc:
        raise ContainerInitError(f"restore own pid namespace: {exc.strerror}", EXIT_OTHER) from exc


def _read_line(fd: int) -> bytes:
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
    return buf


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _after_fork(forked: Callable[[], None] | None, pid: int, report_r: int) -> None:
    """Run the caller's ``forked`` callback; if it fails, the init it was for goes (killed, reaped)."""
    if forked is None:
        return
    try:
        forked()
    except BaseException:
        os.close(report_r)
        _kill(pid)
        _reap(pid)
        raise


def _kill(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass  # it exited already: reaped next


def _reap(pid: int) -> int:
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except ChildProcessError:
            return 0  # already reaped by the caller's SIGCHLD handling
        except InterruptedError:
            continue


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
