"""Processes exec'd into the running container (``docker exec``), as the shim makes them.

The runtime makes the process (a helper joins the container and forks it there) while the shim
goes on: the client's stdin is held until the process exists, a process that exits before the
runtime has named it is remembered by its wait status (``early``), and a client that left in
the meantime leaves the process running unattended.

    execs = Execs(service)
    execs.start(conn, {"op": "exec", "process": {...}, "stdin": True})   # answers "started"/"error"
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from berth.shim import protocol as P
from berth.shim.process import IllegalMove, Process
from berth.shim.runtime import Result
from berth.shim.stdio import close_console, make_stdio

if TYPE_CHECKING:
    from berth.shim.connection import Conn
    from berth.shim.service import Service


class Execs:
    __slots__ = ("service", "in_flight", "early")

    def __init__(self, service: Service) -> None:
        self.service = service
        self.in_flight = 0  # exec operations the runtime has not answered yet
        # wait statuses of children reaped before the runtime named them (an exec'd process
        # that exited at once); kept only while an exec is in flight, since pids recycle
        self.early: dict[int, int] = {}

    def reaped_unknown(self, pid: int, status: int) -> bool:
        """A child nobody knows was reaped: keep its status if it may be an exec's."""
        if not self.in_flight:
            return False
        self.early[pid] = status
        return True

    def start(self, conn: Conn, msg: dict[str, Any]) -> None:
        svc = self.service
        process = msg.get("process")
        if not isinstance(process, dict) or not process.get("args"):
            raise P.ProtocolError("monitor connection: exec needs a process object with args")
        try:
            if svc.init.status is not None:
                raise IllegalMove("not running")
            svc.init.state.exec_allowed()
        except IllegalMove as exc:
            exec_error(conn, f"container {svc.id} is {exc}", 126)
            return
        proc = Process(bool(process.get("terminal")))
        stdio, child_fds = make_stdio(proc, proc.tty, bool(msg.get("stdin")))
        try:
            op = svc.runtime.exec(process, stdio)
        except OSError as exc:
            svc.pump.close_all(proc)
            close_console(proc)
            exec_error(conn, f"exec in container {svc.id}: {exc}", 126)
            return
        finally:
            for fd in child_fds:
                os.close(fd)
        conn.process = proc  # stdin that comes early is held until the process runs
        self.in_flight += 1
        svc.wait_op(op, lambda res: self._made(conn, proc, res), code=126)

    def _made(self, conn: Conn, proc: Process, res: Result) -> None:
        svc = self.service
        self.in_flight -= 1
        if proc.console is not None:  # a tty: its master, from the container's devpts
            res = svc.receive_master(proc, res, f"exec in container {svc.id}", 126)
        if not res.ok:
            close_console(proc)
            svc.pump.close_all(proc)
            conn.process = None
            if not self.in_flight:
                self.early.clear()
            if not conn.closed:
                exec_error(conn, res.error, res.exit_code or 126)
            return
        pid = res.pid
        proc.pid = pid
        proc.started = True
        proc.state = proc.state.start()
        svc.by_pid[pid] = proc
        if conn.closed:  # the client left while the process was being made: it runs unattended
            proc.stdin_eof = True
        else:
            proc.conns.append(conn)
            conn.send_json({"event": "started", "pid": pid})
        svc.pump.watch_outputs(proc)
        svc.pump.flush_stdin(proc)
        status = self.early.pop(pid, None)
        if not self.in_flight:
            self.early.clear()
        if status is not None:  # it exited (and was reaped) before we knew its pid
            svc.exited(proc, status)
        svc.reap()  # it may have exited already (its SIGCHLD woke nobody yet)


def exec_error(conn: Conn, message: str, code: int) -> None:
    conn.send_json({"event": "error", "message": message, "exit_code": code})
    conn.close_when_flushed = True
    conn.flush()
