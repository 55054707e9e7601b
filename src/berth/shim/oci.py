"""The shim's :class:`~berth.shim.runtime.Runtime` on an OCI runtime binary (runc, crun, berth-runtime).

Each operation is one command of the binary, run so that the shim's loop never waits for it
(by a helper process, :mod:`berth.shim.helper`, where there is work to do around it):

- ``create``: the helper mounts the rootfs (the graph driver's plan, on the host, as containerd
  mounts a bundle's rootfs), writes the bundle's ``config.json`` in the container's exec
  directory (:func:`berth.shim.ocispec.runtime_spec`) and runs ``BIN create --bundle DIR
  --pid-file F [--console-socket S] ID`` with the container's stdio as its own (the binary hands
  it to the init); it answers the init's pid;
- ``start``, ``pause``, ``resume``: ``BIN start|pause|resume ID``, spawned by the shim itself
  (they need nothing prepared): its pidfd says when it is done, and the shim's reaper hands its
  wait status over (:meth:`OciRuntime.reaped`);
- ``exec``: ``BIN exec --detach --process P --pid-file F [--console-socket S] ID`` with the
  process's stdio; answers its pid;
- ``state``: ``BIN state ID`` (its OCI state JSON) and the cgroup's OOM record; once the shim
  has reaped the init (which is when it asks at the end) only the OOM record, read in the shim;
- ``delete``: ``BIN delete --force ID`` (spawned the same way), then the rootfs is unmounted;
- ``kill``: ``kill(2)``, as for the native runtime. The init and every exec'd process are the
  shim's children once the binary has exited: the shim is a child subreaper, so they are
  reparented to it, and it reaps them and records their exit status itself.

Every command gets ``--root`` (the runtime's state directory, one per configured runtime:
``<exec root>/runtime-<name>``) and ``--log FILE --log-format json``; a failure's message is the
last error the binary logged, as dockerd reports it (``OCI runtime create failed: ...``), and
the exit code a client sees follows the text as dockerd's does (127 not found, 126 not
executable). A pty's master comes over a listening console socket the helper makes; the helper
forwards it over the shim's console socketpair, as the native runtime's init sends it.

    runtime = OciRuntime(hello, body)    # hello["runtime"]: {"name", "path", "args", "root"}
    op = runtime.create(stdio)           # Result.pid: the init, waiting for start
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from berth.libcontainer import Stdio
from berth.shim import ocispec
from berth.shim import protocol as P
from berth.shim.helper import Helper, HelperOp, Standby, answer
from berth.shim.runtime import Done, Op, Result, RuntimeState

RUNTIME_FILE = "runtime.json"  # in <exec_root>/<id>: how to reach the runtime, for cleanup after a crash
CONFIG_FILE = "config.json"  # the bundle's (the exec directory is the bundle)
SUN_PATH_MAX = 107


class RuntimeFailed(Exception):
    """A runtime command failed: ``message`` as a client sees it, ``exit_code`` 126/127/128."""

    def __init__(self, message: str, exit_code: int = 128) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class Binary:
    """How to run the runtime: its path, its own global options, its state directory."""

    __slots__ = ("name", "path", "args", "root")

    def __init__(self, spec: dict[str, Any]) -> None:
        self.name = str(spec.get("name") or "oci")
        self.path = str(spec["path"])
        self.args = [str(a) for a in spec.get("args") or ()]
        self.root = str(spec["root"])

    def argv(self, log: str, *command: str) -> list[str]:
        return [self.path, *self.args, "--root", self.root, "--log", log, "--log-format", "json", *command]


class OciRuntime:
    """One container run by an OCI runtime binary, through helpers."""

    worker = "OCI runtime process"

    def __init__(self, req: dict[str, Any], body: bytes, standby: Standby | None = None) -> None:
        self._standby: Standby | None = standby  # the create helper, forked before the request came
        self.id: str = req["id"]
        self.dir = os.path.join(req["exec_root"], self.id)
        self.cgroup_name: str = req.get("cgroup") or ""
        self.binary = Binary(req["runtime"])
        self._req = req
        self._body = body  # parsed in the create helper only
        self.pid = 0
        self._children: set[int] = set()  # runtime commands spawned by the shim, not yet reaped
        self._statuses: dict[int, int] = {}  # their wait statuses, when the shim's reaper got them
        self._seq = 0  # names each spawned command's log

    # ---- operations -------------------------------------------------------------------------
    def create(self, stdio: Stdio) -> Op:
        req, body, binary = self._req, self._body, self.binary
        self._body = b""
        standby, self._standby = self._standby, None
        if standby is not None:
            ends = [stdio.stdin, stdio.stdout, stdio.stderr, stdio.console_socket]
            try:
                helper = standby.give({"oci": True, "req": req, "stdio": ends, "tty": stdio.tty}, body,
                                      [fd for fd in ends if fd >= 0])
                return HelperOp(helper, on_result=self._created)
            except OSError:
                standby.dismiss()  # gone (killed?): fork a helper as usual
        return HelperOp(Helper(lambda res_w, go_r: helper_create(binary, req, body, stdio, res_w)),
                        on_result=self._created)

    def _created(self, result: Result) -> None:
        if result.ok:
            self.pid = result.pid

    def start(self) -> Op:
        return self._spawn("start", ("start", self.id))

    def exec(self, process: dict[str, Any], stdio: Stdio) -> Op:
        binary, cid, directory = self.binary, self.id, self.dir
        return HelperOp(Helper(lambda res_w, go_r: helper_exec(binary, cid, directory, process, stdio, res_w)))

    def kill(self, pid: int, signum: int) -> Op:
        # the init and exec'd processes are our children (reparented to this subreaper): their
        # pids cannot be reused before we reap them
        os.kill(pid or self.pid, signum)
        return Done()

    def pause(self) -> Op:
        return self._spawn("pause", ("pause", self.id))

    def resume(self) -> Op:
        return self._spawn("resume", ("resume", self.id))

    def state(self) -> Op:
        binary, cid, directory, cgroup = self.binary, self.id, self.dir, self.cgroup_name
        if self.pid and not _alive(self.pid):
            # the shim asks once it has reaped the init: the container is stopped, and only
            # the OOM record is news (read here, as the native runtime does: no more helpers
            # come, so touching pages no longer matters), without a runtime command on the
            # way of `docker run --rm`
            return Done(Result(value=RuntimeState("stopped", _oom_killed(cgroup))))
        return HelperOp(Helper(lambda res_w, go_r: helper_state(binary, cid, directory, cgroup, res_w)),
                        on_result=_to_state)

    def delete(self) -> Op:
        directory = self.dir

        def unmount(result: Result) -> Result:
            # the rootfs goes whatever the runtime said: a container it no longer knows (a
            # failed create cleaned up after itself) still had its rootfs mounted by us
            try:
                unmount_rootfs(directory)
            except RuntimeFailed as exc:
                return Result(error=exc.message, exit_code=128)
            if result.ok:
                os.unlink(os.path.join(directory, RUNTIME_FILE))  # nothing left for a cleanup to undo
            return result

        return self._spawn("delete", ("delete", "--force", self.id), after=unmount)

    def reaped(self, pid: int, status: int) -> bool:
        """The shim reaped ``pid``: True if it is one of our runtime commands (its status kept
        for its operation)."""
        if pid not in self._children:
            return False
        self._statuses[pid] = status
        return True

    def close(self) -> None:
        if self._standby is not None:
            self._standby.dismiss()
            self._standby = None

    def _spawn(self, what: str, command: tuple[str, ...],
               after: Callable[[Result], Result] | None = None) -> Op:
        """Run a command that needs nothing but its arguments right from the shim (no helper on
        the way: a start, pause, resume or delete pays one process, the runtime's): it inherits
        the shim's stdio (/dev/null, and monitor.log for what it prints), and the shim's reaper
        hands its status here (:meth:`reaped`) if it reaps it before the operation does."""
        self._seq += 1
        log = os.path.join(self.dir, f"runtime-{what}-{self._seq}.log")
        try:
            pid = os.posix_spawn(self.binary.path, self.binary.argv(log, *command), os.environ,
                                 setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD))
        except OSError as exc:
            return Done(Result(error=f"OCI runtime {what} failed: run {self.binary.path}: {exc.strerror}",
                               exit_code=128))
        self._children.add(pid)
        return Spawned(self, pid, what, log, after)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _oom_killed(cgroup_name: str) -> bool:
    """Whether the OOM killer hit the container's cgroup (False when that is unknown)."""
    from berth.errors import SystemFailure
    from berth.libcontainer.cgroups import open_cgroup

    if not cgroup_name:
        return False
    cgroup = open_cgroup(cgroup_name)
    try:
        return cgroup.oom_killed()  # False for a cgroup that is gone
    except (OSError, SystemFailure):
        return False  # the memory controller is gone or unreadable: no OOM is known


class Spawned:
    """A runtime command the shim spawned itself, as an :class:`~berth.shim.runtime.Op`: its
    pidfd is readable once it exited; its wait status is taken here, or from the shim's reaper."""

    __slots__ = ("runtime", "pid", "fd", "what", "log", "after")

    def __init__(self, runtime: OciRuntime, pid: int, what: str, log: str,
                 after: Callable[[Result], Result] | None) -> None:
        self.runtime, self.pid, self.what, self.log, self.after = runtime, pid, what, log, after
        self.fd = os.pidfd_open(pid)

    def poll(self) -> Result | None:
        status = self.runtime._statuses.pop(self.pid, None)
        if status is None:
            try:
                got, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                got, status = self.pid, -1  # reaped by someone else: no status to go by
            if got == 0:
                return None
        self.runtime._children.discard(self.pid)
        result = outcome(self.what, status, self.log)
        return self.after(result) if self.after is not None else result

    def close(self) -> None:
        os.close(self.fd)

    def abandon(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)  # reaped by the shim's reaper, which hands it to us
        except ProcessLookupError:
            pass  # it finished meanwhile
        os.close(self.fd)


def _to_state(result: Result) -> None:
    """The state helper's ``{"result": {"status", "oom_killed"}}`` as a RuntimeState."""
    value = result.value if isinstance(result.value, dict) else {}
    result.value = RuntimeState(str(value.get("status") or "unknown"), bool(value.get("oom_killed")))


# ---- in the helpers -------------------------------------------------------------------------


def run(binary: Binary, directory: str, what: str, command: list[str] | tuple[str, ...],
        fds: tuple[int, int, int] | None = None) -> None:
    """Run one runtime command with ``fds`` as its stdio (else /dev/null) and wait for it;
    RuntimeFailed with the runtime's own last error if it fails."""
    log = os.path.join(directory, f"runtime-{os.getpid()}.log")
    null = -1
    if fds is None:
        null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        fds = (null, null, null)
    try:
        # dup2 onto 0-2 (never the same fd: the shim's own 0-2 are /dev/null and its log)
        actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(fds)]
        try:
            pid = os.posix_spawn(binary.path, binary.argv(log, *command), os.environ, file_actions=actions,
                                 setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD))
        except OSError as exc:
            raise RuntimeFailed(f"OCI runtime {what} failed: run {binary.path}: {exc.strerror}") from exc
        status = _wait(pid)
    finally:
        if null >= 0:
            os.close(null)
    result = outcome(what, status, log)
    if not result.ok:
        raise RuntimeFailed(result.error, result.exit_code)


def outcome(what: str, status: int, log: str) -> Result:
    """A finished runtime command's result from its wait status (-1: unknown) and its log
    (read and removed): the runtime's last logged error when it failed."""
    try:
        with open(log, errors="replace") as f:
            text = f.read()
        os.unlink(log)
    except FileNotFoundError:
        text = ""
    reason = ocispec.last_error(text)
    code = os.waitstatus_to_exitcode(status) if status >= 0 else (1 if reason else 0)
    if code == 0:
        return Result()
    reason = reason or (f"exit status {code}" if code > 0 else f"killed by signal {-code}")
    return Result(error=f"OCI runtime {what} failed: {reason}", exit_code=ocispec.exit_code_for(reason))


def _wait(pid: int) -> int:
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except InterruptedError:
            continue


def _held() -> set[str]:
    with open("/proc/self/status") as f:
        return ocispec.held_capabilities(f.read())


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _read_pid(path: str) -> int:
    with open(path) as f:
        pid = int(f.read().strip())
    os.unlink(path)
    return pid


def _private_dir(parent: str, prefix: str) -> str:
    """A new directory of root's alone (0700) under ``parent``, as ``tempfile.mkdtemp``: tempfile
    (with random, shutil, bz2, lzma) is not imported in the fork server: random's reseed after
    every fork writes pages a shim would otherwise share (docs/monitor.md)."""
    while True:
        path = os.path.join(parent, prefix + os.urandom(6).hex())
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        return path


class ConsoleSocket:
    """A listening unix socket for ``--console-socket``: the runtime connects and sends the pty
    master; :meth:`forward` passes it on over the shim's socketpair end. A path too long for
    ``sun_path`` goes in a private directory under /tmp instead."""

    def __init__(self, directory: str, name: str) -> None:
        self.tmp = ""
        path = os.path.join(directory, name)
        if len(os.fsencode(path)) > SUN_PATH_MAX:
            self.tmp = _private_dir("/tmp", "berth-tty-")
            path = os.path.join(self.tmp, "tty.sock")
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        os.chmod(path, 0o600)
        self.sock.listen(1)

    def forward(self, to_fd: int) -> None:
        """Receive the master (the runtime has exited: it is queued) and send it on."""
        self.sock.setblocking(False)
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            raise RuntimeFailed("OCI runtime sent no pty master over the console socket") from None
        with conn:
            conn.setblocking(False)
            try:
                _msg, ancdata, _flags, _addr = conn.recvmsg(64, socket.CMSG_SPACE(4), socket.MSG_CMSG_CLOEXEC)
            except BlockingIOError:
                raise RuntimeFailed("OCI runtime sent no pty master over the console socket") from None
        fds = [int.from_bytes(data[:4], sys.byteorder)
               for level, kind, data in ancdata if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS]
        if not fds:
            raise RuntimeFailed("OCI runtime sent no pty master over the console socket")
        try:
            with socket.socket(fileno=os.dup(to_fd)) as out:
                out.sendmsg([b"/dev/pts"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds[0].to_bytes(4, sys.byteorder))])
        finally:
            for fd in fds:
                os.close(fd)

    def close(self) -> None:
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        if self.tmp:
            os.rmdir(self.tmp)


def _stdio_fds(stdio: Stdio) -> tuple[int, int, int] | None:
    return None if stdio.tty else (stdio.stdin, stdio.stdout, stdio.stderr)


def helper_create(binary: Binary, req: dict[str, Any], body: bytes, stdio: Stdio, res_w: int) -> None:
    """In the helper: mount the rootfs, write the bundle, ``create``; answers the init's pid."""
    cid = req["id"]
    directory = os.path.join(req["exec_root"], cid)
    try:
        work = P.decode_json(body)
        spec = ocispec.runtime_spec(work["spec"], req.get("cgroup") or "", _held())
        mounts = work.get("rootfs_mounts") or ()
        idmapped = _idmapped_targets(spec, directory)
        # written first: a cleanup after a crash from here on knows what to undo
        _write(os.path.join(directory, RUNTIME_FILE), P.dumps({
            "name": binary.name, "path": binary.path, "args": binary.args, "root": binary.root,
            "rootfs": [m[2] for m in mounts] + [target for _, target in idmapped],
        }))
        _mount_rootfs(mounts, spec)
        _mount_idmapped(spec, idmapped)
        _write(os.path.join(directory, CONFIG_FILE), P.dumps(spec))
        pid_file = os.path.join(directory, "init.pid")
        command = ["create", "--bundle", directory, "--pid-file", pid_file]
        console = ConsoleSocket(directory, "tty.sock") if stdio.tty else None
        try:
            if console is not None:
                command += ["--console-socket", console.path]
            run(binary, directory, "create", [*command, cid], _stdio_fds(stdio))
            if console is not None:
                console.forward(stdio.console_socket)
        finally:
            if console is not None:
                console.close()
        pid = _read_pid(pid_file)
    except RuntimeFailed as exc:
        _undo_create(binary, cid, directory)
        answer(res_w, {"message": exc.message, "exit_code": exc.exit_code})
        return
    except Exception as exc:
        import traceback

        traceback.print_exc()  # to monitor.log; the daemon gets the one-line message
        _undo_create(binary, cid, directory)
        answer(res_w, {"message": f"create container {cid}: {exc}", "exit_code": 128})
        return
    answer(res_w, {"pid": pid})


def _undo_create(binary: Binary, cid: str, directory: str) -> None:
    """After a failed create, before the answer (the shim removes the directory right after it):
    whatever the runtime kept of the container, and the rootfs mount."""
    try:
        remove(binary, cid, directory)
    except RuntimeFailed:
        pass  # the runtime kept nothing (its create cleans up after itself): nothing to delete


def standby_create(msg: dict[str, Any], body: bytes, fds: list[int], res_w: int) -> None:
    """In the spare shim's standby helper: ``helper_create`` on the fds it was given, in the
    order ``OciRuntime.create`` sends them."""
    given = iter(fds)
    ends = [next(given) if fd >= 0 else -1 for fd in msg["stdio"]]
    stdio = Stdio(ends[0], ends[1], ends[2], tty=bool(msg["tty"]), console_socket=ends[3])
    req = msg["req"]
    helper_create(Binary(req["runtime"]), req, body, stdio, res_w)


def _mount_rootfs(mounts: Any, spec: dict[str, Any]) -> None:
    """The graph driver's plan, on the host (the runtime takes the root by path); for a container
    with a user namespace (--userns-remap) its layers id-mapped to it, or as they are when the
    plan says they were chowned for it (berth.libcontainer.idmapped, as the native runtime)."""
    from berth.libcontainer import Mount, idmapped
    from berth.libcontainer.mounts import mount_one
    from berth.libcontainer.spec import IdMap

    plan = [Mount(m[0], m[1], m[2], tuple(m[3])) for m in mounts]
    linux = spec.get("linux") or {}
    user = next((ns for ns in linux.get("namespaces") or () if ns.get("type") == "user"), None)
    if user is None or not plan:
        for mount in plan:
            mount_one(mount, mount.target)
        return
    if idmapped.premapped(plan):
        idmapped.mount_rootfs(plan, None)
        return
    if user.get("path"):
        fd = os.open(user["path"], os.O_RDONLY | os.O_CLOEXEC)
    else:
        maps = [tuple(IdMap(int(x["containerID"]), int(x["hostID"]), int(x["size"])) for x in linux.get(key) or ())
                for key in ("uidMappings", "gidMappings")]
        fd = idmapped.mapping_userns(maps[0], maps[1])
    try:
        idmapped.mount_rootfs(plan, fd)
    finally:
        os.close(fd)


def _idmapped_targets(spec: dict[str, Any], directory: str) -> list[tuple[int, str]]:
    """(index in the spec's mounts, host path) of each id-mapped bind (a volume of a container
    with maps of its own: its uidMappings/gidMappings), which the shim mounts for the runtime."""
    return [(i, os.path.join(directory, "idmapped", str(i)))
            for i, m in enumerate(spec.get("mounts") or ()) if m.get("uidMappings")]


def _mount_idmapped(spec: dict[str, Any], targets: list[tuple[int, str]]) -> None:
    """The id-mapped binds, made on the host (runc 1.1 has no id-mapped mounts; the shim
    id-maps them as it does the layers, berth.libcontainer.idmapped), each at its path in the
    bundle, which the spec's mount then binds as a plain one; unmounted with the rootfs."""
    if not targets:
        return
    import stat

    from berth.libcontainer import idmapped, kernel
    from berth.libcontainer.spec import parse_mount

    os.makedirs(os.path.dirname(targets[0][1]), mode=0o711, exist_ok=True)
    for i, target in targets:
        m = spec["mounts"][i]
        tree = idmapped.mount_clone(parse_mount(m))
        try:
            if stat.S_ISDIR(os.fstat(tree).st_mode):
                os.makedirs(target, mode=0o711, exist_ok=True)
            else:
                os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
            kernel.move_mount(tree, "", kernel.AT_FDCWD, target, kernel.MOVE_MOUNT_F_EMPTY_PATH)
        finally:
            os.close(tree)
        m["source"] = target
        m["options"] = [o for o in m.get("options") or () if o not in ("idmap", "ridmap")]
        m.pop("uidMappings", None)
        m.pop("gidMappings", None)


def helper_exec(binary: Binary, cid: str, directory: str, process: dict[str, Any], stdio: Stdio, res_w: int) -> None:
    """In the helper: ``exec --detach`` the process (filled from the container's, trimmed as its
    init was); answers its pid."""
    tag = os.getpid()
    process_file = os.path.join(directory, f"process-{tag}.json")
    pid_file = os.path.join(directory, f"exec-{tag}.pid")
    try:
        try:
            with open(os.path.join(directory, CONFIG_FILE), "rb") as f:
                container = P.decode_json(f.read()).get("process")
        except (OSError, ValueError) as exc:
            # no record of the container's walls: refuse rather than run the process without them
            raise RuntimeFailed(f"exec in container {cid}: read {CONFIG_FILE}: {exc}", 126) from exc
        _write(process_file, P.dumps(ocispec.exec_process(process, container, _held())))
        command = ["exec", "--detach", "--process", process_file, "--pid-file", pid_file]
        console = ConsoleSocket(directory, f"tty-{tag}.sock") if stdio.tty else None
        try:
            if console is not None:
                command += ["--console-socket", console.path]
            run(binary, directory, "exec", [*command, cid], _stdio_fds(stdio))
            if console is not None:
                console.forward(stdio.console_socket)
        finally:
            if console is not None:
                console.close()
            try:
                os.unlink(process_file)
            except FileNotFoundError:
                pass
        pid = _read_pid(pid_file)
    except RuntimeFailed as exc:
        answer(res_w, {"message": exc.message, "exit_code": exc.exit_code if exc.exit_code != 128 else 126})
        return
    except Exception as exc:  # noqa: BLE001 -- anything else still gets an answer
        answer(res_w, {"message": f"exec in container {cid}: {type(exc).__name__}: {exc}", "exit_code": 126})
        return
    answer(res_w, {"pid": pid})


def helper_state(binary: Binary, cid: str, directory: str, cgroup_name: str, res_w: int) -> None:
    """In the helper: the runtime's ``state`` and whether the OOM killer hit the container."""
    status = "unknown"
    r, w = os.pipe2(os.O_CLOEXEC)
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    try:
        try:
            run(binary, directory, "state", ("state", cid), (null, w, null))
        finally:
            os.close(w)
        out = b""
        while chunk := os.read(r, 65536):
            out += chunk
        status = str(json.loads(out).get("status") or "unknown")
    except (RuntimeFailed, ValueError, AttributeError) as exc:
        print(f"monitor: state of container {cid}: {exc}", file=sys.stderr)
    finally:
        os.close(r)
        os.close(null)
    answer(res_w, {"result": {"status": status, "oom_killed": _oom_killed(cgroup_name)}})


def remove(binary: Binary, cid: str, directory: str) -> None:
    """Delete the container from the runtime and unmount its rootfs (what ``runtime.json`` names)."""
    error: RuntimeFailed | None = None
    try:
        run(binary, directory, "delete", ("delete", "--force", cid))
    except RuntimeFailed as exc:
        error = exc
    unmount_rootfs(directory)
    if error is not None:
        raise error
    os.unlink(os.path.join(directory, RUNTIME_FILE))  # nothing left for a cleanup to undo


def unmount_rootfs(directory: str) -> None:
    """Detach the rootfs mounts ``runtime.json`` records (innermost first); gone ones are skipped."""
    from berth.libcontainer import kernel

    try:
        with open(os.path.join(directory, RUNTIME_FILE), "rb") as f:
            targets = list(P.decode_json(f.read()).get("rootfs") or ())
    except (OSError, ValueError):
        return
    for target in reversed(targets):
        # until it is no mount point (EINVAL): an id-mapped bind has its parent's st_dev, so
        # os.path.ismount cannot tell
        while True:
            try:
                kernel.umount2(target, kernel.MNT_DETACH)
            except OSError as exc:
                if exc.errno in (errno.EINVAL, errno.ENOENT):
                    break
                raise RuntimeFailed(f"unmount rootfs {target}: {exc}") from exc
