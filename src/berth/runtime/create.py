"""``create`` and ``run``: a container from a bundle, waiting at the exec FIFO until ``start``.

create: the bundle is read and checked (a malformed config names the field, and nothing is
made), the state directory and its FIFO are made, the cgroup created with the spec's limits,
init forked (it waits holding the FIFO open, :mod:`berth.libcontainer.process`); once its
namespaces and mounts are made, before its ``createContainer`` hooks and pivot_root, the
``prestart`` and ``createRuntime`` hooks run here (a failure undoes everything) and a byte on the
FIFO lets init go on; then the state is saved and the pid file written. Init keeps our stdio, or with ``process.terminal`` makes a pty inside the
container and sends its master over ``--console-socket`` (runc's protocol). ``--preserve-fds N``
and ``LISTEN_FDS`` pass fds 3.. on to the process.

run: create, start, then wait for the process (signals sent to us are forwarded to it) and
delete the container, exiting with the process's status; ``--detach`` returns after start. With
``process.terminal`` and no ``--console-socket``, run makes the console socket itself and copies
between our terminal (made raw) and the container's pty, as ``runc run`` does.
"""

from __future__ import annotations

import os

from berth.runtime.errors import CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from berth.libcontainer.spec import Stdio
    from berth.runtime.cli import Args
    from berth.runtime.state import Store


def cmd_create(args: Args) -> int:
    from berth.runtime.state import Store

    create(Store(args.root), args.args[0], args)
    return 0


def create(
    store: Store, cid: str, args: Args, console_fd: int = -1, spec: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Create container ``cid``; returns its saved state. ``console_fd``: a connected console
    socket of our own (run's), instead of ``--console-socket``; ``spec``: the bundle's config,
    when the caller has read it already."""
    from berth.libcontainer import rootfs
    from berth.libcontainer.cgroups import open_cgroup, resources_from_oci
    from berth.libcontainer.cgroups.warm import stop_warming
    from berth.libcontainer.process import create_detached
    from berth.libcontainer.spec import parse
    from berth.runtime import hooks
    from berth.runtime.bundle import (
        bundle_path,
        cgroup_name,
        check_host_can_apply,
        chroot_mounts,
        load_bundle,
        spec_annotations,
    )
    from berth.runtime.state import FIFO, OCI_VERSION, now, start_time

    if args.systemd_cgroup:
        raise CommandError("--systemd-cgroup: systemd cgroup paths are not supported (use cgroupfs)")
    bundle = bundle_path(args.opt("bundle"))
    if spec is None:
        spec = load_bundle(bundle)
    # everything that can be refused is, before anything is made
    parsed = parse(spec)
    hooks.check(spec)
    check_host_can_apply(spec)
    resources = resources_from_oci((spec.get("linux") or {}).get("resources"))
    annotations = spec_annotations(spec)
    preserve = _preserved_fds(args.opt("preserve-fds"))
    terminal = bool((spec.get("process") or {}).get("terminal"))
    console_socket = args.opt("console-socket")
    if terminal and console_fd < 0 and not console_socket:
        raise CommandError("process.terminal is set: --console-socket is required")
    d = store.make(cid)
    if parsed.seccomp is not None:
        store.use_seccomp_cache()
    cg = open_cgroup(cgroup_name(spec, cid))
    chroot = chroot_mounts(spec)
    close: list[int] = []
    try:
        fifo = os.path.join(d, FIFO)
        os.mkfifo(fifo, 0o600)
        barrier = os.open(fifo, os.O_RDWR | os.O_CLOEXEC)  # init holds it: no EOF before start
        close.append(barrier)
        cg.create(resources)
        if terminal:
            sock = console_fd if console_fd >= 0 else _connect(str(console_socket))
            if sock != console_fd:
                close.append(sock)
            stdio = _stdio(sock, preserve)
        else:
            stdio = _stdio(-1, preserve)
        hook_state = {"ociVersion": OCI_VERSION, "id": cid, "status": "creating", "pid": 0, "bundle": bundle}
        if annotations:
            hook_state["annotations"] = annotations
        created = now()

        def create_hooks(pid: int) -> None:
            """prestart and createRuntime, while init waits before pivot_root; then go on."""
            oci = {**hook_state, "status": "created", "pid": pid, "rootfs": spec["root"]["path"],
                   "created": created, "owner": ""}
            for phase in ("prestart", "createRuntime"):
                hooks.run(spec, phase, oci, fatal=True)
            release = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                os.write(release, b"\0")
            finally:
                os.close(release)

        at_create = any((spec.get("hooks") or {}).get(p) for p in ("prestart", "createRuntime"))
        close.remove(barrier)  # create_detached closes it, whatever happens
        pid = create_detached(spec, [], stdio, cg, barrier, hook_state, parsed, create_hooks if at_create else None)
        stop_warming()  # init has joined its cgroup
        state = {
            "id": cid,
            "pid": pid,
            "start_time": start_time(pid),
            "bundle": bundle,
            "rootfs": spec["root"]["path"],
            "created": created,
            "cgroup": cg.name,
            "annotations": annotations,
        }
        # the hooks start and delete run, as they were at create (a bundle may change or go)
        later = {p: h for p, h in (spec.get("hooks") or {}).items() if p in ("poststart", "poststop") and h}
        if later:
            state["hooks"] = later
        if chroot is not None:
            state["chroot_mounts"] = chroot  # what was stacked at the root before ours
        store.save(state)
        pid_file = args.opt("pid-file")
        if pid_file:
            _write_pid_file(pid_file, pid)
        return state
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


def _stdio(console: int, preserve: int) -> Stdio:
    from berth.libcontainer.spec import Stdio

    if console >= 0:
        return Stdio(-1, -1, -1, tty=True, console_socket=console, preserve_fds=preserve)
    return Stdio(0, 1, 2, preserve_fds=preserve)


def _preserved_fds(option: str | None) -> int:
    """``--preserve-fds N`` plus systemd's ``LISTEN_FDS`` (fds 3.. passed on); each must be open."""
    try:
        count = int(option or 0)
        listen = int(os.environ.get("LISTEN_FDS") or 0)
    except ValueError as exc:
        raise CommandError(f"--preserve-fds / LISTEN_FDS: {exc}") from exc
    if count < 0 or listen < 0:
        raise CommandError("--preserve-fds / LISTEN_FDS must not be negative")
    total = max(count, listen)
    for fd in range(3, 3 + total):
        try:
            os.fstat(fd)
        except OSError as exc:
            raise CommandError(f"fd {fd} is to be passed to the container but is not open: {exc.strerror}") from exc
    return total


def _connect(path: str) -> int:
    """runc's protocol: init makes the pty inside the container and sends the master here."""
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise CommandError(f"connect to console socket '{path}': {exc.strerror or exc}") from exc
    return sock.detach()


def _write_pid_file(path: str, pid: int) -> None:
    """Atomically, as runc (a reader never sees an empty file)."""
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(str(pid))
        os.replace(tmp, path)
    except OSError as exc:
        raise CommandError(f"write pid file '{path}': {exc.strerror}") from exc


def cmd_run(args: Args) -> int:
    from berth.runtime.bundle import bundle_path, load_bundle
    from berth.runtime.control import delete, start
    from berth.runtime.state import Store

    store, cid = Store(args.root), args.args[0]
    console = None
    spec = load_bundle(bundle_path(args.opt("bundle")))
    if not args.opt("console-socket") and (spec.get("process") or {}).get("terminal"):
        from berth.runtime.console import Console

        console = Console()
    try:
        state = create(store, cid, args, console.socket if console is not None else -1, spec)
    except BaseException:
        if console is not None:
            console.close()
        raise
    try:
        if console is not None:
            console.receive()
        start(store, cid)
    except BaseException:
        if console is not None:
            console.close()
        delete(store, cid, force=True)
        raise
    if args.flag("detach"):
        if console is not None:
            console.close()
        return 0
    status = _wait(state["pid"], console)
    if not args.flag("keep"):
        delete(store, cid, force=True)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _wait(pid: int, console: object | None) -> int:
    """Wait for the container's process, forwarding the usual signals to it (runc run does)."""
    import _signal  # type: ignore[import-not-found]  # the C module: `signal` imports enum (costly)

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass  # it exited: waitpid returns next

    forwarded = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGUSR1,
                 _signal.SIGUSR2)
    for sig in forwarded:
        _signal.signal(sig, forward)
    try:
        if console is not None:
            from berth.runtime.console import Console

            assert isinstance(console, Console)
            return console.copy_until_exit(pid)
        while True:
            try:
                return os.waitpid(pid, 0)[1]
            except InterruptedError:
                continue
    finally:
        for sig in forwarded:
            _signal.signal(sig, _signal.SIG_DFL)
