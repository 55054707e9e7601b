"""The container process's stdio: the caller's fds on 0-2, or a pty made inside the container.

* ``setup``: dup the caller's fds onto 0, 1, 2 and close every other fd (nothing of the caller
  leaks into the container) but the ``preserve_fds`` it asked to pass on; with ``Stdio.tty`` the given pty slave becomes the controlling tty.
* ``console``: runc's console-socket protocol -- open the container's /dev/ptmx, send the master
  over the socket (SCM_RIGHTS, with the slave's path as the message), make the slave stdio and
  the controlling tty, and bind it on /dev/console.
* ``give_to``: runc's fixStdioPermissions -- a non-root user owns its stdio, so reopening
  /dev/stdout (a pipe or pty made by root, mode 0600) works.
"""

from __future__ import annotations

import _socket  # the C module (socket.py imports enum): loaded here, in the runtime, since a
import fcntl  # container's init may not reach Python's files any more (pivot_root, a user namespace)
import os
import stat
import sys

from berth.libcontainer import kernel, rootfs
from berth.libcontainer.failure import EXIT_OTHER, ContainerInitError
from berth.libcontainer.spec import Stdio

TIOCSWINSZ = 0x5414  # termios's, without importing it here (imports are sealed in the container)


def setup(stdio: Stdio, keep: tuple[int, ...], ctty: bool = True) -> None:
    """Put the caller's fds on 0, 1, 2 and close every other fd but ``keep``; with a tty (and
    ``ctty``) make it the controlling terminal (the caller must lead its session)."""
    if stdio.console:  # /dev/null until the container's pty exists (see _console)
        null = os.open("/dev/null", os.O_RDWR)
        copies = [os.dup(null), os.dup(null), os.dup(null)]
        os.close(null)
    else:
        # dup first so that e.g. stdin=1, stdout=0 cannot clobber each other
        copies = [os.dup(stdio.stdin), os.dup(stdio.stdout), os.dup(stdio.stderr)]
    for target, fd in enumerate(copies):
        os.dup2(fd, target, inheritable=True)
    for fd in copies:
        if fd > 2:
            os.close(fd)
    preserved = range(3, 3 + stdio.preserve_fds)
    for fd in preserved:
        os.set_inheritable(fd, True)  # passed on to the process as they are
    low = 3
    for fd in sorted(set(keep) | set(preserved)):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, 1 << 20)
    if stdio.tty and not stdio.console and ctty:
        fcntl.ioctl(0, kernel.TIOCSCTTY, 0)


def console(sock_fd: int, bind_console: bool, ctty: bool = True, size: tuple[int, int] | None = None) -> None:
    """Make a pty in the current /dev/pts, send its master over ``sock_fd``, and make the slave
    our stdio and (with ``ctty``; the caller must lead its session) controlling terminal
    (runc's console-socket protocol). ``size`` (rows, columns): the process's consoleSize, set
    before the master leaves, so the process sees it from its first instruction."""
    try:
        master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise ContainerInitError(f"open '/dev/ptmx' for the console: {exc.strerror}", EXIT_OTHER) from exc
    try:
        fcntl.ioctl(master, kernel.TIOCSPTLCK, _int(0))  # unlockpt
        number = int.from_bytes(fcntl.ioctl(master, kernel.TIOCGPTN, b"\0" * 4), sys.byteorder)
        slave_path = f"/dev/pts/{number}"
        slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY)
        if size is not None:
            # struct winsize: rows, columns, then two unused shorts
            winsize = b"".join(n.to_bytes(2, sys.byteorder) for n in (size[0] & 0xFFFF, size[1] & 0xFFFF, 0, 0))
            fcntl.ioctl(master, TIOCSWINSZ, winsize)
        sock = _socket.socket(fileno=os.dup(sock_fd))
        try:
            # sendmsg, not socket.send_fds: that one imports the array module, and we are
            # inside the container's file system already (imports are sealed there)
            rights = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, _int(master))]
            sock.sendmsg([slave_path.encode()], rights)
        finally:
            sock.close()
    except OSError as exc:
        raise ContainerInitError(f"set up the console: {exc.strerror or exc}", EXIT_OTHER) from exc
    finally:
        os.close(master)
    os.close(sock_fd)
    for target in (0, 1, 2):
        os.dup2(slave, target)
    os.close(slave)
    if ctty:
        fcntl.ioctl(0, kernel.TIOCSCTTY, 0)
    if bind_console:
        rootfs.bind_console("/", slave_path)


def give_to(uid: int) -> None:
    """runc's fixStdioPermissions: the user owns its stdio, so that reopening them works
    (``echo hi > /dev/stdout`` opens /proc/self/fd/1, a pipe or pty made by root, mode 0600)."""
    null = os.stat("/dev/null").st_rdev if os.path.exists("/dev/null") else -1
    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == null:
                continue  # never chown the shared /dev/null
            os.fchown(fd, uid, st.st_gid)  # the uid only: the group may be chosen by the mount
        except OSError:
            continue  # e.g. a read-only file system under a file given as stdio: not fatal, as in runc


def _int(value: int) -> bytes:
    """A C ``int`` (``struct.pack("i", value)``, without loading struct for it)."""
    return value.to_bytes(4, sys.byteorder, signed=True)
