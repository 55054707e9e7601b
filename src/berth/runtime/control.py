"""``start``, ``kill``, ``delete``, ``pause`` and ``resume``: what is done to a created container.

start releases init (one byte into the exec FIFO, which is then removed) and runs the
``poststart`` hooks, with the state's status "running" (a warning when one fails). kill sends a
signal to init, or with ``--all`` to every process in the container's cgroup (a container sharing
the host's PID namespace has no init whose death ends the rest). delete refuses a container that
is not stopped (the OCI spec: even a created one) unless ``--force``, which kills it (thawing a
frozen cgroup so the kill lands); then the cgroup is removed, a chroot container's root bind
detached, the ``poststop`` hooks run and the state directory removed. pause/resume freeze and
thaw the cgroup.
"""

from __future__ import annotations

import os

from berth.runtime.errors import CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from berth.runtime.cli import Args
    from berth.runtime.state import Store

# the signal names runc knows (golang.org/x/sys/unix SignalNum), numbers of Linux x86/arm
SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7, "FPE": 8, "KILL": 9,
    "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15, "STKFLT": 16, "CHLD": 17,
    "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25,
    "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
}


def parse_signal(sig: str) -> int:
    """``TERM``, ``SIGTERM``, ``15``, or a real-time ``RTMIN+3``; CommandError otherwise."""
    if sig.isdigit():
        number = int(sig)
    else:
        name = sig.upper().removeprefix("SIG")
        if name.startswith(("RTMIN", "RTMAX")):
            number = _realtime(name)
        elif name in SIGNALS:
            number = SIGNALS[name]
        else:
            raise CommandError(f"unknown signal {sig!r}")
    if not 0 <= number < 65:  # 0 only checks the process exists, as kill(2)
        raise CommandError(f"signal {sig!r} is out of range")
    return number


def _realtime(name: str) -> int:
    import _signal  # type: ignore[import-not-found]  # the C module: `signal` imports enum (costly)

    base, _, offset = name.partition("+") if "+" in name else name.partition("-")
    try:
        delta = int(offset or 0) * (1 if "+" in name or not offset else -1)
    except ValueError as exc:
        raise CommandError(f"unknown signal {name!r}") from exc
    return int(_signal.SIGRTMIN if base == "RTMIN" else _signal.SIGRTMAX) + delta


def cmd_start(args: Args) -> int:
    from berth.runtime.state import Store

    start(Store(args.root), args.args[0])
    return 0


def start(store: Store, cid: str) -> None:
    from berth.runtime import hooks
    from berth.runtime.state import FIFO

    state = store.load(cid)
    status = store.status(state)
    if status != "created":
        raise CommandError(f"cannot start a container that has {'stopped' if status == 'stopped' else 'run'}")
    fifo = os.path.join(store.dir(cid), FIFO)
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise CommandError(f"start container {cid}: open '{fifo}': {exc.strerror}") from exc
    try:
        os.write(fd, b"\0")
    finally:
        os.close(fd)
    os.unlink(fifo)
    if (state.get("hooks") or {}).get("poststart"):
        # the process has been released: "running", even if it has already exited
        hooks.run(state, "poststart", store.oci_state(cid, "running"), fatal=False)


def cmd_kill(args: Args) -> int:
    from berth.runtime.state import Store

    store, cid = Store(args.root), args.args[0]
    sig = parse_signal(args.opt("signal") or (args.args[1] if len(args.args) > 1 else "TERM"))
    state = store.load(cid)
    status = store.status(state)
    if status == "stopped":
        raise CommandError(f"container {cid} is not running")
    if args.flag("all"):
        from berth.libcontainer.cgroups import open_cgroup

        for pid in open_cgroup(state["cgroup"]).pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                continue  # exited meanwhile: nothing to signal
        return 0
    try:
        os.kill(state["pid"], sig)
    except ProcessLookupError as exc:
        raise CommandError(f"container {cid} is not running") from exc
    return 0


def cmd_delete(args: Args) -> int:
    from berth.runtime.state import Store

    store, cid = Store(args.root), args.args[0]
    if args.flag("force") and not os.path.isdir(store.dir(cid)):
        return 0  # --force of what is already gone succeeds, as runc's (podman relies on it)
    delete(store, cid, args.flag("force"))
    return 0


def delete(store: Store, cid: str, force: bool) -> None:
    import time

    from berth.libcontainer.cgroups import open_cgroup
    from berth.runtime.state import start_time

    state = store.load(cid)
    status = store.status(state)
    # a created container too: the OCI spec says deleting one that is not stopped is an error
    # (runc deletes it; podman and containerd pass --force when they mean it)
    if status != "stopped" and not force:
        raise CommandError(f"cannot delete container {cid} that is not stopped: {status}")
    cg = open_cgroup(state["cgroup"])
    if status != "stopped":
        try:
            os.kill(state["pid"], 9)
        except ProcessLookupError:
            pass  # it exited meanwhile
        if cg.exists() and cg.frozen():
            cg.thaw()
        deadline = time.monotonic() + 5
        while start_time(state["pid"]) == state["start_time"] and time.monotonic() < deadline:
            time.sleep(0.002)
    if cg.exists():
        cg.destroy()
    if "chroot_mounts" in state:
        from berth.libcontainer import rootfs

        rootfs.detach_chroot_root(state["rootfs"], state["chroot_mounts"])
    if (state.get("hooks") or {}).get("poststop"):
        from berth.runtime import hooks

        hooks.run(state, "poststop", store.oci_state(cid, "stopped"), fatal=False)
    store.remove(cid)


def cmd_pause(args: Args) -> int:
    _pause(args, True)
    return 0


def cmd_resume(args: Args) -> int:
    _pause(args, False)
    return 0


def _pause(args: Args, pause: bool) -> None:
    from berth.libcontainer.cgroups import open_cgroup
    from berth.runtime.state import Store

    store, cid = Store(args.root), args.args[0]
    state = store.load(cid)
    status = store.status(state)
    if status == "stopped" or (pause and status == "created"):
        raise CommandError(f"container {cid} is not running")
    if not pause and status != "paused":
        raise CommandError(f"container {cid} is not paused")
    cg = open_cgroup(state["cgroup"])
    if pause:
        cg.freeze()
    else:
        cg.thaw()
