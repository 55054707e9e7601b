"""Run real daemons for tests and benchmarks: berthd (and, in bench/, dockerd) on private roots.

Model: one `Daemon` is one daemon process on its own temporary directory under /tmp::

    /tmp/bh-XXXXXX/            (unique per daemon, short: unix socket paths must stay < 108 bytes)
      data/                    --data-root
      exec/                    --exec-root
      exec/berth.sock          -H unix://...
      exec/berthd.pid          --pidfile
      daemon.log               the daemon's stdout and stderr (every start appends to it)
      docker-config/           DOCKER_CONFIG for the docker CLI: empty, so ~/.docker is never read

    d = Berthd.create(storage_driver="vfs")
    d.start()                               # returns once GET /_ping answers
    d.docker("run", "--rm", "busybox", "true").returncode
    d.teardown()                            # containers, daemon, leaked processes and mounts, dirs

`teardown()` returns a list of problems (mounts or processes the daemon left behind) so that the
pytest fixture can fail the test with them; it cleans up whatever it finds in any case. Every
process it ends is one this harness started, or one that a daemon it started created (found by
pid in the daemon's own state files, or by the unique root path on its command line).

This module imports nothing from berth: it drives the installed `berthd`/`berth` executables and
the real `docker` CLI, as a user would.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import io
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import tarfile
import tempfile
import termios
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"
# BERTH_TEST_BERTHD overrides which berthd the harness starts (e.g. an installed one).
BERTHD = Path(os.environ.get("BERTH_TEST_BERTHD") or VENV_BIN / "berthd")
BERTH = VENV_BIN / "berth"

SOCKET_PATH_MAX = 107  # sizeof(sun_path) - 1 on Linux


class DaemonError(RuntimeError):
    """The daemon did not start, or did not stop, as asked; the message includes its log."""


# --- the docker CLI ---------------------------------------------------------------------------


def docker_cli() -> str | None:
    """The first `docker` on PATH (version 28 on these machines), or None."""
    return shutil.which("docker")


def docker_cli_version(exe: str) -> tuple[int, int] | None:
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"version (\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


# --- HTTP over a unix socket --------------------------------------------------------------------


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 5.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def http_get(sock_path: str, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET `path` from the daemon on unix socket `sock_path`: (status, body)."""
    conn = UnixHTTPConnection(sock_path, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def http_request(
    sock_path: str, method: str, path: str, body: Any = None, timeout: float = 30.0
) -> tuple[int, bytes]:
    conn = UnixHTTPConnection(sock_path, timeout=timeout)
    try:
        headers = {}
        data = None
        if body is not None:
            # bytes go as they are (malformed-input tests); anything else as JSON
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def ping(sock_path: str, timeout: float = 2.0) -> bool:
    try:
        status, body = http_get(sock_path, "/_ping", timeout=timeout)
    except OSError:
        return False
    return status == 200 and body.strip() == b"OK"


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- mounts and processes -----------------------------------------------------------------------


def _unescape_mountinfo(field_: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field_)


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root` in this mount namespace, deepest first."""
    prefix = str(root).rstrip("/")
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = _unescape_mountinfo(line.split()[4])
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


def no_mounts_under(root: Path, timeout: float = 10.0) -> None:
    """Wait until nothing is mounted at or below ``root``: a ``--rm`` container's files (its
    rootfs mount with an OCI runtime) go after its wait is answered (docs/decisions.md), so
    right after ``docker run --rm`` returns they may still be on their way out."""
    left: list[str] = []

    def gone() -> bool:
        left[:] = mounts_under(root)
        return not left

    try:
        eventually(gone, timeout=timeout)
    except AssertionError:
        raise AssertionError(f"still mounted under {root} after {timeout} s: {left}") from None


def unmount_all(points: Iterable[str]) -> list[str]:
    """Lazily unmount each point; return the ones that could not be unmounted."""
    failed = []
    for point in points:
        r = subprocess.run(["umount", "-l", point], capture_output=True, text=True)
        if r.returncode != 0:
            failed.append(f"{point}: {r.stderr.strip()}")
    return failed


def pids_mentioning(text: str) -> list[int]:
    """Pids of processes whose command line contains `text` (a unique temp path)."""
    needle = text.encode()
    return _scan_proc("cmdline", lambda data: needle in data)


MARKER_VAR = "BERTH_HARNESS_ROOT"  # set in each daemon's environment: identifies its processes


def pids_with_marker(root: Path) -> list[int]:
    """Pids whose environment carries MARKER_VAR=root: the daemon and every process that inherited
    its environment (berth's fork server and monitors; containerd and its shims)."""
    needle = f"{MARKER_VAR}={root}".encode() + b"\0"
    return _scan_proc("environ", lambda data: needle in data)


STANDBY_CGROUP = "/berth-standby-"  # berth.libcontainer.cgroups.placeholder: a fork server's, not a container's


def pids_in_cgroup(name: str) -> list[int]:
    """Pids in a cgroup named `name` or below it, in any hierarchy (containers' processes; a
    standby helper waiting in its cgroup placeholder is none: it goes with the daemon, and is
    found by the environment marker when it does not)."""
    if not name:
        return []
    part = f"/{name}"
    return _scan_proc(
        "cgroup",
        lambda data: any(
            (path == part or path.startswith(part + "/")) and STANDBY_CGROUP not in path
            for line in data.decode(errors="replace").splitlines()
            for path in [line.split(":", 2)[-1]]
        ),
    )


def _scan_proc(leaf: str, match: Callable[[bytes], bool]) -> list[int]:
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/{leaf}", "rb") as f:
                data = f.read()
        except OSError:
            continue
        if match(data):
            found.append(int(entry))
    return found


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def kill_and_wait(pids: Iterable[int], timeout: float = 5.0) -> None:
    pids = [p for p in pids if pid_alive(p)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.02)


CGROUP_ROOT = Path("/sys/fs/cgroup")


def root_tag(root: Path, prefix: str) -> str:
    """The unique part of a private dir's name, usable in cgroup and netns names."""
    return root.name.removeprefix(prefix).replace("_", "x").lower()


def remove_cgroup_parent(name: str) -> list[str]:
    """Remove cgroup `name` in every hierarchy (v1 controllers, v1 hybrid's unified, or v2).

    The parent itself may stay behind after a daemon stops (dockerd leaves /docker too), so an
    empty one is removed quietly; cgroups still inside it are containers' and are reported."""
    problems = []
    found = sorted(CGROUP_ROOT.glob(f"*/{name}")) + (
        [CGROUP_ROOT / name] if (CGROUP_ROOT / name).is_dir() else []
    )
    for top in found:
        children = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        if children:
            problems.append(f"cgroups left behind: {', '.join(str(c) for c in children[:5])}")
        for d in [*children, top]:
            try:
                d.rmdir()
            except OSError as exc:
                problems.append(f"could not remove cgroup {d}: {exc.strerror}")
    return problems


def _reap(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


# --- the daemon ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TLSConfig:
    """Docker's TLS flags for the daemon: --tlscacert/--tlscert/--tlskey [--tlsverify]."""

    cacert: Path
    cert: Path
    key: Path
    verify: bool = True
    client_dir: Path | None = None  # ca.pem, cert.pem, key.pem for DOCKER_CERT_PATH (make_tls)

    def daemon_args(self) -> list[str]:
        args = ["--tlsverify" if self.verify else "--tls"]
        return args + [
            "--tlscacert",
            str(self.cacert),
            "--tlscert",
            str(self.cert),
            "--tlskey",
            str(self.key),
        ]


@dataclass
class Daemon:
    """A daemon process on private roots; subclasses say how to build its command line."""

    root: Path
    name: str = "daemon"
    extra_args: tuple[str, ...] = ()
    env_extra: dict[str, str] = field(default_factory=dict)
    start_timeout: float = 30.0
    cgroup_parent: str = ""  # containers' cgroups go under it; removed at teardown
    proc: subprocess.Popen[bytes] | None = None
    ready_once: bool = False
    spawned_at: float = 0.0  # time.monotonic() of the last spawn
    first_ping: float = 0.0  # seconds from the last spawn to its first answered /_ping
    torn_down: bool = False
    _clients: list[Any] = field(default_factory=list)

    # layout --------------------------------------------------------------------------------
    @property
    def data_root(self) -> Path:
        return self.root / "data"

    @property
    def exec_root(self) -> Path:
        return self.root / "exec"

    @property
    def sock(self) -> str:
        return str(self.exec_root / f"{self.name}.sock")

    @property
    def pidfile(self) -> Path:
        return self.exec_root / f"{self.name}.pid"

    @property
    def log_path(self) -> Path:
        return self.root / "daemon.log"

    @property
    def docker_config(self) -> Path:
        return self.root / "docker-config"

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for var in ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_API_VERSION"):
            env.pop(var, None)
        env.update(DOCKER_HOST=self.host, BERTH_HOST=self.host, DOCKER_CONFIG=str(self.docker_config))
        return env

    def command(self) -> list[str]:
        raise NotImplementedError

    def popen_prefix(self) -> list[str]:
        """Prepended to the command line (e.g. `ip netns exec NAME`)."""
        return []

    # lifecycle -----------------------------------------------------------------------------
    def prepare(self) -> None:
        if len(self.sock.encode()) > SOCKET_PATH_MAX:
            raise DaemonError(f"socket path too long ({len(self.sock)} bytes): {self.sock}")
        for d in (self.data_root, self.exec_root, self.docker_config):
            d.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        """Start the daemon and wait until it serves (GET /_ping, then GET /version, answer: berthd
        answers pings while it is still starting); DaemonError (with the log) if not.
        ``first_ping`` is the seconds from the spawn to the first answered /_ping."""
        if self.pid is not None:
            raise DaemonError(f"{self.name} already running as pid {self.pid}")
        self.prepare()
        argv = self.popen_prefix() + self.command()
        self.spawned_at = time.monotonic()
        with open(self.log_path, "ab") as log:
            log.write(f"--- harness: starting {' '.join(argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env_extra, MARKER_VAR: str(self.root)},
                start_new_session=True,
            )
        self.wait_ready()

    def wait_ready(self, timeout: float | None = None) -> float:
        """Poll /_ping every 10 ms; the seconds it took. Fails early if the process exits."""
        assert self.proc is not None
        t0 = time.monotonic()
        deadline = t0 + (timeout if timeout is not None else self.start_timeout)
        while True:
            if ping(self.sock, timeout=1.0):
                self.first_ping = time.monotonic() - (self.spawned_at or t0)
                self._wait_serving(deadline)
                self.ready_once = True
                return time.monotonic() - t0
            rc = self.proc.poll()
            if rc is not None:
                raise DaemonError(
                    f"{self.name} exited with status {rc} before /_ping answered\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.kill9()
                raise DaemonError(
                    f"{self.name}: /_ping on {self.sock} did not answer within "
                    f"{deadline - t0:.0f}s\n{self.log_tail()}"
                )
            time.sleep(0.01)

    def _wait_serving(self, deadline: float) -> None:
        """After the first ping: a request that needs the whole daemon (its start-up done)."""
        assert self.proc is not None
        try:
            status, body = http_get(self.sock, "/version", timeout=max(1.0, deadline - time.monotonic()))
        except OSError as exc:
            status, body = 0, str(exc).encode()
        if status != 200:
            rc = self.proc.poll()
            raise DaemonError(
                f"{self.name} answered /_ping, then GET /version with {status or 'no answer'}"
                f"{'' if rc is None else f' and exited with status {rc}'}: {body[:200]!r}\n{self.log_tail()}"
            )

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM by pid, wait up to `timeout`, then SIGKILL. The exit status, None if not running."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            if not _reap(proc, timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                _reap(proc, 10)
                self._note(f"did not exit within {timeout}s of SIGTERM; sent SIGKILL")
        return proc.returncode

    def kill9(self) -> None:
        """SIGKILL the daemon itself (not what it started) and reap it."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            _reap(proc, 10)

    def restart(self, timeout: float = 20.0) -> None:
        self.stop(timeout)
        self.start()

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"(no log at {self.log_path})"
        tail = text.splitlines()[-lines:]
        return f"--- last {len(tail)} lines of {self.log_path}:\n" + "\n".join(tail)

    def _note(self, msg: str) -> None:
        with contextlib.suppress(OSError), open(self.log_path, "a") as log:
            log.write(f"--- harness: {msg}\n")

    # clients -------------------------------------------------------------------------------
    def docker(
        self,
        *args: str,
        input: str | bytes | None = None,
        timeout: float = 60,
        text: bool | None = None,
        check: bool = False,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[Any]:
        """Run the real docker CLI against this daemon. Text mode unless `input` is bytes.

        `env` replaces `.env` (e.g. `.tcp_env` to go through the TCP/TLS listener)."""
        exe = docker_cli()
        if exe is None:
            raise DaemonError("the docker CLI is not on PATH")
        return self._run([exe, *args], input, timeout, text, check, env)

    def berth(
        self,
        *args: str,
        input: str | bytes | None = None,
        timeout: float = 60,
        text: bool | None = None,
        check: bool = False,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[Any]:
        """Run berth's own CLI (<repo>/.venv/bin/berth) against this daemon."""
        return self._run([str(BERTH), *args], input, timeout, text, check, env)

    def _run(
        self,
        argv: list[str],
        input: str | bytes | None,
        timeout: float,
        text: bool | None,
        check: bool,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[Any]:
        if text is None:
            text = not isinstance(input, bytes)
        r = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=text,
            timeout=timeout,
            env=env if env is not None else self.env,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and r.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
            )
        return r

    def client(self, **kwargs: Any) -> Any:
        """A docker-py client on this daemon's socket (closed at teardown)."""
        import docker  # docker-py; imported lazily so the harness works without it

        kwargs.setdefault("timeout", 60)
        c = docker.DockerClient(base_url=self.host, **kwargs)
        self._clients.append(c)
        return c

    def api(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> tuple[int, Any]:
        """A raw Engine API call over the unix socket: (status, decoded JSON or bytes)."""
        status, raw = http_request(self.sock, method, path, body, timeout)
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw

    def import_image(self, tar: Path, ref: str = "busybox:latest", cmd: Sequence[str] = ("sh",)) -> str:
        """`docker import -c 'CMD [...]' TAR REF`; the image id it prints."""
        r = self.docker("import", "-c", f"CMD {json.dumps(list(cmd))}", str(tar), ref, timeout=120)
        if r.returncode != 0:
            raise DaemonError(
                f"docker import {tar} {ref} failed ({r.returncode}): {r.stderr}\n{self.log_tail()}"
            )
        image_id: str = r.stdout.strip()
        return image_id

    # teardown ------------------------------------------------------------------------------
    def remove_all_containers(self) -> list[str]:
        """Remove every container through the API (force, with volumes); the errors, if any."""
        problems: list[str] = []
        try:
            status, listing = self.api("GET", "/containers/json?all=1", timeout=30)
        except OSError as exc:
            return [f"listing containers failed: {exc}"]
        if status != 200 or not isinstance(listing, list):
            return [f"listing containers: HTTP {status}: {listing!r}"[:500]]
        for ctr in listing:
            cid = ctr.get("Id", "")
            try:
                status, body = self.api("DELETE", f"/containers/{cid}?force=1&v=1", timeout=60)
            except OSError as exc:
                problems.append(f"removing container {cid[:12]}: {exc}")
                continue
            if status not in (200, 204, 404):
                problems.append(f"removing container {cid[:12]}: HTTP {status}: {body!r}"[:500])
        return problems

    def leftover_pids(self) -> list[int]:
        """Processes this daemon started that are still alive.

        Found by identity, never by a pid read from a file (which may have been reused by then):
        the marker in the environment the daemon passed on, the daemon's own cgroup parent
        (containers), or the private root on the command line."""
        pids = set(pids_with_marker(self.root))
        pids.update(pids_in_cgroup(self.cgroup_parent))
        pids.update(pids_mentioning(str(self.root)))
        return sorted(p for p in pids if pid_alive(p))

    def teardown(self, keep_root: bool = False) -> list[str]:
        """Clean up everything; return the problems found (leaks), which callers should report.
        A second call does nothing."""
        if self.torn_down:
            return []
        self.torn_down = True
        problems: list[str] = []
        for c in self._clients:
            with contextlib.suppress(Exception):  # closing a client must not hide the real result
                c.close()
        self._clients.clear()
        if self.pid is None and self.ready_once:
            # Killed by the test (kill9/stop): bring it back so it can remove its containers.
            try:
                self.start()
            except DaemonError as exc:
                problems.append(f"restart for cleanup failed: {exc}")
        if self.pid is not None:
            problems += self.remove_all_containers()
            rc = self.stop()
            if rc not in (0, None, -signal.SIGTERM):
                problems.append(f"{self.name} exited with status {rc} on SIGTERM\n{self.log_tail(30)}")
        leaked = self.leftover_pids()
        if leaked:
            problems.append(f"processes left running after the daemon stopped: {self._describe(leaked)}")
            kill_and_wait(leaked)
        points = mounts_under(self.root)
        if points:
            problems.append("mounts left behind: " + ", ".join(points))
            for failure in unmount_all(points):
                problems.append(f"could not unmount {failure}")
        if self.cgroup_parent:
            problems += remove_cgroup_parent(self.cgroup_parent)
        if not keep_root:
            shutil.rmtree(self.root, ignore_errors=True)
            if self.root.exists():
                problems.append(f"could not remove {self.root}")
        return problems

    @staticmethod
    def _describe(pids: list[int]) -> str:
        out = []
        for pid in pids:
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                cmd = "?"
            out.append(f"{pid} ({cmd.strip()[:120]})")
        return "; ".join(out)


# --- networks of test daemons -------------------------------------------------------------------
#
# Every berthd the harness starts gets its own default bridge (bh<tag>) and subnet, and a pool of
# its own for user networks, so daemons side by side never collide and nothing overlaps the
# host's routes. Default bridges come from 10.200.0.0/14, chosen under a lock and recorded in the
# daemon's private dir (`subnet`), skipping what live dirs recorded and what the host routes;
# user networks come from 10.204.0.0/14, which berthd itself shares out under its host-wide lock.

SUBNET_LOCK = Path("/tmp/berth-harness-subnets.lock")
BRIDGE_SUBNETS = "10.200.0.0/14"
USER_POOL = "base=10.204.0.0/14,size=24"


def host_ipv4_networks() -> list[Any]:
    """Routes and addresses the host has (every table), as ipaddress networks."""
    import ipaddress

    nets = []
    for argv in (["ip", "-4", "route", "show", "table", "all"], ["ip", "-4", "-o", "addr", "show"]):
        r = subprocess.run(argv, capture_output=True, text=True)
        for line in r.stdout.splitlines():
            words = line.split()
            for w in words[:4] if argv[2] == "route" else words[3:4]:
                try:
                    net = ipaddress.ip_network(w, strict=False)
                except ValueError:
                    continue
                if net.prefixlen > 0 and not net.is_loopback:
                    nets.append(net)
                break
    return nets


def reserve_subnet(root: Path, tag: str) -> str:
    """A /24 for the daemon at `root` (its gateway address with prefix, for --bip)."""
    import hashlib
    import ipaddress

    space = list(ipaddress.ip_network(BRIDGE_SUBNETS).subnets(new_prefix=24))
    start = int(hashlib.sha256(tag.encode()).hexdigest(), 16) % len(space)
    with open(SUBNET_LOCK, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        taken = set()
        for f in Path("/tmp").glob("b[hb]-*/subnet"):
            with contextlib.suppress(OSError, ValueError):
                taken.add(ipaddress.ip_network(f.read_text().strip(), strict=False))
        host = host_ipv4_networks()
        for i in range(len(space)):
            net = space[(start + i) % len(space)]
            if net in taken or any(net.overlaps(h) for h in host):
                continue
            (root / "subnet").write_text(f"{net}\n")
            return f"{net.network_address + 1}/24"
    raise DaemonError("no free /24 left in " + BRIDGE_SUBNETS)


def nft_table_name(data_root: Path) -> str:
    """berthd's nftables table for a data root (berth.drivers.network.config.daemon_tag)."""
    import hashlib

    return "berth-" + hashlib.sha256(str(data_root).encode()).hexdigest()[:8]


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def delete_link(name: str) -> None:
    subprocess.run(["ip", "link", "delete", name], capture_output=True)


def bridge_ports(bridge: str) -> list[str]:
    d = Path(f"/sys/class/net/{bridge}/brif")
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def nft_tables_named(name: str) -> list[str]:
    """`family name` of every nftables table called `name`."""
    r = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
    out = []
    for line in r.stdout.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "table" and words[2] == name:
            out.append(f"{words[1]} {words[2]}")
    return out


def user_bridges(data_root: Path) -> list[str]:
    """Bridges of a daemon's user networks (br-<id12>), from its database (read-only)."""
    import sqlite3

    db = data_root / "berth.db"
    if not db.exists():
        return []
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            rows = conn.execute("SELECT data FROM networks").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return []
    out = []
    for (data,) in rows:
        with contextlib.suppress(ValueError):
            bridge = json.loads(data).get("bridge") or ""
            if bridge:
                out.append(bridge)
    return out


@dataclass
class Berthd(Daemon):
    """berthd from <repo>/.venv/bin on private roots."""

    name: str = "berth"
    storage_driver: str = "overlay2"
    tcp_port: int | None = None
    tls: TLSConfig | None = None
    executable: Path = BERTHD
    bridge: str = ""  # the default bridge's name, bh<tag>
    bip: str = ""  # its address, 10.2xx.y.1/24
    ip_forward: bool = False  # tests never let the host forward to the outside
    netns: str = ""  # run berthd in this network namespace (/run/netns/NAME) instead of the host's
    private_mounts: bool = False  # run berthd in a mount namespace of its own (unshare(1): a private copy)

    @classmethod
    def create(cls, prefix: str = "bh-", **kwargs: Any) -> Berthd:
        root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
        tag = root_tag(root, prefix)
        kwargs.setdefault("cgroup_parent", f"berth-h-{tag}")
        kwargs.setdefault("bridge", f"bh{tag}"[:15])
        if not kwargs.get("bip"):
            kwargs["bip"] = reserve_subnet(root, tag)
        return cls(root=root, **kwargs)

    @property
    def nft_table(self) -> str:
        return nft_table_name(self.data_root)

    @property
    def subnet(self) -> str:
        """The default bridge's subnet (CIDR)."""
        import ipaddress

        return str(ipaddress.ip_interface(self.bip).network)

    @property
    def gateway(self) -> str:
        return self.bip.partition("/")[0]

    @property
    def tcp_host(self) -> str | None:
        return f"tcp://127.0.0.1:{self.tcp_port}" if self.tcp_port else None

    @property
    def tcp_env(self) -> dict[str, str]:
        """Like `.env`, but DOCKER_HOST/BERTH_HOST name the TCP listener, with the TLS client
        files (DOCKER_TLS_VERIFY, DOCKER_CERT_PATH) when the daemon was given a make_tls() config."""
        if not self.tcp_port:
            raise DaemonError("this berthd has no tcp listener (pass tcp_port=)")
        env = self.env
        env.update(
            DOCKER_HOST=f"tcp://127.0.0.1:{self.tcp_port}", BERTH_HOST=f"tcp://127.0.0.1:{self.tcp_port}"
        )
        if self.tls is not None and self.tls.client_dir is not None:
            env.update(DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(self.tls.client_dir))
        return env

    def command(self) -> list[str]:
        argv = [
            str(self.executable),
            "--data-root", str(self.data_root),
            "--exec-root", str(self.exec_root),
            "-H", self.host,
            "--pidfile", str(self.pidfile),
            "--storage-driver", self.storage_driver,
        ]  # fmt: skip
        if self.cgroup_parent:
            argv += ["--cgroup-parent", self.cgroup_parent]
        if self.bridge:
            # -p/-P without an address publish on 127.0.0.1 only: tests open nothing to the outside
            argv += ["--bridge", self.bridge, "--bip", self.bip, "--default-address-pool", USER_POOL, "--ip", "127.0.0.1"]
        if not self.ip_forward:
            argv += ["--ip-forward=false"]
        if self.tcp_port:
            argv += ["-H", f"tcp://127.0.0.1:{self.tcp_port}"]
            if self.tls is not None:
                argv += self.tls.daemon_args()
        return argv + list(self.extra_args)

    def popen_prefix(self) -> list[str]:
        prefix = ["nsenter", f"--net=/run/netns/{self.netns}", "--"] if self.netns else []
        # unshare(1) execs berthd (no --fork): the pid stays the daemon's
        return prefix + (["unshare", "--mount", "--propagation", "private", "--"] if self.private_mounts else [])

    def daemon_data_roots(self) -> list[Path]:
        """The data root, and the ``<uid>.<gid>`` ones a run with --userns-remap used inside it
        (the daemon's database, bridges and nftables table are named from the root it used)."""
        remapped = sorted(p for p in self.data_root.glob("*.*") if (p / "berth.db").exists()) \
            if self.data_root.is_dir() else []
        return [self.data_root, *remapped]

    def teardown(self, keep_root: bool = False) -> list[str]:
        if self.torn_down:
            return []
        # a daemon in a namespace of the test's: what it made there goes with the namespace
        roots = self.daemon_data_roots()
        bridges = [] if self.netns else [b for b in [self.bridge, *(x for r in roots for x in user_bridges(r))] if b]
        problems = super().teardown(keep_root=True)
        problems += self.network_leaks(bridges)
        if not keep_root:
            shutil.rmtree(self.root, ignore_errors=True)
            if self.root.exists():
                problems.append(f"could not remove {self.root}")
        return problems

    def network_leaks(self, bridges: list[str]) -> list[str]:
        """Bridges, their veths and nftables tables the stopped daemon left; removes them."""
        problems = []
        for bridge in bridges:
            if link_exists(bridge):
                ports = bridge_ports(bridge)
                problems.append(f"bridge {bridge} left behind" + (f" with ports {', '.join(ports)}" if ports else ""))
                for port in ports:
                    delete_link(port)
                delete_link(bridge)
        tables = [] if self.netns else [t for r in self.daemon_data_roots() for t in nft_tables_named(nft_table_name(r))]
        for table in tables:
            problems.append(f"nftables table {table} left behind")
            subprocess.run(["nft", "delete", "table", *table.split()], capture_output=True)
        netns_dir = self.exec_root / "netns"
        if netns_dir.is_dir():
            for f in netns_dir.iterdir():
                problems.append(f"network namespace file {f} left behind")
        return problems

    def wait_ready(self, timeout: float | None = None) -> float:
        took = super().wait_ready(timeout)
        if self.tcp_port:
            self._wait_tcp(timeout if timeout is not None else self.start_timeout)
        return took

    def _wait_tcp(self, timeout: float) -> None:
        assert self.tcp_port
        # Only that the listener accepts connections: with --tlsverify a request needs a client
        # certificate, which the tests that use TLS bring and check themselves.
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.tcp_port), timeout=1.0):
                    return
            except OSError:
                if self.proc is not None and self.proc.poll() is not None:
                    raise DaemonError(
                        f"{self.name} exited before listening on tcp\n{self.log_tail()}"
                    ) from None
                if time.monotonic() > deadline:
                    raise DaemonError(
                        f"{self.name}: tcp://127.0.0.1:{self.tcp_port} not listening\n{self.log_tail()}"
                    ) from None
                time.sleep(0.02)


# --- the reference daemon ---------------------------------------------------------------------
#
# Debian's dockerd 20.10 (docker.io) on private roots, inside its own network namespace.
# `dockerd --bridge=none` deletes the host's docker0 at start-up even with its own roots, and its
# defaults touch iptables; so it runs in a network namespace created for it (`ip netns add`,
# entered with `nsenter --net=...`, which execs dockerd itself, so the pid held is dockerd's) with
# --bridge=none --iptables=false --ip-masq=false. Its containers' cgroups go under a cgroup parent
# named for it. teardown() deletes the namespace and those cgroups after the usual clean-up.


def dockerd_path() -> str | None:
    """Debian's dockerd (package docker.io), or None."""
    found = shutil.which("dockerd")
    if found is None and os.path.exists("/usr/sbin/dockerd"):
        found = "/usr/sbin/dockerd"
    return found


@dataclass
class Dockerd(Daemon):
    """The reference dockerd on private roots, in a network namespace of its own (see above)."""

    name: str = "docker"
    executable: str = "/usr/sbin/dockerd"
    netns: str = ""

    @classmethod
    def create(cls, **kwargs: Any) -> Dockerd:
        root = Path(tempfile.mkdtemp(prefix="bd-", dir="/tmp"))
        tag = root_tag(root, "bd-")
        return cls(root=root, netns=f"berth-ref-{tag}", cgroup_parent=f"berth-ref-{tag}", **kwargs)

    def prepare(self) -> None:
        super().prepare()
        (self.root / "daemon.json").write_text("{}\n")
        if not Path(f"/run/netns/{self.netns}").exists():
            r = subprocess.run(["ip", "netns", "add", self.netns], capture_output=True, text=True)
            if r.returncode != 0:
                raise DaemonError(f"ip netns add {self.netns}: {r.stderr.strip()}")
            subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True)

    def popen_prefix(self) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.netns}", "--"]

    def command(self) -> list[str]:
        return [
            self.executable,
            "--data-root", str(self.data_root),
            "--exec-root", str(self.exec_root),
            "-H", self.host,
            "--pidfile", str(self.pidfile),
            "--config-file", str(self.root / "daemon.json"),
            "--storage-driver", "overlay2",
            "--bridge=none", "--iptables=false", "--ip-masq=false", "--ip6tables=false",
            "--userland-proxy=false",
            "--cgroup-parent", f"/{self.cgroup_parent}",
            "--log-level", "warn",
            *self.extra_args,
        ]  # fmt: skip

    def teardown(self, keep_root: bool = False) -> list[str]:
        problems = super().teardown(keep_root)
        if Path(f"/run/netns/{self.netns}").exists():
            r = subprocess.run(["ip", "netns", "delete", self.netns], capture_output=True, text=True)
            if r.returncode != 0:
                problems.append(f"ip netns delete {self.netns}: {r.stderr.strip()}")
        return problems


# --- a user at a terminal ---------------------------------------------------------------------


def pty_run(argv: list[str], env: dict[str, str], send: bytes, timeout: float = 20) -> tuple[int, bytes]:
    """Run argv on a real pseudo-terminal (as a user would), type `send`, return (status, output)."""
    pid, fd = pty.fork()
    if pid == 0:  # child: the CLI on the pty slave, a 30x100 terminal
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        os.execvpe(argv[0], argv, env)
    out = b""
    sent = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        if not sent and time.monotonic() > deadline - timeout + 1.0:
            os.write(fd, send)
            sent = True
    else:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out


# --- TLS material -----------------------------------------------------------------------------


def make_tls(directory: Path, verify: bool = True) -> TLSConfig:
    """A throw-away CA, a server certificate for 127.0.0.1/localhost and a client certificate.

    Writes directory/{ca.pem,ca-key.pem,server-cert.pem,server-key.pem} and directory/client/
    {ca.pem,cert.pem,key.pem} (the layout DOCKER_CERT_PATH expects); returns the daemon's side.
    """
    directory.mkdir(parents=True, exist_ok=True)
    client = directory / "client"
    client.mkdir(exist_ok=True)

    def openssl(*args: str) -> None:
        r = subprocess.run(["openssl", *args], capture_output=True, text=True, cwd=directory)
        if r.returncode != 0:
            raise DaemonError(f"openssl {' '.join(args)}: {r.stderr.strip()}")

    key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    ca_subject = "/CN=berth test CA"
    openssl(
        "req", "-x509", *key, "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "2", "-subj", ca_subject
    )
    for name, subject, ext in (
        ("server", "/CN=localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
        ("client", "/CN=berth test client", "extendedKeyUsage=clientAuth"),
    ):
        (directory / f"{name}.ext").write_text(ext + "\n")
        openssl("req", *key, "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", "-subj", subject)
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
            "-out", f"{name}-cert.pem", "-days", "2", "-extfile", f"{name}.ext",
        )  # fmt: skip
    shutil.copy(directory / "ca.pem", client / "ca.pem")
    shutil.copy(directory / "client-cert.pem", client / "cert.pem")
    shutil.copy(directory / "client-key.pem", client / "key.pem")
    return TLSConfig(
        cacert=directory / "ca.pem",
        cert=directory / "server-cert.pem",
        key=directory / "server-key.pem",
        verify=verify,
        client_dir=client,
    )


# --- the busybox image --------------------------------------------------------------------------

BUSYBOX = Path("/bin/busybox")
PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "bin:x:2:2:bin:/bin:/bin/false\n"
    "nobody:x:65534:65534:nobody:/home:/bin/false\n"
)
GROUP = "root:x:0:\ndaemon:x:1:\nbin:x:2:\ntty:x:5:\nwheel:x:10:root\nnogroup:x:65534:\n"


def is_static_elf(path: Path) -> bool:
    """True if `path` is an ELF executable with no program interpreter (statically linked)."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit only; that is what these machines run
            return False
        endian = "<" if head[5] == 1 else ">"
        (phoff,) = struct.unpack_from(endian + "Q", head, 0x20)
        phentsize, phnum = struct.unpack_from(endian + "HH", head, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for i in range(phnum):
        (p_type,) = struct.unpack_from(endian + "I", table, i * phentsize)
        if p_type == 3:  # PT_INTERP
            return False
    return True


def busybox_applets(busybox: Path = BUSYBOX) -> list[str]:
    out = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True, check=True).stdout
    return sorted({line.strip() for line in out.splitlines() if line.strip()})


def build_busybox_tar(dest: Path, busybox: Path = BUSYBOX) -> Path:
    """Write a root file system tar: static busybox, applet symlinks, /etc/passwd, /etc/group.

    Deterministic (fixed mtimes, sorted entries, uid/gid 0), so importing it into berthd and dockerd
    gives the same layer.
    """
    if not busybox.exists():
        raise FileNotFoundError(f"{busybox} not found (apt-get install busybox-static)")
    if not is_static_elf(busybox):
        raise RuntimeError(f"{busybox} is not statically linked (install busybox-static, not busybox)")
    mtime = 1_700_000_000

    def info(name: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.size, ti.mtime, ti.linkname = kind, mode, size, mtime, link
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = "root"
        return ti

    dirs = {"bin", "dev", "etc", "home", "proc", "root", "sbin", "sys", "tmp", "usr", "usr/bin", "usr/sbin",
            "var", "var/spool", "var/spool/mail", "var/www"}  # fmt: skip
    applets = [a for a in busybox_applets(busybox) if a != "bin/busybox"]
    for a in applets:
        parent = os.path.dirname(a)
        while parent:
            dirs.add(parent)
            parent = os.path.dirname(parent)
    tmp = dest.with_name(dest.name + ".part")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in sorted(dirs):
            tar.addfile(info(d, tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755))
        data = busybox.read_bytes()
        tar.addfile(info("bin/busybox", tarfile.REGTYPE, 0o755, len(data)), io.BytesIO(data))
        for a in applets:
            tar.addfile(info(a, tarfile.SYMTYPE, 0o777, link="/bin/busybox"))
        for name, text in (("etc/passwd", PASSWD), ("etc/group", GROUP)):
            raw = text.encode()
            tar.addfile(info(name, tarfile.REGTYPE, 0o644, len(raw)), io.BytesIO(raw))
    tmp.rename(dest)
    return dest


# --- waiting -------------------------------------------------------------------------------


def eventually(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll `condition` until it returns something truthy (returned); AssertionError after
    `timeout` seconds, naming the condition and what it returned last."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{getattr(condition, '__name__', condition)} still {value!r} after {timeout}s")
        time.sleep(interval)


# --- leftovers of interrupted runs ------------------------------------------------------------


def clean_stale(min_age: float = 3600.0, dry_run: bool = False) -> list[str]:
    """Remove what killed test or bench runs left behind: private dirs (/tmp/bh-*, bd-*, bb-*),
    the harness's cgroup parents (berth-h-*, berth-ref-*) and network namespaces (berth-ref-*).

    Only dirs older than `min_age` seconds that no live process uses are touched, and only cgroups
    and namespaces whose private dir is gone, so concurrent runs are safe. Returns what was (or, with dry_run, would be) removed."""
    now = time.time()
    done: list[str] = []

    def old(p: Path) -> bool:
        try:
            return now - p.stat().st_mtime >= min_age
        except OSError:
            return False

    for d in sorted(Path("/tmp").glob("b[hdb]-*")):
        if not d.is_dir() or not old(d) or pids_with_marker(d) or pids_mentioning(str(d)):
            continue
        done.append(f"dir {d}")
        if not dry_run:
            unmount_all(mounts_under(d))
            shutil.rmtree(d, ignore_errors=True)
    # A cgroup parent or netns belongs to a private dir with the same tag; while that dir exists
    # (its run is going on, or stale and just removed above when not dry_run) they are left alone.
    live = {
        root_tag(d, prefix) for prefix in ("bh-", "bb-b-", "bd-") for d in Path("/tmp").glob(f"{prefix}*")
    }
    patterns = ("*/berth-h-*", "*/berth-ref-*", "berth-h-*", "berth-ref-*")
    names = {p.name for pat in patterns for p in CGROUP_ROOT.glob(pat)}
    for name in sorted(names):
        if name.split("-", 2)[2] in live or pids_in_cgroup(name):
            continue
        done.append(f"cgroup {name}")
        if not dry_run:
            remove_cgroup_parent(name)
    # default bridges of harness daemons (bh<tag>) whose private dir is gone
    for link in sorted(Path("/sys/class/net").glob("bh*")):
        tag = link.name[2:]
        if (link / "bridge").is_dir() and len(tag) == 8 and tag not in live:
            done.append(f"bridge {link.name}")
            if not dry_run:
                delete_link(link.name)
    # the namespaces of tests/integration/test_network_nat.py
    for ns in sorted(Path("/run/netns").glob("bhn-*")):
        r = subprocess.run(["ip", "netns", "pids", ns.name], capture_output=True, text=True)
        if not old(ns) or r.returncode != 0 or r.stdout.strip():
            continue
        done.append(f"netns {ns.name}")
        if not dry_run:
            subprocess.run(["ip", "netns", "delete", ns.name], capture_output=True)
    for ns in sorted(Path("/run/netns").glob("berth-ref-*")):
        if ns.name.split("-", 2)[2] in live:
            continue
        r = subprocess.run(["ip", "netns", "pids", ns.name], capture_output=True, text=True)
        if r.returncode != 0 or r.stdout.strip():
            continue
        done.append(f"netns {ns.name}")
        if not dry_run:
            subprocess.run(["ip", "netns", "delete", ns.name], capture_output=True)
    return done


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="remove leftovers of interrupted berth test/bench runs")
    ap.add_argument("--clean-stale", action="store_true", required=True)
    ap.add_argument("--min-age", type=float, default=3600.0, help="seconds (default 3600)")
    ap.add_argument("--dry-run", action="store_true")
    a = ap.parse_args()
    for line in clean_stale(a.min_age, a.dry_run):
        print(("would remove " if a.dry_run else "removed ") + line)

