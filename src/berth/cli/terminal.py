"""The local terminal for ``-t``: raw mode, its size, and resize notifications.

Model: ``RawTerminal(fd)`` is a context manager that puts a TTY into raw mode the way docker's
moby/term does (cfmakeraw, but output post-processing stays on) and restores the saved modes on
exit, also when the command fails. ``termios``/``tty`` are imported only here, only for ``-t``.
``watch_resize(callback)`` calls ``callback(rows, cols)`` now and on every SIGWINCH.
"""

from __future__ import annotations

import os
from collections.abc import Callable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def fd_of(stream: Any) -> int:
    """The stream's file descriptor, or -1 when it has none (pytest's capture, StringIO)."""
    try:
        return int(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return -1


def is_tty(fd: int) -> bool:
    if fd < 0:
        return False
    try:
        return os.isatty(fd)
    except OSError:
        return False


def size(fd: int) -> tuple[int, int] | None:
    """(rows, cols) of the terminal on ``fd``, or None when it is not one."""
    try:
        cols, rows = os.get_terminal_size(fd)
    except OSError:
        return None
    return rows, cols


class RawTerminal:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.saved: Any = None

    def __enter__(self) -> RawTerminal:
        if not is_tty(self.fd):
            return self
        import termios
        import tty

        self.saved = termios.tcgetattr(self.fd)
        tty.setraw(self.fd, termios.TCSANOW)
        mode = termios.tcgetattr(self.fd)
        mode[1] |= termios.OPOST  # moby/term keeps output processing on
        termios.tcsetattr(self.fd, termios.TCSANOW, mode)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
            self.saved = None


def watch_resize(fd: int, callback: Callable[[int, int], None]) -> Callable[[], None]:
    """Send the size now and on every SIGWINCH; returns a function that stops watching."""
    import signal
    import threading

    def send(*_: object) -> None:
        dims = size(fd)
        if dims is not None and dims[0] > 0 and dims[1] > 0:
            callback(*dims)

    send()
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # signal handlers can only be set from the main thread
    previous = signal.signal(signal.SIGWINCH, send)

    def stop() -> None:
        signal.signal(signal.SIGWINCH, previous)

    return stop
