"""An attached container or exec session: the hijacked stream, stdin, the TTY, signals.

Model: ``Session`` runs the part that ``run``, ``start -a``, ``attach`` and ``exec`` share once
the daemon has answered ``101``: it starts copying our stdin (``-i``) into the stream or
half-closes at once, and, after the caller has started the process, copies the output to our
stdout/stderr until the daemon ends the stream. With a TTY the local terminal is raw for the
duration and its size follows SIGWINCH (``resize`` posts it); without one, SIGINT/SIGTERM/...
are forwarded as ``POST kill?signal=NAME`` (docker's sig-proxy). Daemon calls made from signal
handlers go through a separate client, so they never interleave with a request in flight.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from berth.cli.streams import DetachKeys, OutputSink, duplex
from berth.cli.terminal import RawTerminal, fd_of, is_tty, watch_resize

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROXIED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


def side_client(ctx: Any) -> Any:
    """A second client on the same endpoint and version, for calls from signal handlers."""
    from berth.client.api import Client

    return Client(ctx.client.endpoint, api_version=ctx.client.version)


@contextlib.contextmanager
def signal_proxy(kill: Callable[[str], None], enabled: bool) -> Iterator[None]:
    import threading

    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    import signal

    previous = {}

    def forward(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name.removeprefix("SIG")
        from berth.errors import BerthError

        try:
            kill(name)
        except BerthError:
            pass  # e.g. the container already exited; docker ignores a failed forward too

    for name in PROXIED_SIGNALS:
        sig = getattr(signal, name)
        previous[sig] = signal.signal(sig, forward)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _quiet(resize: Callable[[int, int], None]) -> Callable[[int, int], None]:
    def call(h: int, w: int) -> None:
        from berth.errors import BerthError

        try:
            resize(h, w)
        except BerthError:
            pass  # the process may already be gone; docker ignores resize failures too

    return call


class Session:
    def __init__(self, ctx: Any, raw: Any, tty: bool, stdin: bool, detach_keys: bytes | None = None) -> None:
        self.ctx = ctx
        self.raw = raw
        self.tty = tty
        self.stdin = stdin
        self.detach_keys = detach_keys
        self.stdin_fd = fd_of(ctx.stdin) if stdin else -1

    def begin(self) -> None:
        """Right after the 101: without stdin, half-close at once (as docker does); with
        stdin, input flows once ``stream`` runs (the daemon holds the stream until start)."""
        if not self.stdin or self.stdin_fd < 0:
            self.raw.close_write()

    def stream(self, resize: Callable[[int, int], None] | None = None) -> bool:
        """Copy stdin in and output out until the daemon ends the stream; False on detach."""
        raw_mode = self.tty and self.stdin and is_tty(self.stdin_fd)
        keys = DetachKeys(self.detach_keys) if (self.tty and self.stdin and self.detach_keys) else None
        with RawTerminal(self.stdin_fd) if raw_mode else contextlib.nullcontext():
            stop: Callable[[], None] = lambda: None  # noqa: E731
            if self.tty and resize is not None and is_tty(fd_of(self.ctx.stdout)):
                stop = watch_resize(fd_of(self.ctx.stdout), _quiet(resize))
            try:
                return duplex(
                    self.raw,
                    self.stdin_fd if self.stdin else -1,
                    OutputSink(self.ctx.write_bytes, self.tty),
                    keys,
                )
            finally:
                stop()
                self.raw.close()
