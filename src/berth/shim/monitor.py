"""The per-container monitor: one small single-threaded process that runs one container.

Model (conmon / containerd-shim in Python). The fork server forks the monitor (double fork,
own session) and hands it one end of a socketpair whose other end the daemon holds; on it come
``{"op": "create", ...}`` and the create body. The monitor then

1. makes the container's stdio: pipes, or a console socket over which the container's process
   sends the master of the pty it made in its own devpts (the monitor keeps the master, as
   runc's --console-socket caller does), and has a helper process
   (:mod:`berth.shim.helper`) create the cgroup and call ``libcontainer.create``; it
   answers ``{"event": "created", "pid", "monitor_pid"}`` or ``{"event": "error", "message",
   "exit_code"}`` (and exits, leaving nothing behind);
2. writes ``state.json`` and listens on ``<exec_root>/<id>/monitor.sock``;
3. runs one ``epoll`` loop: container output goes to the json-file log and, as frames, to
   every attach connection; stdin frames go to the container (held until ``start``); control
   frames (on any connection, usually the daemon's control connection) start, signal, pause,
   resume, resize, each answered by ``{"event": "reply", "req", "error", "kind"}``; exec
   connections get a helper that enters the container and forks the process there, with its
   own stdio (the loop waits for the helper's answer like for any other fd, with a deadline,
   so a stuck exec never holds up the container's output, stop or other execs); SIGCHLD
   (through the wakeup fd) reaps the init and exec'd processes, reparented to the monitor;
4. when the init has exited and its output is drained: writes ``exit.json`` atomically, removes
   the socket, sends ``{"event": "exit", ...}`` to attach connections, destroys the cgroup,
   closes the connections (their EOF: teardown done) and exits.

If the daemon's creation connection drops before ``start``, the init is killed and exit.json
records exit code 128, "daemon went away before start". After ``start`` the monitor outlives the
daemon; a restarted daemon connects to monitor.sock with ``{"op": "attach"}``.

Backpressure both ways: while a connection has more than ``HIGH_WATER`` bytes unsent, the
monitor stops reading the output it feeds (the container blocks on write); while a process has
``HIGH_WATER`` of stdin it did not read, the monitor stops reading the client that sent it.
Imports and work are kept to what the loop needs: every page the monitor touches is its own
(docs/monitor.md has the numbers).
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal.signal without the enum wrapping
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from berth.container.logs import LogWriter, format_time
from berth.errors import SystemFailure
from berth.libcontainer.cgroups import Cgroup, open_cgroup
from berth.shim import protocol as P
from berth.shim.helper import (
    CONTAINER_FILE,
    RESULT_TIMEOUT,
    Helper,
    helper_cgroup,
    helper_create,
    helper_exec,
)
from berth.shim.session import (
    Conn,
    Refused,
    Session,
    atomic_write_json,
    close_console,
    exit_code_of,
    make_stdio,
    take_master,
)

EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP = select.EPOLLIN, select.EPOLLOUT, select.EPOLLERR, select.EPOLLHUP
HIGH_WATER = 1 << 20
IOV_BATCH = 64  # buffers per sendmsg (well under IOV_MAX)
LOW_WATER = 256 << 10
READ_SIZE = 8 * 1024
DRAIN_TIMEOUT = 2.0  # seconds to wait for output EOF once the process has exited
PR_SET_CHILD_SUBREAPER = 36
SIGKILL = int(signal.SIGKILL)
SIGTERM = int(signal.SIGTERM)
TIOCSWINSZ = 0x5414


class PendingExec:
    """An exec whose helper has not answered yet: the client, the process's stdio, the helper."""

    __slots__ = ("conn", "sess", "helper", "deadline")

    def __init__(self, conn: Conn, sess: Session, helper: Helper, deadline: float) -> None:
        self.conn, self.sess, self.helper, self.deadline = conn, sess, helper, deadline


class Monitor:
    """The loop. ``run()`` never returns: the monitor process exits at the end of it."""

    def __init__(self, req: dict[str, Any], daemon: socket.socket) -> None:
        self.req = req
        self.id: str = req["id"]
        self.dir = os.path.join(req["exec_root"], self.id)
        self.ep = select.epoll()
        self.cbs: dict[int, list[Any]] = {}  # fd -> [read_cb, write_cb]
        self.by_pid: dict[int, Session] = {}
        self.conns: list[Conn] = []
        self.daemon = Conn(daemon, "daemon")
        self.cgroup_name: str = req.get("cgroup") or ""  # cgroup work happens in helpers (see Helper)
        self.paused = False
        self.started_at = ""
        self.init = Session(bool(req.get("tty")))
        self.error = ""
        self.forced_code: int | None = None
        self.listener: socket.socket | None = None
        self.helper: Helper | None = None  # holds the init's barrier until start
        self.init_pidfd = -1  # names the init for exec helpers, even once its pid is recycled
        self.pending: dict[int, PendingExec] = {}  # helper's answer fd -> an exec being made
        # wait statuses of children reaped before the helper's answer named them (an exec'd
        # process that exited at once); kept only while an exec is pending, since pids recycle
        self.early: dict[int, int] = {}

    # ---- fd bookkeeping -------------------------------------------------------------------
    def _watch(self, fd: int, read: Callable[[], None] | None | bool = False,
               write: Callable[[], None] | None | bool = False) -> None:
        """Set (callable), clear (None) or keep (False) the read and write callbacks of fd."""
        cur = self.cbs.get(fd)
        entry = [None, None] if cur is None else cur
        if read is not False:
            entry[0] = read
        if write is not False:
            entry[1] = write
        events = (EPOLLIN if entry[0] else 0) | (EPOLLOUT if entry[1] else 0)
        if cur is None:
            if events:
                self.cbs[fd] = entry
                self.ep.register(fd, events)
        elif events:
            self.ep.modify(fd, events)
        else:
            del self.cbs[fd]
            self.ep.unregister(fd)

    def _forget(self, fd: int) -> None:
        if self.cbs.pop(fd, None) is not None:
            self.ep.unregister(fd)

    # ---- creation -------------------------------------------------------------------------
    def create(self, body: bytes) -> bool:
        """Spawn the init at its barrier (through a helper); report to the daemon; False if it failed.

        ``body`` is the request's second frame (spec, mounts, resources), parsed in the helper only.
        """
        req = self.req
        for stale in ("exit.json", CONTAINER_FILE):  # a previous run's (a restart without cleanup)
            try:
                os.unlink(os.path.join(self.dir, stale))
            except FileNotFoundError:
                pass
        stdio, self.init, child_fds = make_stdio(bool(req.get("tty")), bool(req.get("open_stdin")))
        if req.get("log_path"):
            self.init.log = LogWriter(req["log_path"], int(req.get("log_max_size") or 0),
                                      int(req.get("log_max_files") or 1))
        try:
            helper = Helper(lambda res_w, go_r: helper_create(req, body, stdio, res_w, go_r))
        finally:
            for fd in child_fds:
                os.close(fd)
        answer = helper.result()
        if self.init.console is not None:  # a tty: its master, from the container's devpts
            answer = self._take_master(self.init, answer, f"create container {self.id}", 128)
        if "pid" not in answer:
            helper.close()
            self._fail_create(str(answer.get("message")), int(answer.get("exit_code", 128)))
            return False
        self.helper = helper
        self.init.pid = int(answer["pid"])
        # not reaped before the loop runs, so the pid is still the init's: pin it with a pidfd
        self.init_pidfd = os.pidfd_open(self.init.pid)
        self.by_pid[self.init.pid] = self.init
        self.init.conns.append(self.daemon)
        self._write_state("")
        self._listen()
        self._send_json(self.daemon, {"event": "created", "pid": self.init.pid, "monitor_pid": os.getpid()})
        return True

    def _take_master(self, sess: Session, answer: dict[str, Any], what: str, code: int) -> dict[str, Any]:
        """Receive the pty master of a process the helper made (``answer`` has its pid); the
        answer, or an error answer if the master is missing (the process is then killed)."""
        if "pid" not in answer:
            close_console(sess)
            return answer
        try:
            take_master(sess)
        except OSError as exc:
            os.kill(int(answer["pid"]), SIGKILL)  # an init at its barrier too; reaped as an orphan
            return {"message": f"{what}: receive the console: {exc}", "exit_code": code}
        return answer

    def _fail_create(self, message: str, code: int) -> None:
        self._cgroup_op("destroy")
        if self.init.log is not None:
            self.init.log.close()
        _remove_tree(self.dir)  # before answering: the daemon may look right after
        self.daemon.sock.setblocking(True)
        self.daemon.sock.sendall(P.encode_json({"event": "error", "message": message, "exit_code": code}))

    def _cgroup_op(self, op: str) -> dict[str, Any]:
        """Run one Cgroup method (freeze, thaw, oom_killed, destroy) in a helper process."""
        if not self.cgroup_name:
            return {}
        name = self.cgroup_name
        helper = Helper(lambda res_w, go_r: helper_cgroup(name, op, res_w))
        answer = helper.result()
        helper.close()
        return answer

    def _write_state(self, started_at: str) -> None:
        self.started_at = started_at
        atomic_write_json(os.path.join(self.dir, "state.json"),
                          {"monitor_pid": os.getpid(), "pid": self.init.pid, "started_at": started_at})

    def _listen(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cwd = os.getcwd()
        os.chdir(self.dir)  # a relative bind: the full path may pass sun_path's 108 bytes
        try:
            if os.path.exists("monitor.sock"):
                os.unlink("monitor.sock")
            sock.bind("monitor.sock")
            os.chmod("monitor.sock", 0o600)  # attach, exec and signals: root's alone
        finally:
            os.chdir(cwd)
        sock.listen(16)
        sock.setblocking(False)
        self.listener = sock
        self._watch(sock.fileno(), read=self._accept)

    # ---- the loop -------------------------------------------------------------------------
    def run(self) -> None:
        rfd, wfd = os.pipe()
        os.set_blocking(rfd, False)
        os.set_blocking(wfd, False)
        signal.set_wakeup_fd(wfd)
        self._watch(rfd, read=lambda: self._on_signal(rfd))
        self._add_conn(self.daemon)
        for fd in self.init.outputs:
            self._watch(fd, read=self._reader(self.init, fd))
        self._reap()  # the init may already be gone
        while True:
            deadlines = [sess.deadline for sess in (self.init, *self.by_pid.values()) if sess.deadline is not None]
            deadlines += [p.deadline for p in self.pending.values()]
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else -1
            events = self.ep.poll(timeout)
            # entries as they were before this batch: an fd closed (and maybe reused) by an
            # earlier callback of the batch must not reach the new owner's callbacks
            batch = [(fd, mask, self.cbs.get(fd)) for fd, mask in events]
            for fd, mask, entry in batch:
                if entry is None or self.cbs.get(fd) is not entry:
                    continue
                if mask & (EPOLLIN | EPOLLHUP | EPOLLERR) and entry[0]:
                    entry[0]()
                if mask & (EPOLLOUT | EPOLLHUP | EPOLLERR) and entry[1] and self.cbs.get(fd) is entry:
                    entry[1]()
            now = time.monotonic()
            for sess in list(self.by_pid.values()):
                if sess.deadline is not None and now >= sess.deadline:
                    if sess.throttled:
                        # still output to deliver to a slow client: not a stuck pipe, keep going
                        sess.deadline = now + DRAIN_TIMEOUT
                    else:
                        self._finish_session(sess)
            for pending in [p for p in self.pending.values() if now >= p.deadline]:
                os.kill(pending.helper.pid, SIGKILL)
                self._fail_exec(pending, f"container helper process gave no answer in {RESULT_TIMEOUT:g} s", 126)
            if self.init.done:
                return

    def _on_signal(self, rfd: int) -> None:
        got = b""
        try:
            while chunk := os.read(rfd, 512):
                got += chunk
        except BlockingIOError:
            pass
        if SIGTERM in got and self.init.status is None:
            # someone stops the monitor: stop its container rather than orphan it, and record it
            self._abandon("monitor stopped by SIGTERM")
        self._reap()

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            sess = self.by_pid.get(pid)
            if sess is None and self.pending:
                self.early[pid] = status  # maybe an exec'd process whose helper's answer is on its way
                continue
            if sess is None or sess.status is not None:
                continue  # a helper, or an exec'd process whose helper failed after all
            sess.status = status
            sess.deadline = time.monotonic() + DRAIN_TIMEOUT
            if not sess.outputs:
                self._finish_session(sess)

    # ---- connections ----------------------------------------------------------------------
    def _accept(self) -> None:
        assert self.listener is not None
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        self._add_conn(Conn(sock, "new"))

    def _add_conn(self, conn: Conn) -> None:
        self.conns.append(conn)
        self._watch(conn.fd, read=self._conn_reader(conn))

    def _on_readable(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close_conn(conn)
            return
        try:
            frames = conn.decoder.feed(data)
            for kind, payload in frames:
                self._on_frame(conn, kind, payload)
        except (P.ProtocolError, ValueError, TypeError, KeyError, AttributeError) as exc:
            # a client's bad input ends that client, never the container
            self._send(conn, P.encode(P.ERROR, str(exc).encode()))
            self._close_conn(conn)

    def _on_frame(self, conn: Conn, kind: int, payload: bytes) -> None:
        if conn.closed:
            return
        if conn.role == "new":
            if kind != P.CONTROL:
                raise P.ProtocolError("monitor connection: the first frame must be a JSON hello")
            self._on_hello(conn, P.decode_json(payload))
            return
        sess = conn.session if conn.role in ("exec", "control") else self.init
        if sess is None:
            if kind == P.CONTROL:  # a control connection for an exec that is gone
                msg = P.decode_json(payload)
                self._reply(conn, msg, f"{msg.get('op')}: the process is not running", "conflict")
            return
        if kind == P.STDIN:
            self._stdin(sess, conn, payload)
        elif kind == P.STDIN_EOF:
            sess.stdin_eof = True
            self._flush_stdin(sess)
        elif kind == P.CONTROL:
            msg = P.decode_json(payload)
            what = f"{msg.get('op')} container {self.id}"
            try:
                self._control(sess, conn, msg)
            except Refused as exc:
                text = str(exc) if exc.kind.startswith("start:") else f"{what}: {exc}"  # runc's text as is
                self._reply(conn, msg, text, exc.kind)
            except ProcessLookupError:
                self._reply(conn, msg, f"{what}: the process is not running", "conflict")
            except (ValueError, KeyError, TypeError) as exc:
                self._reply(conn, msg, f"{what}: bad request: {exc!r}", "invalid")
            except OSError as exc:
                self._reply(conn, msg, f"{what}: {exc}", "system")
            else:
                self._reply(conn, msg, "", "")

    def _on_hello(self, conn: Conn, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        if op == "attach":
            conn.role = "attach"
            self.init.conns.append(conn)
            paused = self.paused
            self._send_json(conn, {"event": "attached", "pid": self.init.pid, "monitor_pid": os.getpid(),
                                   "started": self.init.started, "paused": paused,
                                   "started_at": self.started_at})
        elif op == "exec":
            conn.role = "exec"
            self._exec(conn, msg)
        elif op == "control":
            # requests only, no output: the daemon's way around a stdin backlog on its attach
            # connection; "pid" names an exec'd process, else the container's init
            conn.role = "control"
            pid = msg.get("pid")
            conn.session = self.init if not pid else self.by_pid.get(int(pid))
            if conn.session is self.init and pid:
                conn.session = None  # the init's pid is not an exec's
        else:
            raise P.ProtocolError(f"monitor connection: unknown hello op {op!r}")

    def _close_conn(self, conn: Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        self._forget(conn.fd)
        conn.sock.close()
        self.conns.remove(conn)
        for sess in [self.init, *self.by_pid.values()]:
            if conn in sess.conns:
                sess.conns.remove(conn)
                self._maybe_unthrottle(sess)
        if conn is self.daemon and not self.init.started and self.init.status is None:
            self._abandon("daemon went away before start")
        if conn.role == "exec" and conn.session is not None and conn.session.status is None:
            # nobody reads this exec any more: its output is discarded, its stdin closed
            conn.session.stdin_eof = True
            self._flush_stdin(conn.session)

    def _abandon(self, why: str) -> None:
        """Kill the container; its exit is recorded with ``why`` (and code 128 if it never ran)."""
        self.error = why
        if not self.init.started:
            self.forced_code = 128
        os.kill(self.init.pid, SIGKILL)
        if self.helper is not None:
            self.helper.close()  # the helper exits; the dead init is reparented to us
            self.helper = None

    def _send_json(self, conn: Conn, obj: Any) -> None:
        self._send(conn, P.encode_json(obj))

    def _reply(self, conn: Conn, msg: dict[str, Any], error: str, kind: str) -> None:
        self._send_json(conn, {"event": "reply", "req": msg.get("req"), "op": msg.get("op"),
                               "error": error, "kind": kind})

    def _send(self, conn: Conn, *parts: bytes) -> None:
        if conn.closed:
            return
        conn.out.extend(parts)
        conn.out_len += sum(len(p) for p in parts)
        self._flush_conn(conn)

    def _flush_conn(self, conn: Conn) -> None:
        # gather-send the queued buffers as they are: no concatenation, no growing buffer
        try:
            while conn.out:
                sent = conn.sock.sendmsg(conn.out[:IOV_BATCH])
                conn.out_len -= sent
                done = 0
                for buf in conn.out:
                    if sent < len(buf):
                        if sent:
                            conn.out[done] = memoryview(buf)[sent:]
                        break
                    sent -= len(buf)
                    done += 1
                del conn.out[:done]
        except BlockingIOError:
            pass
        except OSError:
            self._close_conn(conn)
            return
        self._watch(conn.fd, write=(lambda: self._flush_conn(conn)) if conn.out else None)
        if not conn.out and conn.close_when_flushed:
            self._close_conn(conn)
        elif conn.out_len < LOW_WATER:
            for sess in (self.init, *self.by_pid.values()):
                if sess.throttled and conn in sess.conns:
                    self._maybe_unthrottle(sess)

    # ---- output ---------------------------------------------------------------------------
    def _reader(self, sess: Session, fd: int) -> Callable[[], None]:
        return lambda: self._on_output(sess, fd)

    def _on_output(self, sess: Session, fd: int) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:  # EIO: every holder of the pty slave has closed it
            data = b""
        if not data:
            self._close_output(sess, fd)
            return
        stream = sess.outputs[fd]
        if sess.log is not None:
            sess.log.write(stream, data)
        header = P.HEADER.pack(stream, len(data))
        for conn in list(sess.conns):
            self._send(conn, header, data)
            if conn.out_len > HIGH_WATER and not sess.throttled:
                sess.throttled = True
                for out_fd in sess.outputs:
                    self._watch(out_fd, read=None)

    def _maybe_unthrottle(self, sess: Session) -> None:
        if sess.throttled and all(c.out_len < LOW_WATER for c in sess.conns):
            sess.throttled = False
            for fd in sess.outputs:
                self._watch(fd, read=self._reader(sess, fd))

    def _close_output(self, sess: Session, fd: int) -> None:
        del sess.outputs[fd]
        self._watch(fd, read=None)
        if fd != sess.master:
            os.close(fd)
        if not sess.outputs and sess.status is not None:
            self._finish_session(sess)

    # ---- stdin ----------------------------------------------------------------------------
    def _stdin(self, sess: Session, conn: Conn, data: bytes) -> None:
        if sess.stdin_fd < 0 or sess.stdin_eof:
            return
        sess.stdin_buf += data
        self._flush_stdin(sess)
        if len(sess.stdin_buf) > HIGH_WATER and not conn.closed and conn not in sess.stdin_waiters:
            # the process reads slower than the client writes: stop reading the client (it
            # blocks in turn) rather than buffer without bound
            sess.stdin_waiters.append(conn)
            self._watch(conn.fd, read=None)

    def _resume_stdin_writers(self, sess: Session) -> None:
        waiters, sess.stdin_waiters = sess.stdin_waiters, []
        for conn in waiters:
            if not conn.closed:
                self._watch(conn.fd, read=self._conn_reader(conn))

    def _conn_reader(self, conn: Conn) -> Callable[[], None]:
        return lambda: self._on_readable(conn)

    def _flush_stdin(self, sess: Session) -> None:
        fd = sess.stdin_fd
        if fd < 0 or not sess.started:
            return
        try:
            while sess.stdin_buf:
                n = os.write(fd, sess.stdin_buf)
                del sess.stdin_buf[:n]
        except BlockingIOError:
            self._watch(fd, write=lambda: self._flush_stdin(sess))
            if sess.stdin_waiters and len(sess.stdin_buf) < LOW_WATER:
                self._resume_stdin_writers(sess)
            return
        except OSError:  # EPIPE/EIO: the process closed its stdin; drop what it will never read
            sess.stdin_buf.clear()
            sess.stdin_eof = True
        self._watch(fd, write=None)
        if sess.stdin_waiters and len(sess.stdin_buf) < LOW_WATER:
            self._resume_stdin_writers(sess)
        if sess.stdin_eof:
            if sess.tty:
                try:
                    os.write(fd, b"\x04")  # a pty has no half-close: EOF is ^D at the line discipline
                except OSError:
                    pass  # the process already closed the terminal; nothing left to tell it
            else:
                self._forget(fd)
                os.close(fd)
            sess.stdin_fd = -1

    # ---- control --------------------------------------------------------------------------
    def _control(self, sess: Session, conn: Conn, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        if op == "start" and sess is self.init:
            if sess.started or self.helper is None:
                raise Refused("conflict", "already started")
            helper, self.helper = self.helper, None
            answer = helper.go()
            if answer.get("message"):
                # the process could not be exec'd after all (init exits 127/126 and is reaped)
                raise Refused(f"start:{answer.get('exit_code', 128)}", str(answer["message"]))
            sess.started = True
            self._write_state(format_time(time.time_ns()))
            self._flush_stdin(sess)
        elif op == "resize":
            if sess.master < 0:
                return  # no terminal: nothing to resize (containerd's shim answers the same)
            import fcntl
            import struct

            fcntl.ioctl(sess.master, TIOCSWINSZ, struct.pack("HHHH", int(msg["h"]), int(msg["w"]), 0, 0))
        elif op == "signal":
            if sess.status is not None or not sess.started:
                # before start the init is the helper's child, held at its barrier: Docker too
                # says "not running"; the daemon drops the connection to discard it
                raise ProcessLookupError
            os.kill(sess.pid, int(msg["signal"]))
            if sess is self.init and int(msg["signal"]) == SIGKILL and self.paused:
                self._cgroup_op("thaw")  # a frozen task cannot die until it is thawed
                self.paused = False
        elif op in ("pause", "resume") and sess is self.init:
            if not self.cgroup_name:
                raise Refused("invalid", "the container has no cgroup to freeze")
            answer = self._cgroup_op("freeze" if op == "pause" else "thaw")
            if answer.get("message"):
                raise Refused("system", str(answer["message"]))
            self.paused = op == "pause"
        else:
            raise Refused("invalid", f"unknown op {op!r}")

    # ---- exec -----------------------------------------------------------------------------
    def _exec(self, conn: Conn, msg: dict[str, Any]) -> None:
        process = msg.get("process")
        if not isinstance(process, dict) or not process.get("args"):
            raise P.ProtocolError("monitor connection: exec needs a process object with args")
        if not self.init.started or self.init.status is not None:
            self._exec_error(conn, f"container {self.id} is not running", 126)
            return
        if self.paused:  # the new process would freeze before its exec, and hold the monitor
            self._exec_error(conn, f"container {self.id} is paused, unpause the container before exec", 126)
            return
        stdio, sess, child_fds = make_stdio(bool(process.get("terminal")), bool(msg.get("stdin")))
        init_pid, init_pidfd = self.init.pid, self.init_pidfd
        try:
            cgroup_name, exec_dir = self.cgroup_name, self.dir
            helper = Helper(lambda res_w, go_r: helper_exec(init_pid, init_pidfd, process, stdio, cgroup_name,
                                                            exec_dir, res_w))
        finally:
            for fd in child_fds:
                os.close(fd)
        pending = PendingExec(conn, sess, helper, time.monotonic() + RESULT_TIMEOUT)
        conn.session = sess  # stdin that comes early is held until the process runs
        self.pending[helper.res_r] = pending
        self._watch(helper.res_r, read=lambda: self._on_exec_answer(pending))

    def _on_exec_answer(self, pending: PendingExec) -> None:
        answer = pending.helper.read_ready()
        if answer is None:
            return
        conn, sess = pending.conn, pending.sess
        self._end_pending(pending)
        if sess.console is not None:  # a tty: its master, from the container's devpts
            answer = self._take_master(sess, answer, f"exec in container {self.id}", 126)
        if "pid" not in answer:
            self._close_session_fds(sess)
            conn.session = None
            if not conn.closed:
                self._exec_error(conn, str(answer.get("message")), int(answer.get("exit_code", 126)))
            return
        pid = int(answer["pid"])
        sess.pid = pid
        sess.started = True
        self.by_pid[pid] = sess
        if conn.closed:  # the client left while the process was being made: it runs unattended
            sess.stdin_eof = True
        else:
            sess.conns.append(conn)
            self._send_json(conn, {"event": "started", "pid": pid})
        for fd in sess.outputs:
            self._watch(fd, read=self._reader(sess, fd))
        self._flush_stdin(sess)
        status = self.early.pop(pid, None)
        if not self.pending:
            self.early.clear()
        if status is not None:  # it exited (and was reaped) before we knew its pid
            sess.status = status
            sess.deadline = time.monotonic() + DRAIN_TIMEOUT
            if not sess.outputs:
                self._finish_session(sess)
        self._reap()  # it may have exited already (its SIGCHLD woke nobody yet)

    def _end_pending(self, pending: PendingExec) -> None:
        fd = pending.helper.res_r
        self.pending.pop(fd, None)
        self._forget(fd)
        pending.helper.close(wait=False)  # the loop reaps it if it has not exited yet

    def _fail_exec(self, pending: PendingExec, message: str, code: int) -> None:
        """Give up on an exec being made (its helper is killed or already gone)."""
        self._end_pending(pending)
        close_console(pending.sess)
        self._close_session_fds(pending.sess)
        pending.conn.session = None
        if not pending.conn.closed:
            self._exec_error(pending.conn, message, code)

    @staticmethod
    def _close_session_fds(sess: Session) -> None:
        for fd in {*sess.outputs, sess.stdin_fd} - {-1}:
            os.close(fd)
        sess.outputs = {}
        sess.stdin_fd = -1

    def _exec_error(self, conn: Conn, message: str, code: int) -> None:
        self._send_json(conn, {"event": "error", "message": message, "exit_code": code})
        conn.close_when_flushed = True
        self._flush_conn(conn)

    # ---- exit -----------------------------------------------------------------------------
    def _finish_session(self, sess: Session) -> None:
        if sess.done:
            return
        sess.done = True
        sess.deadline = None
        for fd in list(sess.outputs):
            self._close_output(sess, fd)
        if sess.stdin_fd >= 0 and sess.stdin_fd != sess.master:
            self._forget(sess.stdin_fd)
            os.close(sess.stdin_fd)
        if sess.master >= 0:
            self._forget(sess.master)
            os.close(sess.master)
        sess.stdin_fd = sess.master = -1
        self.by_pid.pop(sess.pid, None)
        status = sess.status if sess.status is not None else 0
        if sess is not self.init:
            for conn in sess.conns:
                self._send_json(conn, {"event": "exit", "exit_code": exit_code_of(status)})
                conn.close_when_flushed = True
                self._flush_conn(conn)
            return
        if sess.log is not None:
            sess.log.close()
        # the monitor is about to exit: from here on it may touch pages freely (no helpers)
        cgroup = open_cgroup(self.cgroup_name) if self.cgroup_name else None
        result = {
            "exit_code": self.forced_code if self.forced_code is not None else exit_code_of(status),
            "oom_killed": _oom_killed(cgroup),
            "finished_at": format_time(time.time_ns()),
            "error": self.error,
        }
        # execs still being made have nothing to join any more
        for pending in list(self.pending.values()):
            os.kill(pending.helper.pid, SIGKILL)
            self._fail_exec(pending, f"container {self.id} is not running", 126)
        # exec'd processes died with the PID namespace: give their clients an exit too
        for other in list(self.by_pid.values()):
            if other.status is None:
                other.status = _reap_now(other.pid)
            self._finish_session(other)
        atomic_write_json(os.path.join(self.dir, "exit.json"), result)
        self._close_listener()  # from now on a reconnect finds no socket and reads exit.json
        for conn in list(self.conns):
            if conn in sess.conns:
                self._send_json(conn, {"event": "exit", **result})
        self._flush_all()
        # the daemon knows the status now; the connections' EOF tells it that teardown is done
        _reap_all()
        if cgroup is not None and cgroup.exists():
            try:
                cgroup.destroy()
            except (OSError, SystemFailure) as exc:
                print(f"monitor: destroy cgroup {self.cgroup_name}: {exc}", file=sys.stderr)
        for conn in self.conns:
            conn.sock.close()

    def crashed(self, exc: BaseException) -> None:
        """A bug stopped the loop: kill the container and record why, so the daemon learns it."""
        if self.init.done or os.path.exists(os.path.join(self.dir, "exit.json")):
            return
        try:
            os.kill(self.init.pid, SIGKILL)
        except ProcessLookupError:
            pass  # it is gone already
        for pending in self.pending.values():
            os.kill(pending.helper.pid, SIGKILL)  # no helper outlives its monitor
        result = {"exit_code": 137, "oom_killed": False, "finished_at": format_time(time.time_ns()),
                  "error": f"monitor of container {self.id} failed: {exc!r}"}
        atomic_write_json(os.path.join(self.dir, "exit.json"), result)
        self._close_listener()
        for conn in list(self.conns):
            if conn in self.init.conns:
                self._send_json(conn, {"event": "exit", **result})
        self._flush_all()

    def _close_listener(self) -> None:
        if self.listener is not None:
            self._forget(self.listener.fileno())
            self.listener.close()
            self.listener = None
            try:
                os.unlink(os.path.join(self.dir, "monitor.sock"))
            except FileNotFoundError:
                pass

    def _flush_all(self) -> None:
        """Give every connection a last chance (1 s in all) to take its bytes."""
        deadline = time.monotonic() + 1.0
        for conn in list(self.conns):
            if conn.out and not conn.closed:
                try:
                    conn.sock.settimeout(max(0.01, deadline - time.monotonic()))
                    for buf in conn.out:
                        conn.sock.sendall(buf)
                except OSError:
                    pass  # the client is gone or stuck; the exit status is in exit.json anyway


def _oom_killed(cgroup: Cgroup | None) -> bool:
    try:
        return cgroup is not None and cgroup.exists() and cgroup.oom_killed()
    except (OSError, SystemFailure):
        return False  # the memory controller is gone or unreadable: no OOM is known


def _reap_all() -> None:
    """Reap whatever the kernel left us (the PID namespace's processes died with its init)."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass

def _reap_now(pid: int) -> int:
    """The wait status of ``pid`` if it is a zombie already, else that of a SIGKILL."""
    try:
        got, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        got, status = 0, 0
    return status if got else signal.SIGKILL


def _remove_tree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _read_request(sock: socket.socket) -> tuple[dict[str, Any], bytes]:
    """The create request: a small hello for the monitor, and the body only the helper parses."""
    decoder = P.FrameDecoder()
    frames: list[tuple[int, bytes]] = []
    while len(frames) < 2:
        data = sock.recv(READ_SIZE)
        if not data:
            raise EOFError("monitor: the daemon closed the connection before sending a request")
        frames += decoder.feed(data)
    if len(frames) > 2 or decoder.pending or any(kind != P.CONTROL for kind, _ in frames):
        raise P.ProtocolError("monitor: expected exactly a create hello and its body")
    return P.decode_json(frames[0][1]), frames[1][1]


def _set_name(name: bytes) -> None:
    """The process name (comm, 15 bytes) without ctypes: /proc/self/comm is writable."""
    try:
        with open("/proc/self/comm", "wb", buffering=0) as f:
            f.write(name[:15])
    except OSError:
        pass  # only cosmetic: ps shows the fork server's name instead


def _detach_stdio(log_path: str) -> None:
    """stdin/stdout to /dev/null, stderr to monitor.log: the monitor has no terminal."""
    null = os.open("/dev/null", os.O_RDWR)
    err = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(err, 2)
    os.close(null)
    os.close(err)

def main(daemon: socket.socket) -> None:
    """Run one container; called in the forked monitor process, which exits at the end."""
    code = 0
    try:
        daemon.setblocking(True)
        req, body = _read_request(daemon)
        exec_dir = os.path.join(req["exec_root"], req["id"])
        os.makedirs(exec_dir, mode=0o700, exist_ok=True)
        _detach_stdio(os.path.join(exec_dir, "monitor.log"))
        _set_name(b"berth-monitor")  # what ps -o comm / top show (the cmdline stays the fork server's)
        for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGCHLD, signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM):
            # handlers, not SIG_IGN: an ignored signal would stay ignored in the container's
            # process across execve (Python starts with SIGPIPE and SIGXFSZ ignored)
            _signal.signal(signum, _wake)
        from berth.libcontainer import kernel

        kernel.prctl(PR_SET_CHILD_SUBREAPER, 1)  # exec'd processes are double-forked into the pid ns
        mon = Monitor(req, daemon)
        created = mon.create(body)
        del body  # the spec is the helpers' business: nothing of it stays in the monitor
        if created:
            try:
                mon.run()
            except BaseException as exc:
                mon.crashed(exc)
                raise
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stderr.flush()
        os._exit(code)


def _wake(signum: int, frame: object) -> None:
    """No-op: the wakeup fd already told the loop; SIGINT/SIGHUP/SIGPIPE are thereby ignored."""
