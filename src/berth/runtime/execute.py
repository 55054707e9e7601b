"""``exec``: another process in a running container, through libcontainer's exec door
(:func:`berth.libcontainer.process.exec_process`: a launcher joins the container and forks the
process already confined).

The process is ``--process FILE`` (an OCI process object) or the command after the container
id, built from the container's own process (its user, capabilities, rlimits ... as runc's
``exec``) with ``--cwd``, ``--env`` (added, a name given again replaces), ``--tty``,
``--user uid[:gid]``, ``--additional-gids``, ``--cap`` (added to every set but inheritable) and
``--no-new-privs`` applied. With a terminal the pty is made inside the container and its master
goes to ``--console-socket``, or without one to us, and we copy between it and our terminal.
Unless ``--detach``, exec waits and exits with the process's status; the process is a child of
the launcher, so we make ourselves a child subreaper to be the one that reaps it.
"""

from __future__ import annotations

import os

from berth.runtime.errors import CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from berth.runtime.cli import Args


def cmd_exec(args: Args) -> int:
    from berth.libcontainer import kernel
    from berth.libcontainer.cgroups import open_cgroup
    from berth.libcontainer.cgroups.warm import stop_warming
    from berth.libcontainer.process import exec_process
    from berth.libcontainer.spec import Stdio
    from berth.runtime.bundle import load_bundle
    from berth.runtime.create import _connect, _preserved_fds, _write_pid_file
    from berth.runtime.state import Store, start_time

    store, cid = Store(args.root), args.args[0]
    state = store.load(cid)
    status = store.status(state)
    if status == "paused" and not args.flag("ignore-paused"):
        raise CommandError(f"cannot exec in a paused container {cid} (resume it first)")
    if status not in ("running", "created", "paused"):
        raise CommandError(f"cannot exec in a stopped container {cid}")
    spec = load_bundle(state["bundle"])
    if (spec.get("linux") or {}).get("seccomp") is not None:
        store.use_seccomp_cache()
    process = build_process(args, spec)
    if process.get("apparmorProfile"):
        from berth.runtime.bundle import apparmor_enabled

        if not apparmor_enabled():
            raise CommandError(f"apparmor profile {process['apparmorProfile']!r}: AppArmor is not enabled on this host")
    preserve = _preserved_fds(args.opt("preserve-fds"))
    console = None
    close: list[int] = []
    if process.get("terminal"):
        if args.opt("console-socket"):
            sock = _connect(str(args.opt("console-socket")))
            close.append(sock)
        elif args.flag("detach"):
            raise CommandError("exec --detach with a terminal needs --console-socket")
        else:
            from berth.runtime.console import Console

            console = Console()
            sock = console.socket
        stdio = Stdio(-1, -1, -1, tty=True, console_socket=sock, preserve_fds=preserve)
    else:
        stdio = Stdio(0, 1, 2, preserve_fds=preserve)
    # The process is a child of the launcher exec_process forks: as runc does, become a child
    # subreaper so that it is ours to wait for. The pidfd is checked against the recorded start
    # time after it is opened, so it names the container's init and not a recycled pid.
    kernel.prctl(kernel.PR_SET_CHILD_SUBREAPER, 1)
    try:
        try:
            pidfd = os.pidfd_open(state["pid"])
        except OSError as exc:
            raise CommandError(f"cannot exec in a stopped container {cid}") from exc
        try:
            if start_time(state["pid"]) != state["start_time"]:
                raise CommandError(f"cannot exec in a stopped container {cid}")
            pid = exec_process(state["pid"], process, stdio, open_cgroup(state["cgroup"]), spec, pidfd)
        finally:
            os.close(pidfd)
            stop_warming()  # the process has joined the cgroup (or will not)
        if console is not None:
            console.receive()
    except BaseException:
        if console is not None:
            console.close()
        raise
    finally:
        for fd in close:
            os.close(fd)
    pid_file = args.opt("pid-file")
    if pid_file:
        _write_pid_file(pid_file, pid)
    if args.flag("detach"):
        return 0
    if console is not None:
        status_ = console.copy_until_exit(pid)
    else:
        status_ = os.waitpid(pid, 0)[1]
    return os.waitstatus_to_exitcode(status_) if os.WIFEXITED(status_) else 128 + os.WTERMSIG(status_)


def build_process(args: Args, spec: dict[str, Any]) -> dict[str, Any]:
    """The exec'd process object: ``--process`` as given, or the command with the options over
    the container's process."""
    import json

    path = args.opt("process")
    if path:
        if len(args.args) > 1:
            raise CommandError("exec: give --process or a command, not both")
        try:
            with open(path) as f:
                given = json.loads(f.read())
        except (OSError, ValueError) as exc:
            raise CommandError(f"read process file '{path}': {exc}") from exc
        if not isinstance(given, dict):
            raise CommandError(f"process file '{path}': not a JSON object")
        return given
    if len(args.args) < 2:
        raise CommandError("exec needs --process FILE or a command")
    base = spec.get("process")
    if not isinstance(base, dict):
        base = {}
    process: dict[str, Any] = {k: v for k, v in base.items() if k not in ("args", "terminal", "consoleSize")}
    process["args"] = args.args[1:]
    process["terminal"] = args.flag("tty")
    if args.opt("cwd"):
        process["cwd"] = args.opt("cwd")
    env = list(process.get("env") or [])
    for entry in args.many("env"):
        name = entry.split("=", 1)[0]
        env = [e for e in env if e.split("=", 1)[0] != name] + [entry]
    process["env"] = env
    user = dict(process.get("user") or {})
    if args.opt("user"):
        uid, _, gid = str(args.opt("user")).partition(":")
        try:
            user["uid"] = int(uid)
            if gid:
                user["gid"] = int(gid)
        except ValueError as exc:
            raise CommandError(f"--user {args.opt('user')!r}: must be uid[:gid] (numbers)") from exc
    gids = args.many("additional-gids")
    if gids:
        try:
            user["additionalGids"] = [int(g) for g in gids]
        except ValueError as exc:
            raise CommandError(f"--additional-gids: {exc}") from exc
    process["user"] = user
    caps = args.many("cap")
    if caps:
        current = dict(process.get("capabilities") or {})
        for kind in ("bounding", "effective", "permitted", "ambient"):
            current[kind] = list(dict.fromkeys([*(current.get(kind) or []), *caps]))
        process["capabilities"] = current
    if args.flag("no-new-privs"):
        process["noNewPrivileges"] = True
    if args.opt("apparmor"):
        process["apparmorProfile"] = args.opt("apparmor")
    if args.opt("process-label"):
        process["selinuxLabel"] = args.opt("process-label")
    return process
