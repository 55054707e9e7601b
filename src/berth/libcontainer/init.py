"""The container's init: what the forked child does, in order.

It runs in a freshly forked child of the (single-threaded) caller and never returns: it
``execve``s the user's program or writes a JSON error on ``report_fd`` and ``_exit``s.
``report_fd`` is close-on-exec, so a successful execve is seen by the parent as EOF. The last
part, the walls (limits, user, capabilities, no_new_privs, seccomp), is
:mod:`berth.libcontainer.confine`, which every exec'd process goes through too
(:mod:`berth.libcontainer.setns`).

PID namespace scheme: the *parent* enters the PID namespace for its children before forking
(``unshare(CLONE_NEWPID)`` for a new one, ``setns`` for a joined one) and restores its own right
after, so the forked child is already pid 1 (or a member) and no double fork is needed.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]
import _socket  # the C module: signal.py imports enum (costly)
import errno
import fcntl
import os
import sys

from berth.libcontainer import cgroup_mount, executable, kernel, rootfs
from berth.libcontainer import stdio as stdio_
from berth.libcontainer.cgroups import Cgroup
from berth.libcontainer.confine import confine, seal_imports, set_limits
from berth.libcontainer.failure import EXIT_OTHER, HOOKS, READY, ContainerInitError, die, step
from berth.libcontainer.spec import ContainerSpec, Mount, Stdio
from berth.steptrace import fds as steptrace_fds
from berth.steptrace import mark

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


def run_init(
    spec: ContainerSpec,
    seccomp_program: bytes | None,
    rootfs_mounts: list[Mount],
    stdio: Stdio,
    cgroup: Cgroup | None,
    report_fd: int,
    barrier_fd: int,
    namespaces_done: bool = False,
    born_in_v2: bool = False,
    until_ready: int = -1,
) -> NoReturn:
    """Container init: the spec, step by step, then the barrier, then execve.

    ``namespaces_done``: forked by :func:`berth.libcontainer.userns.stage_a`, which joined the
    cgroup and the namespaces given by path, set the limits and made the user and PID
    namespaces; init unshares only the rest, inside its user namespace (so they are its own).
    ``born_in_v2``: forked into the cgroup's cgroup2 directory (CLONE_INTO_CGROUP), which it
    then need not join. ``until_ready``: a descriptor held until READY is written, then closed
    (:func:`berth.libcontainer.process.create_shared`'s ``in_place``)."""
    try:
        mark("i:begin")  # berth.steptrace: a profile's timestamps (nothing when off)
        # Non-dumpable until execve (which resets it), as runc's init and every exec's launcher:
        # a process sharing a joined PID namespace cannot ptrace it or open its /proc/PID/*
        # while it still holds every capability and the host's mount namespace.
        kernel.prctl(kernel.PR_SET_DUMPABLE, 0)
        # A session of its own (runc does this too); with a tty the slave becomes its ctty.
        os.setsid()
        # The container's umask is Docker's 0022 whatever the caller's (a daemon may use 077).
        os.umask(0o022)
        trees = tuple(m.tree for m in spec.mounts if m.tree >= 0)  # id-mapped binds stage A made
        stdio_.setup(stdio, keep=(report_fd, barrier_fd, stdio.console_socket, until_ready, *steptrace_fds(), *trees,
                                  *cgroup_mount.ahead_fds()))
        tty_path = os.ttyname(0) if stdio.tty and not stdio.console else None
        if (spec.create_container_hooks or spec.start_container_hooks) and not spec.hook_state:
            raise ContainerInitError("createContainer/startContainer hooks need the container's state", EXIT_OTHER)
        # our pid on the host, for the hooks' state: /proc is still the host's (or the parent
        # pid namespace's, for a joined one)
        host_pid = int(os.readlink("/proc/self")) if spec.hook_state else 0
        mark("i:stdio")
        # Join the cgroup before anything allocates memory or forks, and before a cgroup
        # namespace is made, so that namespace is rooted at the container's cgroup.
        if cgroup is not None:
            cgroup.join(v2=not born_in_v2)
        mark("i:cgroup")
        # Join namespaces given by path, then unshare the new ones in one call. The mount
        # namespace is joined last: joining it changes what the other paths mean.
        if not namespaces_done:
            join_namespaces(spec)
        # the host's names of our cgroups, for the cgroup mount: a cgroup namespace hides them
        cgroup_view = cgroup_mount.view() if any(m.type == "cgroup" for m in spec.mounts) else None
        flags = 0
        for ns in spec.namespaces:
            # pid was done by the parent before fork (or by stage A), and so was user
            if ns.path is None and ns.type not in ("pid", "user"):
                flags |= kernel.NAMESPACE_FLAGS[ns.type]
        step("unshare namespaces", "self", kernel.unshare, flags)
        mark("i:unshare")
        net = spec.namespace("network")
        if net is not None and net.path is None:
            _loopback_up()  # a new network namespace starts with lo down
        if spec.hostname is not None:
            step("sethostname", spec.hostname, kernel.sethostname, spec.hostname)
        if spec.domainname is not None:
            step("setdomainname", spec.domainname, kernel.setdomainname, spec.domainname)
        # All mounts happen before pivot_root, while the host paths (sources) are reachable;
        # propagation is cut first, so nothing reaches the host's mount table.
        rootfs.prepare(spec, rootfs_mounts, tty_path, spec.namespace("user") is not None, cgroup_view)
        mark("i:rootfs")
        # the runtime environment is made, pivot_root is not: the runtime's prestart and
        # createRuntime hooks now (the caller runs them, in its own namespaces), then ours
        if spec.sync_create_hooks:
            os.write(report_fd, HOOKS)
            if os.read(barrier_fd, 1) == b"":
                os._exit(EXIT_OTHER)  # the caller went away, or a hook failed: go no further
        # the mounts are made, pivot_root is not: the runtime-spec's createContainer moment
        if spec.create_container_hooks:
            from berth.libcontainer import hookrun  # loaded by the parent (process._spawn)

            hookrun.run(spec.create_container_hooks, "createContainer", hookrun.state_for(spec.hook_state, host_pid, "created"))
        # From pivot_root on, a path is the container's: an import would run its code.
        seal_imports()
        if spec.chroot:
            rootfs.chroot(spec.root_path)
        else:
            rootfs.pivot(spec.root_path)
        # Like runc (createCwd) and dockerd: a missing working directory is created, owned by
        # root, before a read-only root is sealed; after pivot_root so that symlinks on the way
        # resolve inside the container.
        mark("i:pivot")
        _make_cwd(spec.process.cwd)
        # The container's own pty, from its own devpts (needs the new root), before a read-only
        # root is sealed (/dev/console is bound onto it).
        if stdio.console:
            stdio_.console(stdio.console_socket, bind_console=True, size=spec.process.console_size)
        # /proc is the container's own now: sysctls, masked and read-only paths, read-only root.
        rootfs.finish(spec)
        mark("i:finish")
        # The walls, exactly as every exec'd process gets them (stage A set the limits while it
        # still had the host's privileges).
        if not namespaces_done:
            set_limits(spec.process)
        mark("i:limits")
        path, env = confine(spec.process, seccomp_program)
        mark("i:confined")
    except BaseException as exc:  # the child never returns into the caller's code
        die(report_fd, exc)
    # The barrier: tell the parent we are ready, and exec only when it says so.
    os.write(report_fd, READY)
    _let_go(until_ready)
    if os.read(barrier_fd, 1) == b"":
        os._exit(EXIT_OTHER)  # the parent went away or aborted: do not run the process
    mark("i:go")
    os.close(barrier_fd)
    if spec.start_container_hooks:  # started, the process not yet exec'd: inside the container
        from berth.libcontainer import hookrun  # loaded by the parent, as above

        try:
            hookrun.run(spec.start_container_hooks, "startContainer", hookrun.state_for(spec.hook_state, host_pid, "running"))
        except ContainerInitError as exc:
            _exit_printing(str(exc), EXIT_OTHER)  # nobody waits for a report now: stderr, as runc
    # After the barrier the container has started: an execve that fails now (a missing
    # interpreter, a binary for another architecture) is the process's own failure, as with
    # runc: its text goes to the container's stderr and it exits 127/126.
    exec_program(path, spec.process.args, env, report_fd, started=True)


# ---- steps ------------------------------------------------------------------------------------


def _let_go(until_ready: int) -> None:
    """READY is written: ``until_ready`` closed (a standby's twin: its standby exits now), and
    with it the cgroup mount made ahead, if any, handed to that standby: its close (an unmount
    and an RCU grace period) is then the standby's, in the wait for the start."""
    used = cgroup_mount.ahead_handoff()
    if until_ready < 0:
        if used >= 0:
            os.close(used)
        return
    try:
        if used >= 0:
            _socket.socket(fileno=os.dup(until_ready)).sendmsg(
                [b"t"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, used.to_bytes(4, sys.byteorder))])
    except OSError:
        pass  # the standby is gone: closed here then
    finally:
        if used >= 0:
            os.close(used)
        os.close(until_ready)


def join_namespaces(spec: ContainerSpec, with_pid: bool = False) -> None:
    """setns into every namespace given by path: user first (the others may be owned by it),
    mount last; pid (for the children) only ``with_pid`` -- else the parent did it."""
    joins = [ns for ns in spec.namespaces if ns.path is not None and (with_pid or ns.type != "pid")]
    joins.sort(key=lambda ns: (ns.type != "user", ns.type == "mount"))
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
        step(f"join {ns.type} namespace", str(ns.path), kernel.setns, fd, kernel.NAMESPACE_FLAGS[ns.type])
        os.close(fd)


def _loopback_up() -> None:
    # _socket, loaded by stdio in the runtime: in a user namespace Python's own files may be out
    # of reach (under /root) by now
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
    try:
        # struct ifreq: the name in 16 bytes, then ifr_flags (a short), 40 bytes in all
        name = b"lo".ljust(16, b"\0")
        got = fcntl.ioctl(sock.fileno(), kernel.SIOCGIFFLAGS, name + bytes(24))
        flags = int.from_bytes(got[16:18], sys.byteorder) | kernel.IFF_UP
        fcntl.ioctl(sock.fileno(), kernel.SIOCSIFFLAGS, name + flags.to_bytes(2, sys.byteorder) + bytes(22))
    finally:
        sock.close()


def _make_cwd(cwd: str) -> None:
    try:
        os.makedirs(cwd, 0o755, exist_ok=True)
    except OSError as exc:
        raise ContainerInitError(f"mkdir cwd {cwd!r} in the container: {exc.strerror}", EXIT_OTHER) from exc


def exec_program(
    path: str, args: tuple[str, ...], env: dict[str, str], report_fd: int, started: bool = False
) -> NoReturn:
    """The end of both doors: default signal dispositions, then execve. Its failure is reported
    on ``report_fd`` (a start error), or, once the container has ``started`` (after init's
    barrier), printed on stderr as the process's exit 127/126."""
    try:
        # Python ignores SIGPIPE/SIGXFSZ and the caller may ignore more; ignored dispositions
        # survive execve, so reset every signal and unblock them all.
        for sig in _signal.valid_signals():
            if sig not in (_signal.SIGKILL, _signal.SIGSTOP):
                try:
                    _signal.signal(sig, _signal.SIG_DFL)
                except (OSError, ValueError):
                    continue  # signals the kernel reserves (32, 33) cannot be changed: fine
        _signal.pthread_sigmask(_signal.SIG_SETMASK, [])
        if any("\0" in arg for arg in args):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))  # as execve(2) would see it
        mark("i:exec")
        os.execve(path, list(args), env)
    except OSError as exc:
        code = exc.errno or errno.EINVAL
        if started:
            _exit_printing(f"exec {path}: {executable.go_strerror(code)}", executable.exit_code_for(code))
        die(
            report_fd,
            ContainerInitError(
                f'exec: "{args[0]}": {executable.go_strerror(code)}'
                if code != errno.ENOENT
                else f'exec: "{args[0]}": stat {path}: {executable.go_strerror(code)}',
                executable.exit_code_for(code),
            ),
        )
    except BaseException as exc:
        die(report_fd, exc)


def _exit_printing(message: str, code: int) -> NoReturn:
    try:
        os.write(2, message.encode("utf-8", "replace") + b"\n")
    finally:
        os._exit(code)
