"""The ``berth-runtime`` commands (create, start, state, kill, delete, run, exec, pause, resume,
ps, list) and their arguments; see :mod:`berth.runtime` for the model."""

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
from berth.libcontainer import kernel, rootfs
from berth.libcontainer.cgroups import open_cgroup, resources_from_oci
from berth.libcontainer.failure import ContainerInitError
from berth.libcontainer.process import create_detached, exec_process
from berth.libcontainer.spec import Stdio
from berth.runtime import hooks
from berth.runtime.bundle import cgroup_name, check_host_can_apply, load_bundle, spec_annotations
from berth.runtime.errors import CommandError
from berth.runtime.state import DEFAULT_ROOT, FIFO, Store, start_time


def _console_stdio(console_socket: str) -> tuple[Stdio, list[int]]:
    """runc's protocol: init makes the pty inside the container and sends the master here."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(console_socket)
    except OSError as exc:
        sock.close()
        raise CommandError(f"connect to console socket '{console_socket}': {exc}") from exc
    fd = sock.detach()
    return Stdio(-1, -1, -1, tty=True, console_socket=fd), [fd]


def cmd_create(store: Store, cid: str, bundle: Path, pid_file: str | None, console_socket: str | None) -> int:
    spec = load_bundle(bundle)
    hooks.check(spec)
    check_host_can_apply(spec)
    d = store.make(cid)
    cg = open_cgroup(cgroup_name(spec, cid))
    close: list[int] = []
    chroot = _chroot_mounts(spec)
    try:
        fifo = d / FIFO
        os.mkfifo(fifo, 0o600)
        barrier = os.open(fifo, os.O_RDWR | os.O_CLOEXEC)  # init holds it: no EOF before start
        cg.create(resources_from_oci((spec.get("linux") or {}).get("resources")))
        if (spec.get("process") or {}).get("terminal"):
            if not console_socket:
                raise CommandError("process.terminal is set: --console-socket is required")
            stdio, close = _console_stdio(console_socket)
        else:
            stdio = Stdio(0, 1, 2)
        pid = create_detached(spec, [], stdio, cg, barrier)
        started = start_time(pid)
        state = {
            "id": cid,
            "pid": pid,
            "start_time": started,
            "bundle": str(bundle.resolve()),
            "rootfs": spec["root"]["path"],
            "created": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "cgroup": cg.name,
            "annotations": spec_annotations(spec),
        }
        if chroot is not None:
            state["chroot_mounts"] = chroot  # what was stacked at the root before ours
        store.save(state)
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
        store.remove(cid)
        raise
    finally:
        for fd in close:
            os.close(fd)


def cmd_start(store: Store, cid: str) -> int:
    state = store.load(cid)
    status = store.status(state)
    if status != "created":
        raise CommandError(
            f"cannot start a container that has {'stopped' if status == 'stopped' else 'run'}"
        )
    fifo = store.dir(cid) / FIFO
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise CommandError(f"start container {cid}: open '{fifo}': {exc.strerror}") from exc
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
        raise CommandError(f"container {cid} is not running")
    os.kill(state["pid"], parse_signal(sig))
    return 0


def cmd_delete(store: Store, cid: str, force: bool) -> int:
    state = store.load(cid)
    status = store.status(state)
    # a created container too: the OCI spec says deleting one that is not stopped is an error
    # (runc deletes it; podman and containerd pass --force when they mean it)
    if status != "stopped" and not force:
        raise CommandError(f"cannot delete container {cid} that is not stopped: {status}")
    cg = open_cgroup(state["cgroup"])
    if status != "stopped":
        try:
            os.kill(state["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass  # it exited meanwhile
        if cg.exists() and cg.frozen():
            cg.thaw()
        deadline = time.monotonic() + 5
        while start_time(state["pid"]) == state["start_time"] and time.monotonic() < deadline:
            time.sleep(0.005)
    if cg.exists():
        cg.destroy()
    if "chroot_mounts" in state:
        rootfs.detach_chroot_root(state["rootfs"], state["chroot_mounts"])
    try:
        spec = load_bundle(Path(state["bundle"]))
    except CommandError:
        spec = {}  # the bundle is gone: no hooks to run
    hooks.run(spec, "poststop", store.oci_state(cid, "stopped"), fatal=False)
    store.remove(cid)
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
        raise CommandError(f"cannot exec in a stopped container {cid}")
    spec = load_bundle(Path(state["bundle"]))
    if process_file:
        try:
            process = json.loads(Path(process_file).read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"read process file '{process_file}': {exc}") from exc
    else:
        if not argv:
            raise CommandError("exec needs --process FILE or a command")
        process = dict(spec.get("process") or {}, args=argv, terminal=False)
    # The process is a child of the launcher exec_process forks: as runc does, become a child
    # subreaper so that it is ours to wait for. The pidfd is checked against the recorded start
    # time after it is opened, so it names the container's init and not a recycled pid.
    kernel.prctl(kernel.PR_SET_CHILD_SUBREAPER, 1)
    try:
        pidfd = os.pidfd_open(state["pid"])
    except OSError as exc:
        raise CommandError(f"cannot exec in a stopped container {cid}") from exc
    try:
        if start_time(state["pid"]) != state["start_time"]:
            raise CommandError(f"cannot exec in a stopped container {cid}")
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
        raise CommandError(f"container {cid} is not running")
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
    for cid in store.ids():
        s = store.oci_state(cid)
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


def parse_signal(sig: str) -> int:
    if sig.isdigit():
        return int(sig)
    name = sig.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError as exc:
        raise CommandError(f"unknown signal {sig!r}") from exc


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
    except (CommandError, BerthError, hooks.HookError) as exc:
        # ContainerInitError is a BerthError: runc's words, e.g. exec: "x": executable file not found
        prefix = "unable to start container process: " if isinstance(exc, ContainerInitError) else ""
        print(f"berth-runtime: {prefix}{exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
