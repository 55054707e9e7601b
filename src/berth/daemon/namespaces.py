"""``--pid``, ``--ipc``, ``--uts``, ``--cgroupns``, ``--userns``: which namespaces a container
gets, shares or joins (moby's ``WithNamespaces`` and ``setupIPCDirs``).

``check(body)`` at create refuses a mode Docker does not know (400, moby's texts) and a hostname
with ``--uts host``; ``check_create(d, host)`` needs the containers a ``container:X`` mode names
to exist (404). At start, ``resolve(d, c)`` turns the modes into what the spec joins:

    joined, shm = resolve(d, c)
    # (("pid", "/proc/4242/ns/pid"), ("ipc", "/proc/4242/ns/ipc")), "/proc/4242/root/dev/shm"

IPC follows Docker: ``private`` (the default) and ``shareable`` make a namespace of the
container's own with its own /dev/shm tmpfs; only a ``shareable`` (or ``host``) container may be
joined with ``container:X``, and the joiner binds X's /dev/shm (read through X's init's root,
resolved inside it by libcontainer); ``host`` binds the host's /dev/shm; ``none`` has no /dev/shm.
A joined container must be running; its init is found by the pid in its record, checked to be in
the container's cgroup (a pid the kernel gave to someone else since is not joined).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from berth.container.record import Container
from berth.errors import Conflict, InvalidParameter, NotFound

if TYPE_CHECKING:
    from berth.daemon.daemon import Daemon

PID_MODES = ("", "host")
IPC_MODES = ("", "none", "private", "shareable", "host")
UTS_MODES = ("", "host")
CGROUPNS_MODES = ("", "host", "private")
USERNS_MODES = ("", "host", "private")  # "private" without --userns-remap is the default: none


def _container_ref(mode: str) -> str | None:
    kind, sep, ref = mode.partition(":")
    return ref if kind == "container" and sep else None


def check(body: dict[str, Any]) -> None:
    """The modes' spelling and Docker's conflicts (InvalidParameter, moby's texts)."""
    host = body.get("HostConfig") or {}
    pid, ipc = str(host.get("PidMode") or ""), str(host.get("IpcMode") or "")
    if pid not in PID_MODES and not _container_ref(pid):
        raise InvalidParameter(f"invalid PID mode: {pid}")
    if ipc not in IPC_MODES and not _container_ref(ipc):
        raise InvalidParameter(f"invalid IPC mode: {ipc}")
    uts = str(host.get("UTSMode") or "")
    if uts not in UTS_MODES:
        raise InvalidParameter(f"invalid UTS mode: {uts}")
    cgroupns = str(host.get("CgroupnsMode") or "")
    if cgroupns not in CGROUPNS_MODES:
        raise InvalidParameter(f"invalid cgroup namespace mode: {cgroupns}")
    userns = str(host.get("UsernsMode") or "")
    if userns not in USERNS_MODES and userns != "auto" and not userns.startswith("map="):  # berth.daemon.remap
        raise InvalidParameter(f"invalid USER mode: {userns}")
    if uts == "host" and body.get("Hostname"):
        raise InvalidParameter("conflicting options: hostname and the UTS mode")


def check_create(d: Daemon, host: dict[str, Any]) -> None:
    """The containers ``container:X`` modes name exist: dockerd's 400 ``No such container: X``
    before the image is looked up (a 404 would make the docker CLI pull the image)."""
    for key in ("PidMode", "IpcMode"):
        ref = _container_ref(str(host.get(key) or ""))
        if ref:
            try:
                d.find(ref)
            except NotFound as exc:
                raise InvalidParameter(exc.message) from None


def _init_pid(donor: Container) -> int | None:
    """The running init of ``donor``, or None (not running, or its pid now someone else's)."""
    pid = getattr(donor.state, "pid", 0) or 0
    if not donor.state.running or pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            in_cgroup = donor.id in f.read()
    except OSError:
        return None
    return pid if in_cgroup else None


def _shareable(donor: Container) -> bool:
    mode = str(donor.host_config.get("IpcMode") or "")
    return mode in ("shareable", "host") or mode.startswith("container:")


def _join_userns(c: Container, donor: Container, pid: int, joined: list[tuple[str, str]]) -> None:
    """With user namespaces (--userns-remap), a container that joins another's PID or IPC
    namespace joins its user namespace too, as dockerd does (the namespace's owner is the only
    one whose root may mount its /proc or mqueue): the same maps are needed, or none on both."""
    if c.userns is None or any(kind == "user" for kind, _ in joined):
        return
    if donor.userns != c.userns:
        raise InvalidParameter(
            f"cannot join the namespaces of container {donor.id}: its user namespace has other id maps"
        )
    joined.append(("user", f"/proc/{pid}/ns/user"))


def resolve(d: Daemon, c: Container) -> tuple[tuple[tuple[str, str], ...], str]:
    """(namespaces to join by path, /dev/shm: "private", "none" or a directory to bind)."""
    host = c.host_config
    joined: list[tuple[str, str]] = []
    shm = "private"
    pid_ref = _container_ref(str(host.get("PidMode") or ""))
    if pid_ref:
        donor = d.find(pid_ref)
        pid = _init_pid(donor)
        if pid is None:
            raise Conflict(f"container {donor.id} is not running")
        joined.append(("pid", f"/proc/{pid}/ns/pid"))
        _join_userns(c, donor, pid, joined)
    ipc = str(host.get("IpcMode") or "private")
    ipc_ref = _container_ref(ipc)
    if ipc_ref:
        donor = d.find(ipc_ref)
        pid = _init_pid(donor)
        if pid is None:
            raise Conflict(f"can't join IPC of container {donor.id}: container {donor.id} is not running")
        if not _shareable(donor):
            raise InvalidParameter(
                f"can't join IPC of container {donor.id}: non-shareable IPC "
                "(hint: use IpcMode:shareable for the donor container)"
            )
        joined.append(("ipc", f"/proc/{pid}/ns/ipc"))
        _join_userns(c, donor, pid, joined)
        shm = "/dev/shm" if donor.host_config.get("IpcMode") == "host" else f"/proc/{pid}/root/dev/shm"
    elif ipc == "host":
        shm = "/dev/shm"
    elif ipc == "none":
        shm = "none"
    return tuple(joined), shm
