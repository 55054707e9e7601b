"""``berth-runtime``: berth's libcontainer behind the OCI runtime command line (runc's subset).

    berth-runtime [--root DIR] create [--bundle DIR] [--pid-file F] [--console-socket SOCK] ID
    berth-runtime [--root DIR] start ID | state ID | kill ID [SIGNAL] | delete [--force] ID
    berth-runtime [--root DIR] run [--bundle DIR] ID        # create + start + wait, exit with its status
    berth-runtime [--root DIR] list | pause ID | resume ID | ps [--format json] ID
    berth-runtime [--root DIR] exec [--process FILE] [--detach] [--pid-file F] ID [ARGS...]

State lives in ``<root>/<id>/``: ``state.json`` (pid, the pid's start time so a reused pid is not
mistaken for the container, bundle, cgroup) and ``exec.fifo``. ``create`` forks init, which waits
holding the FIFO open read-write (it never sees EOF) and the command exits; ``start`` writes one
byte into the FIFO and removes it. Status: ``stopped`` once the pid is gone (or a zombie),
``created`` while the FIFO exists, ``paused`` when the cgroup is frozen, else ``running``.

The cgroup is ``linux.cgroupsPath`` (a cgroupfs path; systemd ``slice:prefix:name`` is not
supported) or ``berth-runtime/<id>``, with ``linux.resources`` memory, pids and cpu (shares,
quota and period as given, cpus and mems) applied.
With ``process.terminal`` init makes a pty inside the container and sends its master over
``--console-socket`` (SCM_RIGHTS), as runc does.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from berth.errors import BerthError
from berth.libcontainer import hooks, kernel, rootfs
from berth.libcontainer.cgroups import Resources, open_cgroup, resources_from_oci
from berth.libcontainer.failure import ContainerInitError
from berth.libcontainer.process import create_detached, exec_process
from berth.libcontainer.spec import Stdio

DEFAULT_ROOT = "/run/berth-runtime"
OCI_VERSION = "1.0.2"


class RuntimeError_(Exception):
    """A command-line level failure: printed, exit status 1."""


def load_bundle(bundle: Path) -> dict[str, Any]:
    """config.json with root.path made absolute (the OCI spec makes it relative to the bundle)."""
    try:
        spec: dict[str, Any] = json.loads((bundle / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise RuntimeError_(f"read bundle config '{bundle / 'config.json'}': {exc}") from exc
    root = spec.setdefault("root", {})
    root["path"] = str((bundle / root.get("path", "rootfs")).resolve())
    return spec


def resources_from_spec(spec: dict[str, Any]) -> Resources:
    """The cgroup limits of the bundle's ``linux.resources`` (the daemon's conversion too)."""
    return resources_from_oci((spec.get("linux") or {}).get("resources"))


def cgroup_name(spec: dict[str, Any], cid: str) -> str:
    path = (spec.get("linux") or {}).get("cgroupsPath") or f"berth-runtime/{cid}"
    if ":" in path:
        raise RuntimeError_(f"cgroupsPath {path!r}: systemd cgroup paths are not supported")
    return path.strip("/")


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat, or None when the pid is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else fields[19]


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root

    def dir(self, cid: str) -> Path:
        if not cid or "/" in cid or cid in (".", ".."):
            raise RuntimeError_(f"invalid container id {cid!r}")
        return self.root / cid

    def load(self, cid: str) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads((self.dir(cid) / "state.json").read_text())
        except FileNotFoundError as exc:
            raise RuntimeError_(f"container {cid} does not exist") from exc
        return state

    def status(self, state: dict[str, Any]) -> str:
        if _start_time(state["pid"]) != state["start_time"]:
            return "stopped"
        if (self.dir(state["id"]) / "exec.fifo").exists():
            return "created"
        cg = open_cgroup(state["cgroup"])
        try:
            if cg.exists() and cg.frozen():
                return "paused"
        except OSError:
            pass  # no freezer: it cannot be paused
        return "running"

    def oci_state(self, cid: str, status: str | None = None) -> dict[str, Any]:
        """The OCI state (runtime-spec "state"); ``status`` given for a hook's view of it."""
        state = self.load(cid)
        status = status or self.status(state)
        out = {
            "ociVersion": OCI_VERSION,
            "id": cid,
            "pid": state["pid"] if status != "stopped" else 0,
            "status": status,
            "bundle": state["bundle"],
            "rootfs": state["rootfs"],
            "created": state["created"],
            "owner": "",
        }
        if state.get("annotations"):
            out["annotations"] = state["annotations"]
        return out


def _console_stdio(console_socket: str) -> tuple[Stdio, list[int]]:
    """runc's protocol: init makes the pty inside the container and sends the master here."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(console_socket)
    except OSError as exc:
        sock.close()
        raise RuntimeError_(f"connect to console socket '{console_socket}': {exc}") from exc
    fd = sock.detach()
    return Stdio(-1, -1, -1, tty=True, console_socket=fd), [fd]


def check_host_can_apply(spec: dict[str, Any]) -> None:
    """What the spec asks and this host (or this runtime's own privileges) cannot give is an
    error naming it, before anything is made: the OCI spec says a value that cannot be mapped
    to the kernel, or granted, MUST be an error. (berthd's own containers are lenient instead:
    ``--privileged`` gets the capabilities the daemon holds.)"""
    from berth.libcontainer import capabilities
    from berth.libcontainer.cgroups import blkio_weight_supported

    process = spec.get("process") or {}
    namespaces = (spec.get("linux") or {}).get("namespaces") or []
    own_userns = any(isinstance(ns, dict) and ns.get("type") == "user" and not ns.get("path") for ns in namespaces)
    caps = process.get("capabilities") if isinstance(process, dict) else None
    if isinstance(caps, dict) and not own_userns:  # in a user namespace of its own, init holds every one
        held = kernel.capget()[1]
        last = capabilities.last_cap()
        for kind in ("bounding", "effective", "permitted", "inheritable", "ambient"):
            for name in caps.get(kind) or ():
                try:
                    cap = capabilities.number(name)
                except ValueError as exc:
                    raise RuntimeError_(f"process.capabilities.{kind}: {exc}") from exc
                if cap > last:
                    raise RuntimeError_(f"process.capabilities.{kind}: {name} is unknown to this kernel")
                if not held >> cap & 1:
                    raise RuntimeError_(
                        f"process.capabilities.{kind}: {name} cannot be granted: berth-runtime does not hold it"
                    )
    block_io = ((spec.get("linux") or {}).get("resources") or {}).get("blockIO") or {}
    if isinstance(block_io, dict) and block_io.get("weight") and not blkio_weight_supported():
        raise RuntimeError_("linux.resources.blockIO.weight: the host's block I/O controller takes no weight")


def cmd_create(store: Store, cid: str, bundle: Path, pid_file: str | None, console_socket: str | None) -> int:
    spec = load_bundle(bundle)
    hooks.check(spec)
    check_host_can_apply(spec)
    d = store.dir(cid)
    store.root.mkdir(parents=True, exist_ok=True)
    try:
        d.mkdir(mode=0o700)
    except FileExistsError as exc:
        raise RuntimeError_(f"container with id exists: {cid}") from exc
    cg = open_cgroup(cgroup_name(spec, cid))
    close: list[int] = []
    chroot = _chroot_mounts(spec)
    try:
        fifo = d / "exec.fifo"
        os.mkfifo(fifo, 0o600)
        barrier = os.open(fifo, os.O_RDWR | os.O_CLOEXEC)  # init holds it: no EOF before start
        cg.create(resources_from_spec(spec))
        if (spec.get("process") or {}).get("terminal"):
            if not console_socket:
                raise RuntimeError_("process.terminal is set: --console-socket is required")
            stdio, close = _console_stdio(console_socket)
        else:
            stdio = Stdio(0, 1, 2)
        pid = create_detached(spec, [], stdio, cg, barrier)
        start_time = _start_time(pid)
        state = {
            "id": cid,
            "pid": pid,
            "start_time": start_time,
            "bundle": str(bundle.resolve()),
            "rootfs": spec["root"]["path"],
            "created": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "cgroup": cg.name,
            "annotations": _annotations(spec),
        }
        if chroot is not None:
            state["chroot_mounts"] = chroot  # what was stacked at the root before ours
        tmp = d / "state.json.tmp"
        tmp.write_text(json.dumps(state))
        os.replace(tmp, d / "state.json")
        for phase in ("prestart", "createRuntime"):
            hooks.run(spec, phase, store.oci_state(cid, "created"), fatal=True)
        if pid_file:
            Path(pid_file).write_text(str(pid))
        return 0
    except BaseException:
        if cg.exists():
            cg.destroy()
        if chroot is not None:
            rootfs.detach_chroot_root(spec["root"]["path"], chroot)
        _remove_dir(d)
        raise
    finally:
        for fd in close:
            os.close(fd)


def cmd_start(store: Store, cid: str) -> int:
    state = store.load(cid)
    status = store.status(state)
    if status != "created":
        raise RuntimeError_(
            f"cannot start a container that has {'stopped' if status == 'stopped' else 'run'}"
        )
    fifo = store.dir(cid) / "exec.fifo"
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise RuntimeError_(f"start container {cid}: open '{fifo}': {exc.strerror}") from exc
    try:
        os.write(fd, b"\0")
    finally:
        os.close(fd)
    fifo.unlink()
    # the process has been released: "running", even if it has already exited
    hooks.run(load_bundle(Path(state["bundle"])), "poststart", store.oci_state(cid, "running"), fatal=False)
    return 0


def cmd_kill(store: Store, cid: str, sig: str) -> int:
    state = store.load(cid)
    if store.status(state) == "stopped":
        raise RuntimeError_(f"container {cid} is not running")
    os.kill(state["pid"], parse_signal(sig))
    return 0


def cmd_delete(store: Store, cid: str, force: bool) -> int:
    state = store.load(cid)
    status = store.status(state)
    # a created container too: the OCI spec says deleting one that is not stopped is an error
    # (runc deletes it; podman and containerd pass --force when they mean it)
    if status != "stopped" and not force:
        raise RuntimeError_(f"cannot delete container {cid} that is not stopped: {status}")
    cg = open_cgroup(state["cgroup"])
    if status != "stopped":
        try:
            os.kill(state["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass  # it exited meanwhile
        if cg.exists() and cg.frozen():
            cg.thaw()
        deadline = time.monotonic() + 5
        while _start_time(state["pid"]) == state["start_time"] and time.monotonic() < deadline:
            time.sleep(0.005)
    if cg.exists():
        cg.destroy()
    if "chroot_mounts" in state:
        rootfs.detach_chroot_root(state["rootfs"], state["chroot_mounts"])
    try:
        spec = load_bundle(Path(state["bundle"]))
    except RuntimeError_:
        spec = {}  # the bundle is gone: no hooks to run
    hooks.run(spec, "poststop", store.oci_state(cid, "stopped"), fatal=False)
    _remove_dir(store.dir(cid))
    return 0


def cmd_run(store: Store, cid: str, bundle: Path, pid_file: str | None, console_socket: str | None,
            detach: bool) -> int:
    """create + start, then (unless ``detach``) wait for the process and delete the container,
    exiting with its status; signals sent to us meanwhile are forwarded to it (as runc run)."""
    cmd_create(store, cid, bundle, pid_file, console_socket)
    try:
        cmd_start(store, cid)
    except BaseException:
        cmd_delete(store, cid, force=True)
        raise
    if detach:
        return 0
    pid = store.load(cid)["pid"]
    forward = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
               signal.SIGWINCH)
    for sig in forward:
        signal.signal(sig, lambda signum, _frame: _forward(pid, signum))
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    for sig in forward:
        signal.signal(sig, signal.SIG_DFL)
    cmd_delete(store, cid, force=True)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _forward(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass  # it exited: waitpid returns next


def cmd_exec(
    store: Store, cid: str, process_file: str | None, argv: list[str], detach: bool, pid_file: str | None
) -> int:
    state = store.load(cid)
    if store.status(state) not in ("running", "created"):
        raise RuntimeError_(f"cannot exec in a stopped container {cid}")
    spec = load_bundle(Path(state["bundle"]))
    if process_file:
        try:
            process = json.loads(Path(process_file).read_text())
        except (OSError, ValueError) as exc:
            raise RuntimeError_(f"read process file '{process_file}': {exc}") from exc
    else:
        if not argv:
            raise RuntimeError_("exec needs --process FILE or a command")
        process = dict(spec.get("process") or {}, args=argv, terminal=False)
    # The process is a child of the launcher exec_process forks: as runc does, become a child
    # subreaper so that it is ours to wait for. The pidfd is checked against the recorded start
    # time after it is opened, so it names the container's init and not a recycled pid.
    kernel.prctl(kernel.PR_SET_CHILD_SUBREAPER, 1)
    try:
        pidfd = os.pidfd_open(state["pid"])
    except OSError as exc:
        raise RuntimeError_(f"cannot exec in a stopped container {cid}") from exc
    try:
        if _start_time(state["pid"]) != state["start_time"]:
            raise RuntimeError_(f"cannot exec in a stopped container {cid}")
        pid = exec_process(state["pid"], process, Stdio(0, 1, 2), open_cgroup(state["cgroup"]), spec, pidfd)
    finally:
        os.close(pidfd)
    if pid_file:
        Path(pid_file).write_text(str(pid))
    if detach:
        return 0
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def cmd_pause(store: Store, cid: str, pause: bool) -> int:
    state = store.load(cid)
    status = store.status(state)
    if status == "stopped" or (status == "created" and pause):
        raise RuntimeError_(f"container {cid} is not running")
    cg = open_cgroup(state["cgroup"])
    if pause:
        cg.freeze()
    else:
        cg.thaw()
    return 0


def cmd_ps(store: Store, cid: str, fmt: str) -> int:
    state = store.load(cid)
    pids = open_cgroup(state["cgroup"]).pids()
    if fmt == "json":
        print(json.dumps(pids))
    else:
        print("PID")
        for pid in pids:
            print(pid)
    return 0


def cmd_list(store: Store) -> int:
    rows = []
    if store.root.is_dir():
        for d in sorted(store.root.iterdir()):
            if (d / "state.json").exists():
                s = store.oci_state(d.name)
                rows.append(f"{s['id']}\t{s['pid']}\t{s['status']}\t{s['bundle']}\t{s['created']}")
    print("ID\tPID\tSTATUS\tBUNDLE\tCREATED")
    for row in rows:
        print(row)
    return 0


def _chroot_mounts(spec: dict[str, Any]) -> int | None:
    """For a spec without a mount namespace (set up in ours, :mod:`berth.libcontainer.rootfs`
    binds its root), the mounts stacked at the root now; None for every other spec."""
    namespaces = (spec.get("linux") or {}).get("namespaces") or []
    if any(isinstance(ns, dict) and ns.get("type") == "mount" for ns in namespaces):
        return None
    return rootfs.mounts_at(spec["root"]["path"])


def _annotations(spec: dict[str, Any]) -> dict[str, str]:
    notes = spec.get("annotations") or {}
    if not isinstance(notes, dict) or not all(isinstance(v, str) for v in notes.values()):
        raise RuntimeError_("annotations must be an object of strings")
    return {str(k): v for k, v in notes.items()}


def parse_signal(sig: str) -> int:
    if sig.isdigit():
        return int(sig)
    name = sig.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError as exc:
        raise RuntimeError_(f"unknown signal {sig!r}") from exc


def _remove_dir(d: Path) -> None:
    for child in d.iterdir() if d.is_dir() else ():
        child.unlink()
    if d.is_dir():
        d.rmdir()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="berth-runtime", description="OCI runtime backed by berth's libcontainer"
    )
    p.add_argument("--root", default=DEFAULT_ROOT)
    # accepted and ignored, for callers that pass runc's global flags
    p.add_argument("--log")
    p.add_argument("--log-format")
    p.add_argument("--systemd-cgroup", action="store_true")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("create", "run"):
        c = sub.add_parser(name)
        c.add_argument("--bundle", "-b", default=".")
        c.add_argument("--pid-file")
        c.add_argument("--console-socket")
        if name == "run":
            c.add_argument("--detach", "-d", action="store_true")
        c.add_argument("id")
    for name in ("start", "state"):
        sub.add_parser(name).add_argument("id")
    k = sub.add_parser("kill")
    k.add_argument("id")
    k.add_argument("signal", nargs="?", default="TERM")
    dl = sub.add_parser("delete")
    dl.add_argument("--force", "-f", action="store_true")
    dl.add_argument("id")
    sub.add_parser("list")
    for name in ("pause", "resume"):
        sub.add_parser(name).add_argument("id")
    ps = sub.add_parser("ps")
    ps.add_argument("--format", "-f", default="table", choices=("table", "json"))
    ps.add_argument("id")
    ex = sub.add_parser("exec")
    ex.add_argument("--process", "-p")
    ex.add_argument("--detach", "-d", action="store_true")
    ex.add_argument("--pid-file")
    ex.add_argument("id")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    store = Store(Path(args.root))
    try:
        if args.cmd == "create":
            return cmd_create(store, args.id, Path(args.bundle), args.pid_file, args.console_socket)
        if args.cmd == "run":
            return cmd_run(store, args.id, Path(args.bundle), args.pid_file, args.console_socket, args.detach)
        if args.cmd == "start":
            return cmd_start(store, args.id)
        if args.cmd == "state":
            print(json.dumps(store.oci_state(args.id), indent=2))
            return 0
        if args.cmd == "kill":
            return cmd_kill(store, args.id, args.signal)
        if args.cmd == "delete":
            return cmd_delete(store, args.id, args.force)
        if args.cmd in ("pause", "resume"):
            return cmd_pause(store, args.id, args.cmd == "pause")
        if args.cmd == "ps":
            return cmd_ps(store, args.id, args.format)
        if args.cmd == "exec":
            return cmd_exec(store, args.id, args.process, args.command, args.detach, args.pid_file)
        return cmd_list(store)
    except (RuntimeError_, BerthError, hooks.HookError) as exc:
        # ContainerInitError is a BerthError: runc's words, e.g. exec: "x": executable file not found
        prefix = "unable to start container process: " if isinstance(exc, ContainerInitError) else ""
        print(f"berth-runtime: {prefix}{exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
