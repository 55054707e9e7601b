"""The exec door: a process entering a running container, the way ``runc exec`` does it.

:func:`spawn` runs in a throwaway *launcher* the caller forked (the monitor's helper, or the
child :func:`berth.libcontainer.process.exec_process` forks). The launcher is in none of the
container's namespaces when it starts and never enters the container's PID namespace itself,
so nothing in the container can see, signal or ptrace it. In order:

1. non-dumpable (PR_SET_DUMPABLE 0, inherited by the exec'd process until its execve): without
   CAP_SYS_PTRACE nobody may ptrace it or open its /proc/PID/{root,cwd,fd,environ,mem,exe}
   (CVE-2016-9962, CVE-2019-5736);
2. stdio on 0-2 and every other fd closed (CVE-2024-21626: no fd of the host reaches the
   container; a monitor's helper holds all the monitor's connections);
3. the container's rlimits and oom_score_adj (:func:`~berth.libcontainer.confine.set_limits`,
   while /proc/self is still ours) and its cgroup, while /sys/fs/cgroup is still the host's;
4. every namespace of the container's init at once -- its user namespace and mount included,
   the PID namespace for the children -- through a pidfd (``setns(pidfd, ...)``, Linux >= 5.8;
   a pidfd cannot name a recycled pid either); those it shares with us are left out (the
   kernel refuses to "join" our own user or mount namespace), and a container without a mount
   namespace of its own is entered by chroot into its init's root;
5. imports sealed: the file system is the container's now;
6. with a tty, the pty, made in the container's devpts (runc's console socket);
7. :func:`berth.libcontainer.confine.confine`: the container's user, groups, rlimits,
   capabilities, no_new_privs and seccomp filter -- the very function the init went through;
8. fork. The exec'd process is born in the container's PID namespace already confined: the
   first moment anything in the container can see it (issue 5: a watcher polling /proc caught
   exec'd children with the host's capabilities, outside the container's mount namespace), it
   is no more than the container. It leads a new session (a tty becomes its controlling
   terminal) and execs.

The launcher waits for that execve (a close-on-exec pipe), returns the pid and must then only
report and exit: it is inside the container's walls itself. The exec'd process is the
launcher's child, so when the launcher exits it goes to the nearest child subreaper (the
monitor; ``berth-runtime exec`` makes itself one).

A container with CAP_SYS_PTRACE may still ptrace the process between its birth and execve, as
with runc; it then holds nothing the container does not: the same capabilities, the same
namespaces, and only its stdio.
"""

from __future__ import annotations

import fcntl
import os

from berth.errors import SystemFailure
from berth.libcontainer import kernel
from berth.libcontainer import stdio as stdio_
from berth.libcontainer.cgroups import Cgroup
from berth.libcontainer.confine import confine, seal_imports, set_limits
from berth.libcontainer.failure import EXIT_OTHER, ContainerInitError, die
from berth.libcontainer.init import exec_program
from berth.libcontainer.spec import Process, Stdio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


def spawn(
    init_pidfd: int,
    process: Process,
    stdio: Stdio,
    cgroup: Cgroup | None,
    seccomp_program: bytes | None,
    keep: tuple[int, ...] = (),
) -> int:
    """Turn the calling (throwaway, single-threaded) process into the launcher of ``process``
    in the container whose init ``init_pidfd`` names; return its pid once it has exec'd.

    Raises ContainerInitError for anything that fails, before or at execve. ``keep`` are fds
    of the caller to leave open (its report pipe); every other fd is closed, ``init_pidfd``
    included. Afterwards the caller is inside the container's walls: it must report and exit.
    """
    kernel.prctl(kernel.PR_SET_DUMPABLE, 0)
    os.umask(0o022)
    stdio_.setup(stdio, keep=(*keep, init_pidfd, stdio.console_socket), ctty=False)
    set_limits(process)
    if cgroup is not None:
        try:
            cgroup.join()
        except SystemFailure as exc:
            raise ContainerInitError(f"join cgroup '{cgroup.name}': {exc}", EXIT_OTHER) from exc
    pid = _pid_of(init_pidfd)
    flags = 0
    for ns, flag in _JOINABLE:
        if _differs(pid, ns):  # setns refuses to "join" our own user or mount namespace
            flags |= flag
    # a container without a mount namespace of its own lives in a chroot of ours: enter it
    root = -1 if flags & kernel.CLONE_NEWNS else _open_root(pid)
    try:
        if flags:  # none when the container shares every namespace with us
            kernel.setns(init_pidfd, flags)
    except OSError as exc:
        raise ContainerInitError(
            f"join the namespaces of the container's init: {exc.strerror}", EXIT_OTHER
        ) from exc
    os.close(init_pidfd)
    if root >= 0:
        try:
            os.fchdir(root)
            os.chroot(".")
        except OSError as exc:
            raise ContainerInitError(f"chroot into the container's root: {exc.strerror}", EXIT_OTHER) from exc
        finally:
            os.close(root)
    seal_imports()
    if stdio.console:  # in the container's mount namespace now: its /dev/ptmx
        stdio_.console(stdio.console_socket, bind_console=False, ctty=False, size=process.console_size)
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    path, env = confine(process, seccomp_program)
    try:
        pid = os.fork()
    except OSError as exc:  # EAGAIN: the container's pids limit
        raise ContainerInitError(f"fork the process in the container: {exc.strerror}", EXIT_OTHER) from exc
    if pid == 0:
        _exec_child(path, process.args, env, stdio.tty, report_w, (report_r, *keep))
    os.close(report_w)
    data = b""
    while chunk := os.read(report_r, 65536):
        data += chunk
    os.close(report_r)
    if data:
        os.waitpid(pid, 0)
        raise ContainerInitError.from_wire(data)
    return pid


# (proc file, flag) for every namespace an exec may join; the user namespace first (the
# kernel joins it first whatever the order)
_JOINABLE = (
    ("user", kernel.CLONE_NEWUSER),
    ("mnt", kernel.CLONE_NEWNS),
    ("cgroup", kernel.CLONE_NEWCGROUP),
    ("uts", kernel.CLONE_NEWUTS),
    ("ipc", kernel.CLONE_NEWIPC),
    ("net", kernel.CLONE_NEWNET),
    ("pid", kernel.CLONE_NEWPID),
)


def _pid_of(pidfd: int) -> int:
    """The pid a pidfd names, from its fdinfo; were it recycled meanwhile, the setns through
    the pidfd fails anyway."""
    try:
        with open(f"/proc/self/fdinfo/{pidfd}") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("Pid:"))
    except (OSError, StopIteration, ValueError) as exc:
        raise ContainerInitError(f"find the container's init: {exc}", EXIT_OTHER) from exc


def _differs(pid: int, ns: str) -> bool:
    try:
        theirs = os.stat(f"/proc/{pid}/ns/{ns}")
        mine = os.stat(f"/proc/self/ns/{ns}")
    except OSError as exc:
        raise ContainerInitError(f"read the {ns} namespace of the container's init: {exc.strerror}", EXIT_OTHER) from exc
    return (theirs.st_dev, theirs.st_ino) != (mine.st_dev, mine.st_ino)


def _open_root(pid: int) -> int:
    try:
        return os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise ContainerInitError(f"open the container's root: {exc.strerror}", EXIT_OTHER) from exc


def _exec_child(
    path: str, args: tuple[str, ...], env: dict[str, str], tty: bool, report_fd: int, close: tuple[int, ...]
) -> NoReturn:
    """The exec'd process, from its birth in the container's PID namespace to execve."""
    try:
        for fd in close:  # the launcher's: close-on-exec anyway, but never ours to hold
            os.close(fd)
        os.setsid()
        if tty:
            fcntl.ioctl(0, kernel.TIOCSCTTY, 0)
    except BaseException as exc:
        die(report_fd, exc)
    exec_program(path, args, env, report_fd)
