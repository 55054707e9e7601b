"""The ``native`` exec driver: containers run by berth's own libcontainer, one monitor each.

The daemon never forks into namespaces: :meth:`NativeDriver.startup` starts the fork server
(``python -m berth.shim.forkserver``, once), and :meth:`NativeDriver.create` asks it for a
monitor by passing one end of a fresh socketpair (``SCM_RIGHTS``). The daemon then talks to the
monitor directly on the other end: the create request, the answer (``created`` or the init's
error), and from then on the container's attach channel (see :mod:`berth.drivers.exec.handle`).

    driver = NativeDriver(Path("/run/berth"), "berth-abc")
    await driver.startup()
    handle = await driver.create(CreateRequest(...))     # init waits at the barrier
    await handle.start()
    status = await handle.wait()
    await driver.cleanup(handle.id)

After a daemon restart, :meth:`reconnect` attaches to a live monitor through
``<exec_root>/<id>/monitor.sock`` or, when the monitor is gone, returns the recorded
:class:`ExitStatus` from ``exit.json``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from berth.drivers.exec.channel import MonitorChannel, first_event, hello
from berth.drivers.exec.handle import MonitorHandle, read_exit_file
from berth.drivers.exec.model import CreateRequest, ExitStatus
from berth.drivers.exec.view import View, open_view
from berth.errors import Conflict, ContainerStartError, SystemFailure, Unavailable
from berth.libcontainer.cgroups import ResourceUpdate, Stats, open_cgroup, placeholder
from berth.libcontainer.removetree import remove_tree
from berth.shim import oci
from berth.shim import protocol as P
from berth.steptrace import mark

log = logging.getLogger(__name__)
SECCOMP_CACHE = "seccomp"  # <exec root>/seccomp/<sha256>.bpf: compiled profiles (libcontainer.seccomp)
# <exec root>/standby-sample.json: a recent create's body, what the fork server's standby helpers
# rehearse their work on while they wait (berth.shim.native.standby_ahead)
STANDBY_SAMPLE = "standby-sample.json"
SAMPLE_EVERY = 10.0  # seconds between two samples written
SUN_PATH_MAX = 107  # sockaddr_un.sun_path holds 108 bytes with the NUL


CGROUP_FILE = "cgroup"  # <exec root>/<id>/cgroup: the container's cgroup path
AHEAD_DELAY = 0.05  # seconds after a create took the connection handed out ahead until the next (sooner: its start)

class NativeDriver:
    """Creates containers through the fork server and reattaches to their monitors."""

    name = "native"

    def __init__(self, exec_root: Path, cgroup_parent: str, cgroup_root: Path = Path("/sys/fs/cgroup")) -> None:
        self.exec_root = Path(exec_root)
        self.cgroup_parent = cgroup_parent.strip("/")
        self.cgroup_root = Path(cgroup_root)
        self._control: socket.socket | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._live: dict[str, MonitorHandle] = {}  # the handles this driver made, until cleanup
        self._ready: asyncio.Future[bytes] | None = None  # the fork server's "ready"
        # our end of a connection whose shim (the fork server's spare, handed it ahead) waits for
        # a create request: a create writes to it at once, without the fork server's hop
        self._ahead: socket.socket | None = None
        self._handing: asyncio.Task[None] | None = None
        self._handing_now: asyncio.Event | None = None  # set: the pending hand-out goes now
        self._sample_due = 0.0  # when the next create's body is written as the standbys' sample

    # ---- fork server ----------------------------------------------------------------------
    async def startup(self) -> None:
        """Start the fork server. Its imports (~0.1-0.2 s) go on in the background: the daemon
        can serve requests at once, and the first create waits until the fork server is ready."""
        self.exec_root.mkdir(parents=True, exist_ok=True)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "berth.shim.forkserver", str(theirs.fileno()),
                str(self.exec_root / SECCOMP_CACHE), self.cgroup_parent, str(self.exec_root / STANDBY_SAMPLE),
                pass_fds=(theirs.fileno(),), stdin=asyncio.subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        ours.setblocking(False)
        self._control = ours
        self._ready = asyncio.ensure_future(_read_ready(ours))
        self._hand_ahead(0)

    def hurry(self) -> None:
        """The fork server warms up at a low priority (nice 19) so that it does not slow the
        daemon's own start-up: give it its normal priority now (the daemon serves, or a create
        waits for it). It does so itself before its first fork."""
        if self._proc is None or self._proc.returncode is not None or (self._ready is not None and self._ready.done()):
            return
        try:
            os.setpriority(os.PRIO_PROCESS, self._proc.pid, 0)
        except OSError as exc:  # gone meanwhile, or not ours to change: it sets itself back anyway
            log.debug("fork server %d: set nice value 0: %s", self._proc.pid, exc)

    async def ready(self) -> None:
        """Wait until the fork server has imported everything; SystemFailure if it never does."""
        if self._ready is None:
            raise Unavailable("the fork server is not running (driver not started)")
        try:
            answer = await asyncio.shield(self._ready)
        except (TimeoutError, OSError):
            answer = b""
        if answer != b"ready":
            raise SystemFailure("start fork server: it exited or did not answer (see the daemon's stderr)")

    async def shutdown(self) -> None:
        """Stop the fork server; running containers and their monitors go on. The cgroup
        parent is removed if no container is left in it (never killing anything there)."""
        await self._stop_fork_server()
        if self.cgroup_parent:
            parent = open_cgroup(self.cgroup_parent, self.cgroup_root)
            try:
                # the fork server's standbys remove their cgroup placeholders as they go; one
                # killed together with its spare cannot (berth.libcontainer.cgroups.placeholder)
                await asyncio.to_thread(placeholder.sweep, self.cgroup_parent, str(self.cgroup_root))
                await asyncio.to_thread(parent.remove_if_empty)
            except (OSError, SystemFailure) as exc:
                # the daemon stops anyway; an empty directory left behind is harmless
                log.warning("remove cgroup parent %s: %s", self.cgroup_parent, exc)

    async def _stop_fork_server(self) -> None:
        await self._drop_ahead()
        if self._ready is not None:
            if not self._ready.done():
                self._ready.cancel()
            await asyncio.gather(self._ready, return_exceptions=True)  # its outcome no longer matters
            self._ready = None
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._proc is not None:
            try:
                await asyncio.wait_for(self._proc.wait(), 5)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
            self._proc = None

    async def _spawn(self, fd: int, kind: bytes = b"spawn", restart: bool = True) -> None:
        """Hand ``fd`` to the fork server; a fork server that died is started again once
        (not ``restart``: that is left to the next create)."""
        for attempt in (1, 2) if restart else (2,):
            ctl = self._control
            if ctl is None:
                raise Unavailable("create container: the fork server is not running (driver not started)")
            if kind != b"ahead":
                self.hurry()  # somebody waits for this one
            try:
                await self.ready()
                await self._send_fd(ctl, fd, kind)
                return
            except (OSError, SystemFailure) as exc:
                if attempt == 2:
                    raise Unavailable(f"create container: the fork server is gone: {exc}") from exc
                log.warning("fork server gone (%s); starting it again", exc)
                await self._stop_fork_server()
                await self.startup()

    # ---- the connection handed out ahead ---------------------------------------------------
    def _hand_ahead(self, delay: float) -> None:
        """Have the fork server give a shim our next connection, ``delay`` seconds from now
        (or sooner: :meth:`_hand_ahead_now`)."""
        if self._handing is None or self._handing.done():
            self._handing_now = asyncio.Event()
            self._handing = asyncio.ensure_future(self._handed_ahead(delay, self._handing_now))

    def _hand_ahead_now(self) -> None:
        """A container was started: the hand-out waiting for its delay goes now. The spare shim
        the fork server forks for it (and its standby and twin) then set themselves up while the
        started container runs, not while the next create waits: in a loop of ``docker run`` the
        next create came 5-30 ms after the hand-out 50 ms after the create before."""
        if self._handing_now is not None:
            self._handing_now.set()

    async def _handed_ahead(self, delay: float, now: asyncio.Event) -> None:
        if delay:
            try:
                await asyncio.wait_for(now.wait(), delay)
            except TimeoutError:
                pass
        if self._ahead is not None or self._control is None:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            await self._spawn(theirs.fileno(), b"ahead", restart=False)
        except BaseException as exc:
            ours.close()
            if isinstance(exc, Exception):  # the next create hands its own connection out
                log.warning("hand a connection to a shim ahead: %s", exc)
                return
            raise
        finally:
            theirs.close()
        if self._ahead is not None or self._control is None:
            ours.close()  # one was handed meanwhile, or the driver stopped
            return
        self._ahead = ours

    def _take_ahead(self) -> socket.socket | None:
        """The connection handed out ahead, if its shim still waits (else None)."""
        sock, self._ahead = self._ahead, None
        if sock is None:
            return None
        try:
            sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)  # b"" (EOF) or data: not a waiting shim
        except BlockingIOError:
            return sock
        except OSError:
            pass
        sock.close()
        return None

    async def _drop_ahead(self) -> None:
        """Let the shim handed a connection ahead go, and wait (up to 2 s) until it (and its
        standby helper, with its cgroup placeholder) has."""
        if self._handing is not None and self._handing is not asyncio.current_task():
            self._handing.cancel()
            await asyncio.gather(self._handing, return_exceptions=True)
            self._handing = None
        sock, self._ahead = self._ahead, None
        if sock is None:
            return
        loop = asyncio.get_running_loop()
        try:
            sock.setblocking(False)
            sock.shutdown(socket.SHUT_WR)
            await asyncio.wait_for(loop.sock_recv(sock, 1), 2)  # EOF once the shim has exited
        except (OSError, TimeoutError):
            pass  # gone already, or stuck: nobody waits for it
        finally:
            sock.close()

    def _kick(self) -> None:
        """Tell the fork server a container was handed out (its cgroup warmer goes to work)."""
        if self._control is not None:
            try:
                self._control.send(b"kick")
            except OSError:
                pass  # a full or broken control socket: the warming is only an optimisation

    @staticmethod
    async def _send_fd(ctl: socket.socket, fd: int, kind: bytes = b"spawn") -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                socket.send_fds(ctl, [kind], [fd])
                return
            except BlockingIOError:
                ready = loop.create_future()
                loop.add_writer(ctl.fileno(), ready.set_result, None)
                try:
                    await ready
                finally:
                    loop.remove_writer(ctl.fileno())

    async def view(self, request: dict[str, Any]) -> View:
        """A container's file-system view for docker cp (:mod:`berth.libcontainer.view`)."""
        return await open_view(self._spawn, request)

    # ---- containers -----------------------------------------------------------------------
    def exec_dir(self, cid: str) -> Path:
        return self.exec_root / cid

    def cgroup_name(self, cid: str) -> str:
        """The container's cgroup: the spec's ``cgroupsPath`` as recorded at create (a
        ``HostConfig.CgroupParent`` puts it elsewhere), else ``<cgroup parent>/<id>``."""
        try:
            recorded = (self.exec_dir(cid) / CGROUP_FILE).read_text().strip()
        except FileNotFoundError:
            recorded = ""
        if recorded:
            return recorded
        return f"{self.cgroup_parent}/{cid}" if self.cgroup_parent else cid

    async def create(self, req: CreateRequest) -> MonitorHandle:
        """Spawn the monitor and the init; returns when init waits at the barrier.

        Raises ContainerStartError (127/126/128) when init fails; no monitor is left then.
        """
        cgroup = self.cgroup_of(req)
        if req.bundle:  # (the container's log may be in it: the shim opens that)
            Path(req.bundle).mkdir(mode=0o700, parents=True, exist_ok=True)
        # the bundle's config.json and the cgroup record are written (a thread) while the fork
        # server hands the container to a shim: the shim reads neither (its spec comes with the
        # request), and the create returns only once both are written
        body = {
            "spec": req.spec,
            "rootfs_mounts": [[m.type, m.source, m.target, list(m.options)] for m in req.rootfs_mounts],
        }
        payload = P.dumps(body)
        sample = payload if req.runtime is None and time.monotonic() >= self._sample_due else None
        if sample is not None:
            self._sample_due = time.monotonic() + SAMPLE_EVERY
        written = asyncio.ensure_future(asyncio.to_thread(self._write_records, req, cgroup, sample))
        request = {
            "op": "create",
            "id": req.id,
            "exec_root": str(self.exec_root),
            "bundle": str(req.bundle) if req.bundle else "",
            "cgroup": cgroup,
            "tty": req.tty,
            "open_stdin": req.open_stdin,
            "log_path": str(req.log_path) if req.log_path else "",
            "log_max_size": req.log_max_size,
            "log_max_files": req.log_max_files,
            "log_compress": req.log_compress,
        }
        if req.runtime is not None:  # the oci exec driver: the monitor drives this binary
            root = self.exec_root / f"runtime-{req.runtime.name}"
            root.mkdir(mode=0o700, exist_ok=True)
            request["runtime"] = {"name": req.runtime.name, "path": req.runtime.path,
                                  "args": list(req.runtime.args), "root": str(root)}
        # the body travels as a second frame: only the monitor's short-lived helper parses it
        frames = P.encode_json(request) + P.encode(P.CONTROL, payload)
        if self._proc is not None and self._proc.returncode is not None:
            # the fork server died: a connection handed to it ahead may have died unread in its
            # queue, and under load a peek still found such a one open after the fork server was
            # reaped (the create then met a reset); it is let go, the fork server started again below
            await self._drop_ahead()
        ours = self._take_ahead()
        if ours is not None:
            self._kick()
        else:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                await self._spawn(theirs.fileno())
            except BaseException:
                ours.close()
                await asyncio.gather(written, return_exceptions=True)
                raise
            finally:
                theirs.close()
        self._hand_ahead(AHEAD_DELAY)
        mark("d:handed")
        # the request goes out now, before the streams are set up (that yields to the loop)
        ours.setblocking(False)
        try:
            sent = ours.send(frames)
        except OSError:  # full (the rest goes below), or broken: the writer below meets it too
            sent = 0
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        try:
            if sent < len(frames):
                writer.write(frames[sent:])
                await writer.drain()
            ev = await first_event(reader)
            mark("d:created")
        except (ConnectionError, P.ProtocolError) as exc:
            writer.close()
            await asyncio.gather(written, return_exceptions=True)
            raise SystemFailure(f"create container {req.id}: monitor connection broke: {exc}") from exc
        try:
            await written
        except BaseException:
            writer.close()  # before its start the monitor kills the init when the daemon lets go
            raise
        finally:
            if ev is not None and ev.get("event") == "error":
                # the monitor removed the exec dir before answering; the record may have come after
                await asyncio.to_thread(remove_tree, self.exec_dir(req.id))
        if ev is None or ev.get("event") not in ("created", "error"):
            writer.close()
            raise SystemFailure(f"create container {req.id}: the monitor exited without an answer "
                                f"(see {self.exec_dir(req.id) / 'monitor.log'}): {ev}")
        if ev["event"] == "error":
            writer.close()
            raise ContainerStartError(str(ev.get("message")), int(ev.get("exit_code", 128)))
        channel = MonitorChannel(f"container {req.id}", reader, writer)
        handle = MonitorHandle(req.id, self.exec_dir(req.id), channel, int(ev["pid"]), int(ev["monitor_pid"]),
                        False, lambda: self._connect(req.id))
        handle.on_started = self._hand_ahead_now
        channel.begin()
        handle.prepare()
        self._live[req.id] = handle
        return handle

    def cgroup_of(self, req: CreateRequest) -> str:
        """The container's cgroup: the spec's ``cgroupsPath``, else ``<cgroup parent>/<id>``."""
        path = str(((req.spec or {}).get("linux") or {}).get("cgroupsPath") or "").strip("/")
        return path or (f"{self.cgroup_parent}/{req.id}" if self.cgroup_parent else req.id)

    def _write_records(self, req: CreateRequest, cgroup: str, sample: bytes | None = None) -> None:
        if req.bundle:
            _write_config(Path(req.bundle), req.spec)
        self._record_cgroup(req.id, cgroup)
        if sample is not None:
            _write_sample(self.exec_root / STANDBY_SAMPLE, sample)

    def _record_cgroup(self, cid: str, name: str) -> None:
        """Write down where the container's cgroup is, for stats, top, update and cleanup
        (also after a daemon restart: the exec dir lives as long as the container)."""
        directory = self.exec_dir(cid)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # root's alone, as the monitor makes it
        tmp = directory / (CGROUP_FILE + ".tmp")
        tmp.write_text(name + "\n")
        os.replace(tmp, directory / CGROUP_FILE)

    async def reconnect(self, cid: str) -> MonitorHandle | ExitStatus:
        """Attach to the live monitor of ``cid``, or read the status it left when it is gone."""
        try:
            reader, writer = await self._connect(cid)
        except (FileNotFoundError, ConnectionRefusedError):
            return read_exit_file(self.exec_dir(cid), cid)
        try:
            ev = await hello(reader, writer, {"op": "attach"})
        except (ConnectionError, P.ProtocolError):
            ev = None
        if ev is None or ev.get("event") != "attached":
            writer.close()
            return read_exit_file(self.exec_dir(cid), cid)
        channel = MonitorChannel(f"container {cid}", reader, writer)
        handle = MonitorHandle(cid, self.exec_dir(cid), channel, int(ev["pid"]), int(ev["monitor_pid"]),
                        bool(ev.get("started")), lambda: self._connect(cid),
                        paused=bool(ev.get("paused")), started_at=str(ev.get("started_at") or ""))
        channel.begin()
        self._live[cid] = handle
        return handle

    async def cleanup(self, cid: str) -> None:
        """Remove ``<exec_root>/<id>`` and the container's cgroup (after it exited).

        With a live handle, first wait (up to 5 s) for the monitor's own teardown to finish.
        """
        handle = self._live.pop(cid, None)
        if handle is not None and handle.exited():
            try:
                await asyncio.wait_for(handle.closed(), 5)
            except TimeoutError:
                pass  # a stuck monitor: remove what it left behind ourselves
        cg = open_cgroup(self.cgroup_name(cid), self.cgroup_root)  # before its record goes
        if (self.exec_dir(cid) / oci.RUNTIME_FILE).exists():
            # an OCI runtime's container whose monitor did not delete it (it was killed): the
            # runtime's state and the rootfs mount go here
            await asyncio.to_thread(_remove_oci, cid, str(self.exec_dir(cid)))
        # never through a mount: an OCI runtime's rootfs and id-mapped volumes are in the bundle,
        # and the unmount above may have failed (or the monitor was killed before its own)
        await asyncio.to_thread(remove_tree, self.exec_dir(cid))
        if cg.exists():
            await asyncio.to_thread(cg.destroy)

    async def pids(self, cid: str) -> list[int]:
        """Host pids of every process in the container's cgroup (``docker top``)."""
        cg = open_cgroup(self.cgroup_name(cid), self.cgroup_root)
        return await asyncio.to_thread(cg.pids) if cg.exists() else []

    async def update(self, cid: str, update: ResourceUpdate) -> None:
        """Change the limits of a running container's cgroup (``docker update``)."""
        cg = open_cgroup(self.cgroup_name(cid), self.cgroup_root)
        if not cg.exists():
            raise Conflict(f"container {cid} has no cgroup: it is not running")
        await asyncio.to_thread(cg.update, update)

    async def stats(self, cid: str) -> Stats | None:
        """CPU, memory and pids accounting of the container's cgroup (``docker stats``)."""
        cg = open_cgroup(self.cgroup_name(cid), self.cgroup_root)
        return await asyncio.to_thread(cg.stats) if cg.exists() else None

    async def _connect(self, cid: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        path = str(self.exec_dir(cid) / "monitor.sock")
        if len(os.fsencode(path)) <= SUN_PATH_MAX:
            return await asyncio.open_unix_connection(path)
        # too long for sun_path: go through a short magic link to the directory
        dfd = os.open(self.exec_dir(cid), os.O_PATH | os.O_CLOEXEC)
        try:
            return await asyncio.open_unix_connection(f"/proc/self/fd/{dfd}/monitor.sock")
        finally:
            os.close(dfd)


async def _read_ready(control: socket.socket) -> bytes:
    # sock_recv's coroutine is made only once this task runs: a shutdown right after startup
    # cancels the task before its first step, and must leave no coroutine never awaited
    return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(control, 16), 60)


def _remove_oci(cid: str, directory: str) -> None:
    try:
        with open(os.path.join(directory, oci.RUNTIME_FILE), "rb") as f:
            binary = oci.Binary(P.decode_json(f.read()))
        oci.remove(binary, cid, directory)
    except (OSError, ValueError, KeyError, oci.RuntimeFailed) as exc:
        # the exec directory goes anyway; what is left is in the daemon's log
        log.warning("delete OCI runtime container %s: %s", cid, exc)


def _write_sample(path: Path, body: bytes) -> None:
    """A create's body for the fork server's standby helpers to rehearse on (shim.native.standby_ahead):
    root's alone, as the spec holds the environment; replaced whole."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, body)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _write_config(bundle: Path, spec: dict[str, object]) -> None:
    """The bundle's config.json, as runc would read it (written for tools and the oci driver)."""
    bundle.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = bundle / "config.json.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:  # the spec holds the environment: root's alone
        f.write(json.dumps(spec))
    os.replace(tmp, bundle / "config.json")
