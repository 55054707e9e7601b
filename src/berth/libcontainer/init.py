"""The container's init and exec'd processes: what the forked child does, in order.

Both run in a freshly forked child of the (single-threaded) caller and never return: they
``execve`` the user's program or write a JSON error on ``report_fd`` and ``_exit``. ``report_fd``
is close-on-exec, so a successful execve is seen by the parent as EOF.

PID namespace scheme: the *parent* enters the PID namespace for its children before forking
(``unshare(CLONE_NEWPID)`` for a new one, ``setns`` for a joined one) and restores its own right
after, so the forked child is already pid 1 (or a member) and no double fork is needed.
"""

from __future__ import annotations

import errno
import fcntl
import os
import resource
import signal
import socket
import struct
from typing import NoReturn

from berth.libcontainer import capabilities, executable, kernel, rootfs, seccomp
from berth.libcontainer import stdio as stdio_
from berth.libcontainer.cgroups import Cgroup
from berth.libcontainer.failure import EXIT_OTHER, READY, ContainerInitError
from berth.libcontainer.spec import ContainerSpec, Mount, Process, Stdio


def run_init(
    spec: ContainerSpec,
    seccomp_program: bytes | None,
    rootfs_mounts: list[Mount],
    stdio: Stdio,
    cgroup: Cgroup | None,
    report_fd: int,
    barrier_fd: int,
) -> NoReturn:
    """Container init: the spec, step by step, then the barrier, then execve."""
    try:
        # A session of its own (runc does this too); with a tty the slave becomes its ctty.
        os.setsid()
        # The container's umask is Docker's 0022 whatever the caller's (a daemon may use 077).
        os.umask(0o022)
        stdio_.setup(stdio, keep=(report_fd, barrier_fd, stdio.console_socket))
        tty_path = os.ttyname(0) if stdio.tty and not stdio.console else None
        # Join the cgroup before anything allocates memory or forks, and before a cgroup
        # namespace is made, so that namespace is rooted at the container's cgroup.
        if cgroup is not None:
            cgroup.add(0)
        # Join namespaces given by path, then unshare the new ones in one call. The mount
        # namespace is joined last: joining it changes what the other paths mean.
        _join_namespaces(spec)
        flags = 0
        for ns in spec.namespaces:
            if ns.path is None and ns.type != "pid":  # pid was done by the parent before fork
                flags |= kernel.NAMESPACE_FLAGS[ns.type]
        _syscall("unshare namespaces", "self", kernel.unshare, flags)
        net = spec.namespace("network")
        if net is not None and net.path is None:
            _loopback_up()  # a new network namespace starts with lo down
        if spec.hostname is not None:
            _syscall("sethostname", spec.hostname, kernel.sethostname, spec.hostname)
        # All mounts happen before pivot_root, while the host paths (sources) are reachable;
        # propagation is cut first, so nothing reaches the host's mount table.
        rootfs.prepare(spec, rootfs_mounts, tty_path)
        rootfs.pivot(spec.root_path)
        # Like runc (createCwd) and dockerd: a missing working directory is created, owned by
        # root, before a read-only root is sealed; after pivot_root so that symlinks on the way
        # resolve inside the container.
        _make_cwd(spec.process.cwd)
        # The container's own pty, from its own devpts (needs the new root), before a read-only
        # root is sealed (/dev/console is bound onto it).
        if stdio.console:
            stdio_.console(stdio.console_socket, bind_console=True)
        # /proc is the container's own now: sysctls, masked and read-only paths, read-only root.
        rootfs.finish(spec)
        _become(spec.process, seccomp_program)
        path = executable.resolve(spec.process.args[0], spec.process.path_env)
        env = _environment(spec.process)
        _restrict(spec.process, seccomp_program)
    except BaseException as exc:  # the child never returns into the caller's code
        _die(report_fd, exc)
    # The barrier: tell the parent we are ready, and exec only when it says so.
    os.write(report_fd, READY)
    if os.read(barrier_fd, 1) == b"":
        os._exit(EXIT_OTHER)  # the parent went away or aborted: do not run the process
    os.close(barrier_fd)
    # After the barrier the container has started: an execve that fails now (a missing
    # interpreter, a binary for another architecture) is the process's own failure, as with
    # runc: its text goes to the container's stderr and it exits 127/126.
    _exec(path, spec.process.args, env, report_fd, started=True)


def run_exec(
    init_pid: int,
    process: Process,
    stdio: Stdio,
    cgroup: Cgroup | None,
    seccomp_program: bytes | None,
    report_fd: int,
) -> NoReturn:
    """A process joining a running container (``docker exec``)."""
    try:
        os.setsid()
        os.umask(0o022)
        stdio_.setup(stdio, keep=(report_fd, stdio.console_socket))
        # The cgroup first, while /sys/fs/cgroup still means the host's.
        if cgroup is not None:
            cgroup.add(0)
        fds = []
        for ns in ("cgroup", "ipc", "uts", "network", "mount"):  # mount last: it changes / and cwd
            path = f"/proc/{init_pid}/ns/{kernel.NAMESPACE_FILES[ns]}"
            try:
                fds.append((ns, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
            except OSError as exc:
                raise ContainerInitError(f"open namespace '{path}': {exc.strerror}", EXIT_OTHER) from exc
        for ns, fd in fds:
            if os.readlink(f"/proc/{init_pid}/ns/{kernel.NAMESPACE_FILES[ns]}") == os.readlink(
                f"/proc/self/ns/{kernel.NAMESPACE_FILES[ns]}"
            ):
                os.close(fd)
                continue  # already there (e.g. host network): setns would be a no-op
            _syscall(f"join {ns} namespace of", str(init_pid), kernel.setns, fd, kernel.NAMESPACE_FLAGS[ns])
            os.close(fd)
        if stdio.console:  # in the container's mount namespace now: its /dev/ptmx
            stdio_.console(stdio.console_socket, bind_console=False)
        _become(process, seccomp_program)
        path = executable.resolve(process.args[0], process.path_env)
        env = _environment(process)
        _restrict(process, seccomp_program)
    except BaseException as exc:
        _die(report_fd, exc)
    _exec(path, process.args, env, report_fd)


# ---- steps ------------------------------------------------------------------------------------


def _join_namespaces(spec: ContainerSpec) -> None:
    joins = [ns for ns in spec.namespaces if ns.path is not None and ns.type != "pid"]
    joins.sort(key=lambda ns: ns.type == "mount")
    opened = []
    for ns in joins:  # open all first: after joining a mount namespace the paths may be gone
        assert ns.path is not None
        try:
            opened.append((ns, os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC)))
        except OSError as exc:
            raise ContainerInitError(
                f"open {ns.type} namespace '{ns.path}': {exc.strerror}", EXIT_OTHER
            ) from exc
    for ns, fd in opened:
        _syscall(f"join {ns.type} namespace", str(ns.path), kernel.setns, fd, kernel.NAMESPACE_FLAGS[ns.type])
        os.close(fd)


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        req = struct.pack("16sh22x", b"lo", 0)
        flags = struct.unpack("16sh22x", fcntl.ioctl(sock, kernel.SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(sock, kernel.SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", flags | kernel.IFF_UP))


def _set_rlimits(process: Process) -> None:
    for rl in process.rlimits:
        try:
            resource.setrlimit(rl.resource, (rl.soft, rl.hard))
        except ValueError:
            # Raising a hard limit needs CAP_SYS_RESOURCE, which root may lack (as on these
            # machines): clamp to the current hard limit rather than fail the container.
            _, hard = resource.getrlimit(rl.resource)
            cap = hard if hard != resource.RLIM_INFINITY else rl.hard
            resource.setrlimit(rl.resource, (min(rl.soft, cap), min(rl.hard, cap)))
        except OSError as exc:
            raise ContainerInitError(f"setrlimit {rl.name}: {exc.strerror}", EXIT_OTHER) from exc


def _become(process: Process, seccomp_program: bytes | None) -> None:
    """rlimits, bounding set, user, cwd, capabilities: runc's finalizeNamespace order."""
    if seccomp_program is not None and not process.no_new_privileges:
        # Without no_new_privs, installing a filter needs CAP_SYS_ADMIN, which the capability
        # steps below drop: load it now (runc does the same); the profile must allow the
        # syscalls that follow (prctl, setgroups, setres[ug]id, capset, chdir, execve).
        _syscall("load seccomp filter", "self", seccomp.load, seccomp_program)
    _set_rlimits(process)
    if process.oom_score_adj is not None:
        try:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(process.oom_score_adj))
        except OSError as exc:  # lowering it needs CAP_SYS_RESOURCE
            raise ContainerInitError(
                f"write oom_score_adj {process.oom_score_adj}: {exc.strerror}", EXIT_OTHER
            ) from exc
    caps = process.capabilities
    last = capabilities.last_cap()
    if caps is not None:
        # Capabilities this kernel does not know are left out, as runc does (capset would fail);
        # so are those the caller itself lacks (here root has no CAP_SYS_RESOURCE): a process
        # cannot grant what it does not hold, and --privileged should still run (runc refuses).
        known = ((1 << (last + 1)) - 1) & kernel.capget()[1]
        # Drop from the bounding set while we still hold CAP_SETPCAP (before the user switch).
        for cap in range(last + 1):
            if cap not in caps.bounding:
                _syscall(
                    "drop capability from bounding set",
                    capabilities.name(cap),
                    kernel.prctl,
                    kernel.PR_CAPBSET_DROP,
                    cap,
                )
        # Keep the permitted set across setresuid away from 0; capset below trims it.
        kernel.prctl(kernel.PR_SET_KEEPCAPS, 1)
    user = process.user
    # Groups before the uid: after setuid we could no longer change them.
    _syscall("setgroups", str(list(user.additional_gids)), os.setgroups, list(user.additional_gids))
    _syscall("setresgid", str(user.gid), os.setresgid, user.gid, user.gid, user.gid)
    # chdir as root when we can (the cwd may be unreadable to the user), else as the user below.
    chdir_error = _chdir(process.cwd)
    if user.uid != 0:
        stdio_.give_to(user.uid)  # while we still have CAP_CHOWN
    _syscall("setresuid", str(user.uid), os.setresuid, user.uid, user.uid, user.uid)
    if chdir_error is not None:
        chdir_error = _chdir(process.cwd)
        if chdir_error is not None:
            raise ContainerInitError(
                f'chdir to cwd ("{process.cwd}") set in config.json failed: {executable.go_strerror(chdir_error)}',
                EXIT_OTHER,
            )
    if caps is not None:
        kernel.prctl(kernel.PR_SET_KEEPCAPS, 0)
        _syscall(
            "capset",
            "self",
            kernel.capset,
            capabilities.mask(caps.effective) & known,
            capabilities.mask(caps.permitted) & known,
            capabilities.mask(caps.inheritable) & known,
        )
        for cap in sorted(c for c in caps.ambient if known >> c & 1):
            _syscall(
                "raise ambient capability",
                capabilities.name(cap),
                kernel.prctl,
                kernel.PR_CAP_AMBIENT,
                kernel.PR_CAP_AMBIENT_RAISE,
                cap,
            )


def _restrict(process: Process, seccomp_program: bytes | None) -> None:
    """no_new_privs, then (with it) the seccomp filter: the last steps before exec."""
    # no_new_privs would not stop anything done above, only setuid binaries and file
    # capabilities the container runs; with it set, the filter loads without CAP_SYS_ADMIN and
    # as late as possible, so it need not allow init's own set-up calls.
    if process.no_new_privileges:
        kernel.prctl(kernel.PR_SET_NO_NEW_PRIVS, 1)
        if seccomp_program is not None:
            _syscall("load seccomp filter", "self", seccomp.load, seccomp_program)


def _make_cwd(cwd: str) -> None:
    try:
        os.makedirs(cwd, 0o755, exist_ok=True)
    except OSError as exc:
        raise ContainerInitError(f"mkdir cwd {cwd!r} in the container: {exc.strerror}", EXIT_OTHER) from exc


def _chdir(cwd: str) -> int | None:
    try:
        os.chdir(cwd)
    except OSError as exc:
        return exc.errno
    return None


def _home(uid: int) -> str:
    try:
        with open("/etc/passwd", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5] or "/"
    except OSError:
        pass  # no passwd file in the image: HOME falls back to "/" as in runc
    return "/"


def _environment(process: Process) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in process.env:
        key, sep, value = entry.partition("=")
        if "\0" in entry:  # execve cannot pass it; runc refuses it before the process runs
            part = "name" if "\0" in key else "value"
            raise ContainerInitError(
                f"environment variable {part} can't contain null(\\x00): {_go_quote(entry)}", EXIT_OTHER
            )
        if sep and key:
            env[key] = value
    env.setdefault("PATH", process.path_env)
    if "HOME" not in env:
        env["HOME"] = _home(process.user.uid)  # runc sets HOME from the user's passwd entry
    return env


def _exec(path: str, args: tuple[str, ...], env: dict[str, str], report_fd: int, started: bool = False) -> NoReturn:
    """execve; its failure is reported on ``report_fd`` (a start error), or, once the container
    has ``started`` (after init's barrier), printed on stderr as the process's exit 127/126."""
    try:
        # Python ignores SIGPIPE/SIGXFSZ and the caller may ignore more; ignored dispositions
        # survive execve, so reset every signal and unblock them all.
        for sig in signal.valid_signals():
            if sig not in (signal.SIGKILL, signal.SIGSTOP):
                try:
                    signal.signal(sig, signal.SIG_DFL)
                except (OSError, ValueError):
                    continue  # signals the kernel reserves (32, 33) cannot be changed: fine
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        if any("\0" in arg for arg in args):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))  # as execve(2) would see it
        os.execve(path, list(args), env)
    except OSError as exc:
        code = exc.errno or errno.EINVAL
        if started:
            _exit_printing(f"exec {path}: {executable.go_strerror(code)}", executable.exit_code_for(code))
        _die(
            report_fd,
            ContainerInitError(
                f'exec: "{args[0]}": {executable.go_strerror(code)}'
                if code != errno.ENOENT
                else f'exec: "{args[0]}": stat {path}: {executable.go_strerror(code)}',
                executable.exit_code_for(code),
            ),
        )
    except BaseException as exc:
        _die(report_fd, exc)


def _exit_printing(message: str, code: int) -> NoReturn:
    try:
        os.write(2, message.encode("utf-8", "replace") + b"\n")
    finally:
        os._exit(code)


def _go_quote(text: str) -> str:
    """Go's %q for the ASCII cases runc's messages quote: ``"A=b\\x00c"``."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
    return '"' + "".join(out) + '"'


def _syscall(op: str, obj: str, fn, *args) -> None:  # type: ignore[no-untyped-def]
    try:
        fn(*args)
    except OSError as exc:
        raise ContainerInitError(f"{op} '{obj}': {exc.strerror}", EXIT_OTHER) from exc


def _die(report_fd: int, exc: BaseException) -> NoReturn:
    if isinstance(exc, ContainerInitError):
        err = exc
    elif isinstance(exc, OSError):
        where = f" '{exc.filename}'" if exc.filename else ""
        err = ContainerInitError(f"container init{where}: {exc.strerror or exc}", EXIT_OTHER)
    else:
        err = ContainerInitError(f"container init: {type(exc).__name__}: {exc}", EXIT_OTHER)
    try:
        os.write(report_fd, err.to_wire())
    finally:
        os._exit(err.exit_code)
