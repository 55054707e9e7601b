"""The shim's service: the wire protocol of ``monitor.sock`` dispatched onto processes and a runtime.

One Service runs one container. ``create()`` asks the :class:`~berth.shim.runtime.Runtime` for
the init at its barrier and answers the daemon on the creation connection (``created`` or
``error``); from then on every connection (the daemon's, attach clients, execs, control lines)
speaks the frames of :mod:`berth.shim.protocol`:

- hello ``{"op": "attach"}``: the init's output and exit event, stdin to the init;
- hello ``{"op": "exec", "process", "stdin"}``: a process made in the container (``started`` /
  ``error``), its output, stdin and exit event;
- hello ``{"op": "control"[, "pid"]}``: requests only (the daemon's way around a stdin backlog);
- control frames ``{"op": start | pause | resume | signal | resize, "req": N}`` on any of them,
  each answered ``{"event": "reply", "req", "op", "error", "kind"}``.

Requests move the init through its states (:mod:`berth.shim.process`): start, pause and resume
run one at a time, each as a runtime operation the reactor polls with a deadline; signals and
resizes pass at once. Nothing waits: a slow exec or a stuck freeze holds up neither the
container's output nor other requests. When the init has exited and its output is drained,
``exit.json`` is written, the exit event sent, the runtime deletes the container and the
service is finished (``finished``).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any

from berth.container.logs import LogWriter, format_time
from berth.shim import protocol as P
from berth.shim import statefiles
from berth.shim.connection import Conn
from berth.shim.execs import Execs
from berth.shim.faults import crash_point
from berth.shim.process import PAUSED, STOPPED, IllegalMove, Process, Refused, exit_code_of
from berth.shim.reactor import Reactor
from berth.shim.runtime import Op, Result, Runtime
from berth.shim.stdio import close_console, make_stdio, take_master
from berth.shim.streams import READ_SIZE, Pump
from berth.shim.waiting import Waiter
from berth.steptrace import mark

DRAIN_TIMEOUT = 2.0  # seconds to wait for output EOF once the process has exited
# seconds a runtime operation may take (creating a container, mounts and namespaces, is far
# faster). Test hook, like the daemon's crash points (never set outside tests):
# BERTH_TEST_HELPER_TIMEOUT shortens it.
RESULT_TIMEOUT = float(os.environ.get("BERTH_TEST_HELPER_TIMEOUT") or 30.0)
STATE_TIMEOUT = 5.0  # seconds for the runtime's state and delete at the end
SIGKILL, SIGTERM, SIGCHLD = 9, 15, 17
TIOCSWINSZ = 0x5414
LIFECYCLE = ("start", "pause", "resume")
SETTLE = 0.1  # s after the start during which a sync waits for a runnable init (_sync)


def _runnable(pid: int) -> bool:
    """Whether the process is in state R (running or waiting for a CPU) or D (in the kernel,
    uninterruptibly: its execve reading the binary, a page fault), i.e. still on its way."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] in (b"R", b"D")


class Service:
    """One container's shim: processes, connections, requests, the exit."""

    def __init__(self, req: dict[str, Any], daemon: socket.socket, runtime: Runtime, reactor: Reactor) -> None:
        self.req = req
        self.id: str = req["id"]
        self.dir = os.path.join(req["exec_root"], self.id)
        self.reactor = reactor
        self.runtime = runtime
        self.pump = Pump(reactor, self)
        self.daemon = Conn(daemon, "daemon", reactor, self)
        self.init = Process(bool(req.get("tty")))
        self.by_pid: dict[int, Process] = {}
        self.conns: list[Conn] = []
        self.listener: socket.socket | None = None
        self.started_at = ""
        self.error = ""
        self.forced_code: int | None = None
        self.ops = Waiter(reactor, getattr(runtime, "worker", "the runtime"))
        self.execs = Execs(self)
        self.queue: list[tuple[Conn, dict[str, Any]]] = []  # start/pause/resume, one at a time
        self.busy = False
        self.starting = False  # a start is being made: the daemon going away no longer stops it
        self.started_mono = 0.0  # time.monotonic() at the start's reply (sync's settle window)
        self.terminated = False  # SIGTERM before the init existed
        self.finished = False
        self.held_mnt_ns = -1  # the init's mount namespace, held open from `created` to the exit's report

    # ---- operations -----------------------------------------------------------------------
    def wait_op(self, op: Op, on_result: Callable[[Result], None], code: int = 128,
                timeout: float = RESULT_TIMEOUT) -> None:
        """``on_result`` gets the op's result, or an error at the deadline (berth.shim.waiting)."""
        self.ops.wait(op, on_result, code, timeout)

    # ---- creation -------------------------------------------------------------------------
    def create(self) -> None:
        """Have the runtime make the init at its barrier; the daemon hears of it when it is."""
        req = self.req
        try:
            os.unlink(os.path.join(self.dir, statefiles.EXIT_FILE))  # a previous run's
        except FileNotFoundError:
            pass
        stdio, child_fds = make_stdio(self.init, self.init.tty, bool(req.get("open_stdin")))
        try:
            op = self.runtime.create(stdio)
            mark("m:given")
        except (OSError, Refused) as exc:
            op = None
            self._create_failed(Result(error=f"create container {self.id}: {exc}", exit_code=128))
        finally:
            for fd in child_fds:
                os.close(fd)
        if op is not None and req.get("log_path"):  # while the runtime creates (nothing to log before the start)
            self.init.log = LogWriter(req["log_path"], int(req.get("log_max_size") or 0),
                                      int(req.get("log_max_files") or 1), bool(req.get("log_compress")))
        if op is not None:
            self.wait_op(op, self._created)

    def _created(self, result: Result) -> None:
        mark("m:created")
        init = self.init
        if init.console is not None:  # a tty: its master, from the container's devpts
            result = self.receive_master(init, result, f"create container {self.id}", 128)
        if not result.ok:
            self._create_failed(result)
            return
        init.pid = result.pid
        self.by_pid[init.pid] = init
        init.conns.append(self.daemon)
        self._write_state("")
        self._listen()
        self._add_conn(self.daemon)
        self.daemon.send_json({"event": "created", "pid": init.pid, "monitor_pid": os.getpid()})
        mark("m:created-sent")
        crash_point("created")
        self._hold_mount_namespace(init.pid)
        self.pump.watch_outputs(init)
        if self.terminated:
            self._abandon("monitor stopped by SIGTERM")
        self.reap()  # the init may already be gone

    def _hold_mount_namespace(self, pid: int) -> None:
        """Keep the init's mount namespace alive past its exit (until the exit is reported).

        The last process of a mount namespace tears it down in its exit, before its parent
        hears of it: every mount unmounted, an RCU grace period waited for, the superblocks
        (the rootfs overlay, /proc, /dev, ...) shut down. Held here, that happens when the shim
        lets go, after it told the daemon. The init is our child and not reaped yet, so the pid
        is still its own; an init gone already (or not in /proc) just has nothing held."""
        try:
            self.held_mnt_ns = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            pass

    def _release_mount_namespace(self) -> None:
        if self.held_mnt_ns >= 0:
            os.close(self.held_mnt_ns)  # the namespace's teardown, in this call
            self.held_mnt_ns = -1

    def receive_master(self, proc: Process, result: Result, what: str, code: int) -> Result:
        """Receive the pty master of a process the runtime made (``result`` has its pid); the
        result, or an error if the master is missing (the process is then killed)."""
        if not result.ok:
            close_console(proc)
            return result
        try:
            take_master(proc)
        except OSError as exc:
            os.kill(result.pid, SIGKILL)  # an init at its barrier too; reaped as an orphan
            return Result(error=f"{what}: receive the console: {exc}", exit_code=code)
        return result

    def _create_failed(self, result: Result) -> None:
        """Nothing is left behind: the cgroup, the log, the directory; then the daemon hears why."""
        self.wait_op(self.runtime.delete(), lambda _res: None, timeout=STATE_TIMEOUT)
        if self.init.log is not None:
            self.init.log.close()
        from berth.libcontainer.removetree import remove_tree

        # before answering (the daemon may look right after); never through a rootfs or volume
        # mount the runtime's delete could not undo
        remove_tree(self.dir)
        self.daemon.sock.setblocking(True)
        self.daemon.sock.sendall(P.encode_json({"event": "error", "message": result.error,
                                                "exit_code": result.exit_code or 128}))
        self.finished = True

    def _write_state(self, started_at: str) -> None:
        self.started_at = started_at
        statefiles.write_state(self.dir, os.getpid(), self.init.pid, started_at)

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
        self.reactor.watch(sock.fileno(), read=self._accept)

    # ---- signals and reaping --------------------------------------------------------------
    def on_signals(self, got: bytes) -> None:
        if SIGTERM in got and self.init.status is None:
            # someone stops the shim: stop its container rather than orphan it, and record it
            if self.init.pid:
                self._abandon("monitor stopped by SIGTERM")
            else:
                self.terminated = True
        self.reap()

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            proc = self.by_pid.get(pid)
            if proc is None and self.runtime.reaped(pid, status):
                continue  # a command the runtime ran itself: its status is its operation's
            if proc is None and self.execs.reaped_unknown(pid, status):
                continue  # maybe an exec'd process whose runtime answer is on its way
            if proc is None or proc.status is not None:
                continue  # a helper, or an exec'd process whose runtime failed after all
            self.exited(proc, status)

    def exited(self, proc: Process, status: int) -> None:
        mark("m:exit")
        proc.status = status
        proc.state = proc.state.exit()
        if proc.outputs:
            proc.drain = self.reactor.call_at(time.monotonic() + DRAIN_TIMEOUT, lambda: self._drain_due(proc))
        else:
            self._finish(proc)

    def _drain_due(self, proc: Process) -> None:
        proc.drain = None
        if proc.throttled:
            # still output to deliver to a slow client: not a stuck pipe, keep going
            proc.drain = self.reactor.call_at(time.monotonic() + DRAIN_TIMEOUT, lambda: self._drain_due(proc))
        else:
            self._finish(proc)

    def outputs_closed(self, proc: Process) -> None:
        if proc.status is not None:
            self._finish(proc)

    # ---- connections ----------------------------------------------------------------------
    def _accept(self) -> None:
        assert self.listener is not None
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        self._add_conn(Conn(sock, "new", self.reactor, self))

    def _add_conn(self, conn: Conn) -> None:
        self.conns.append(conn)
        self.reactor.watch(conn.fd, read=self.conn_reader(conn))

    def conn_reader(self, conn: Conn) -> Callable[[], None]:
        return lambda: self._on_readable(conn)

    def _on_readable(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close_conn(conn)
            return
        try:
            for kind, payload in conn.decoder.feed(data):
                self._on_frame(conn, kind, payload)
        except (P.ProtocolError, ValueError, TypeError, KeyError, AttributeError) as exc:
            # a client's bad input ends that client, never the container
            conn.send(P.encode(P.ERROR, str(exc).encode()))
            self.close_conn(conn)

    def _on_frame(self, conn: Conn, kind: int, payload: bytes) -> None:
        if conn.closed:
            return
        if conn.role == "new":
            if kind != P.CONTROL:
                raise P.ProtocolError("monitor connection: the first frame must be a JSON hello")
            self._on_hello(conn, P.decode_json(payload))
            return
        proc = conn.process if conn.role in ("exec", "control") else self.init
        if proc is None:
            if kind == P.CONTROL:  # a control connection for an exec that is gone
                msg = P.decode_json(payload)
                self._reply(conn, msg, f"{msg.get('op')}: the process is not running", "conflict")
            return
        if kind == P.STDIN:
            self.pump.stdin(proc, conn, payload)
        elif kind == P.STDIN_EOF:
            proc.stdin_eof = True
            self.pump.flush_stdin(proc)
        elif kind == P.CONTROL:
            self._request(proc, conn, P.decode_json(payload))

    def _on_hello(self, conn: Conn, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        if op == "attach":
            conn.role = "attach"
            self.init.conns.append(conn)
            conn.send_json({"event": "attached", "pid": self.init.pid, "monitor_pid": os.getpid(),
                            "started": self.init.started, "paused": self.init.state is PAUSED,
                            "started_at": self.started_at})
        elif op == "exec":
            conn.role = "exec"
            self.execs.start(conn, msg)
        elif op == "control":
            # requests only, no output: "pid" names an exec'd process, else the container's init
            conn.role = "control"
            pid = msg.get("pid")
            conn.process = self.init if not pid else self.by_pid.get(int(pid))
            if conn.process is self.init and pid:
                conn.process = None  # the init's pid is not an exec's
        else:
            raise P.ProtocolError(f"monitor connection: unknown hello op {op!r}")

    def close_conn(self, conn: Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        self.reactor.forget(conn.fd)
        conn.sock.close()
        if conn in self.conns:
            self.conns.remove(conn)
        for proc in [self.init, *self.by_pid.values()]:
            if conn in proc.conns:
                proc.conns.remove(conn)
                self.pump.maybe_unthrottle(proc)
        if (conn is self.daemon and not self.init.started and not self.starting and self.init.status is None
                and self.init.pid):
            self._abandon("daemon went away before start")
        if conn.role == "exec" and conn.process is not None and conn.process.status is None:
            # nobody reads this exec any more: its output is discarded, its stdin closed
            conn.process.stdin_eof = True
            self.pump.flush_stdin(conn.process)

    def conn_drained(self, conn: Conn) -> None:
        for proc in (self.init, *self.by_pid.values()):
            if proc.throttled and conn in proc.conns:
                self.pump.maybe_unthrottle(proc)

    def _abandon(self, why: str) -> None:
        """Kill the container; its exit is recorded with ``why`` (and code 128 if it never ran)."""
        self.error = why
        if not self.init.started:
            self.forced_code = 128
        try:
            self.runtime.kill(0, SIGKILL)
        except ProcessLookupError:
            pass  # it is gone already; its exit is on its way

    def _reply(self, conn: Conn, msg: dict[str, Any], error: str, kind: str) -> None:
        conn.send_json({"event": "reply", "req": msg.get("req"), "op": msg.get("op"), "error": error, "kind": kind})

    # ---- requests -------------------------------------------------------------------------
    def _request(self, proc: Process, conn: Conn, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        what = f"{op} container {self.id}"
        if op in LIFECYCLE and proc is self.init:
            self.queue.append((conn, msg))
            self._next()
            return
        try:
            if op == "resize":
                self._resize(proc, msg)
            elif op == "signal":
                self._signal(proc, int(msg["signal"]))
            elif op == "sync":
                self._sync(proc, conn, msg)
                return
            else:
                raise Refused("invalid", f"unknown op {op!r}")
        except Refused as exc:
            self._reply(conn, msg, f"{what}: {exc}", exc.kind)
        except ProcessLookupError:
            self._reply(conn, msg, f"{what}: the process is not running", "conflict")
        except (ValueError, KeyError, TypeError) as exc:
            self._reply(conn, msg, f"{what}: bad request: {exc!r}", "invalid")
        except OSError as exc:
            self._reply(conn, msg, f"{what}: {exc}", "system")
        else:
            self._reply(conn, msg, "", "")

    def _sync(self, proc: Process, conn: Conn, msg: dict[str, Any]) -> None:
        """``sync``: answered once what the process wrote so far is in the log. Within
        ``SETTLE`` of the start, an init still on its way (state R or D: it has not reached its
        first write or a wait yet; on a busy host it may not have had a CPU since its execve) is
        waited for, polled each ms: `docker start X; docker logs X` then sees what a command
        prints at once, as dockerd's slower path lets it (docs/decisions.md)."""
        if conn.closed:
            return
        self.pump.drain(proc)
        now = time.monotonic()
        if (proc is self.init and proc.started and now < self.started_mono + SETTLE
                and proc.outputs and _runnable(proc.pid)):
            self.reactor.call_at(now + 0.001, lambda: self._sync(proc, conn, msg))
            return
        self._reply(conn, msg, "", "")

    @staticmethod
    def _resize(proc: Process, msg: dict[str, Any]) -> None:
        if proc.master < 0:
            return  # no terminal: nothing to resize (containerd's shim answers the same)
        import fcntl
        import struct

        fcntl.ioctl(proc.master, TIOCSWINSZ, struct.pack("HHHH", int(msg["h"]), int(msg["w"]), 0, 0))

    def _signal(self, proc: Process, signum: int) -> None:
        # before start the init is held at its barrier: Docker too says "not running"; the
        # daemon drops the connection to discard it
        proc.state.signal_allowed()
        if proc.status is not None:
            raise ProcessLookupError
        self.runtime.kill(0 if proc is self.init else proc.pid, signum)
        if proc is self.init and signum == SIGKILL and proc.state is PAUSED:
            # a frozen task cannot die until it is thawed
            proc.state = proc.state.resume()
            self.wait_op(self.runtime.resume(), lambda _res: None)

    def _next(self) -> None:
        """Run the next start/pause/resume of the init, once the one before it is done."""
        while self.queue and not self.busy:
            conn, msg = self.queue.pop(0)
            op = msg.get("op")
            init = self.init
            try:
                if op == "start":
                    init.state.start()
                    mark("m:start")
                    rop = self.runtime.start()
                    self.starting = True
                elif op == "pause":
                    init.state.pause()
                    rop = self.runtime.pause()
                else:
                    init.state.resume()
                    rop = self.runtime.resume()
            except Refused as exc:
                self._reply(conn, msg, f"{op} container {self.id}: {exc}", exc.kind)
                continue
            except OSError as exc:
                self._reply(conn, msg, f"{op} container {self.id}: {exc}", "system")
                continue
            self.busy = True
            self.wait_op(rop, self._lifecycle_reply(conn, msg))

    def _lifecycle_reply(self, conn: Conn, msg: dict[str, Any]) -> Callable[[Result], None]:
        return lambda res: self._lifecycle_done(conn, msg, res)

    def _lifecycle_done(self, conn: Conn, msg: dict[str, Any], res: Result) -> None:
        self.busy = self.starting = False
        op = str(msg.get("op"))
        init = self.init
        if not res.ok:
            if op == "start":
                # the process could not be exec'd after all (init exits 127/126 and is reaped):
                # the runtime's text as is
                self._reply(conn, msg, res.error, f"start:{res.exit_code or 128}")
            else:
                self._reply(conn, msg, f"{op} container {self.id}: {res.error}", "system")
        elif op == "start":
            mark("m:start-done")
            crash_point("started")
            init.started = True
            if init.state is not STOPPED:  # a process that ran and exited at once has started too
                init.state = init.state.start()
            started_at = format_time(time.time_ns())
            self.started_mono = time.monotonic()
            # the reply first: state.json is for a daemon that finds this monitor again, and is
            # written before the loop reads the next request
            self._reply(conn, msg, "", "")
            mark("m:started")
            self._write_state(started_at)
            self.pump.flush_stdin(init)
        else:
            try:
                init.state = init.state.pause() if op == "pause" else init.state.resume()
            except IllegalMove as exc:  # it exited meanwhile
                self._reply(conn, msg, f"{op} container {self.id}: {exc}", exc.kind)
            else:
                self._reply(conn, msg, "", "")
        self._next()
        if not self.busy and init.status is not None and not init.done and (not init.outputs or init.drain is None):
            self._finish(init)  # its exit waited for the requests' answers

    # ---- the end --------------------------------------------------------------------------
    def _finish(self, proc: Process) -> None:
        if proc.done:
            return
        if proc is self.init and self.busy:
            return  # a start (or pause) is being answered first; _lifecycle_done comes back here
        proc.done = True
        self.reactor.cancel(proc.drain)
        proc.drain = None
        self.pump.close_all(proc)
        self.by_pid.pop(proc.pid, None)
        status = proc.status if proc.status is not None else 0
        if proc is not self.init:
            for conn in proc.conns:
                conn.send_json({"event": "exit", "exit_code": exit_code_of(status)})
                conn.close_when_flushed = True
                conn.flush()
            return
        if proc.log is not None:
            proc.log.close()
        self.wait_op(self.runtime.state(), lambda res: self._record_exit(status, res), timeout=STATE_TIMEOUT)

    def _record_exit(self, status: int, res: Result) -> None:
        oom = bool(res.ok and res.value is not None and res.value.oom_killed)
        result = {
            "exit_code": self.forced_code if self.forced_code is not None else exit_code_of(status),
            "oom_killed": oom,
            "finished_at": format_time(time.time_ns()),
            "error": self.error,
        }
        # execs still being made have nothing to join any more
        self.ops.abandon_all(f"container {self.id} is not running", 126)
        # exec'd processes died with the PID namespace: give their clients an exit too
        for other in list(self.by_pid.values()):
            if other.status is None:
                other.status = _reap_now(other.pid)
            self._finish(other)
        statefiles.write_exit(self.dir, result)
        crash_point("exit-recorded")
        self._close_listener()  # from now on a reconnect finds no socket and reads exit.json
        for conn in list(self.conns):
            if conn in self.init.conns:
                conn.send_json({"event": "exit", **result})
        self._flush_all()
        mark("m:exit-sent")
        # the daemon knows the status now; the connections' EOF tells it that teardown is done
        self._release_mount_namespace()
        _reap_all()
        self.wait_op(self.runtime.delete(), self._deleted, timeout=STATE_TIMEOUT)

    def _deleted(self, res: Result) -> None:
        if not res.ok:
            print(f"monitor: delete container {self.id}: {res.error}", file=_stderr())
        for conn in self.conns:
            conn.closed = True
            self.reactor.forget(conn.fd)
            conn.sock.close()
        self.conns.clear()
        self.finished = True
        mark("m:deleted")

    def crashed(self, exc: BaseException) -> None:
        """A bug stopped the loop: kill the container and record why, so the daemon learns it."""
        if self.init.done or not self.init.pid or os.path.exists(os.path.join(self.dir, statefiles.EXIT_FILE)):
            return
        try:
            os.kill(self.init.pid, SIGKILL)
        except ProcessLookupError:
            pass  # it is gone already
        self.ops.kill_all()  # no helper outlives its shim
        result = {"exit_code": 137, "oom_killed": False, "finished_at": format_time(time.time_ns()),
                  "error": f"monitor of container {self.id} failed: {exc!r}"}
        statefiles.write_exit(self.dir, result)
        self._close_listener()
        for conn in list(self.conns):
            if conn in self.init.conns:
                conn.send_json({"event": "exit", **result})
        self._flush_all()

    def _close_listener(self) -> None:
        if self.listener is not None:
            self.reactor.forget(self.listener.fileno())
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
            conn.finish(deadline)


def _stderr() -> Any:
    import sys

    return sys.stderr


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
    return status if got else SIGKILL
