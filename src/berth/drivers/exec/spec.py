"""berth's container settings -> the OCI runtime-spec ``config.json`` Docker would hand runc.

A pure function: :class:`SpecInput` (what the daemon knows about a container at start) in, a
``dict`` out, no side effects, so every rule here is unit tested without root. The defaults are
moby's ``oci.DefaultLinuxSpec`` plus what ``daemon/oci_linux.go`` adds for a plain
``docker run``: the standard mounts, Docker's 14 default capabilities, masked and read-only
``/proc`` paths, a device cgroup that denies everything but the default devices, new mount, uts,
ipc, pid (and network unless ``--network host``) namespaces.

    >>> spec = build_spec(SpecInput(args=("sh",), rootfs="/r", hostname="h"))
    >>> spec["process"]["env"][:2], spec["root"], spec["hostname"]
    (['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOSTNAME=h'], {'path': '/r', 'readonly': False}, 'h')

Environment: like Docker's ``CreateDaemonEnvironment``, ``PATH`` is added when missing,
``HOSTNAME`` first and ``TERM=xterm`` with a TTY; the container's own values win.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from berth.errors import InvalidParameter
from berth.libcontainer import seccompprofile
from berth.libcontainer.capabilities import DEFAULT_CAPS
from berth.libcontainer.capabilities import NAMES as CAP_NAMES
from berth.libcontainer.defaultmounts import DEFAULT_SHM_SIZE, default_mounts  # re-exported
from berth.libcontainer.spec import MASKED_PATHS, READONLY_PATHS  # re-exported: the spec defaults

if TYPE_CHECKING:
    from berth.libcontainer.cgroups import Resources

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CPU_PERIOD = 100_000  # microseconds; --cpus N becomes quota N * period

# DEFAULT_CAPS (Docker's default set) comes from berth.libcontainer.capabilities, the one list;
# ALL_CAPS (--privileged, --cap-add ALL) is it, then every other name in capability-number order.
ALL_CAPS = DEFAULT_CAPS + tuple(f"CAP_{n}" for n in CAP_NAMES if f"CAP_{n}" not in DEFAULT_CAPS)


# the device cgroup: deny all, then what runc's AllowedDevices lets every container use
_DEVICE_RULES = (
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},  # /dev/zero
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},  # /dev/null
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},  # /dev/urandom
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},  # /dev/random
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},  # /dev/tty
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},  # /dev/console
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},  # /dev/ptmx
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},  # /dev/full
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},  # /dev/pts/*
    {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"},  # /dev/fuse
    {"allow": False, "type": "c", "major": 10, "minor": 200, "access": "rwm"},  # /dev/net/tun
)


@dataclass(frozen=True)
class SpecInput:
    """What the daemon knows about a container when it starts it.

    ``network`` is ``"none"`` (a fresh, empty network namespace), ``"host"`` (no network
    namespace) or the path of a network namespace to join (``/run/netns/...``, the bridge
    driver's). ``hosts_path``/``resolv_conf_path``/``hostname_path`` are host files bind-mounted
    at ``/etc/hosts``, ``/etc/resolv.conf``, ``/etc/hostname``. ``mounts`` are extra OCI mount
    objects (volumes, binds) appended after the standard ones. ``cgroups_path`` is
    ``linux.cgroupsPath``; ``cgroup_ns`` asks for a private cgroup namespace (Docker's default on
    cgroup v2, ``host`` on v1).
    """

    args: tuple[str, ...]
    rootfs: str
    env: tuple[str, ...] = ()
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = ()
    tty: bool = False
    hostname: str = ""
    domainname: str = ""  # the UTS domain name (Config.Domainname); not with uts_host
    network: str = "none"
    hosts_path: str | None = None
    resolv_conf_path: str | None = None
    hostname_path: str | None = None
    resources: Resources | None = None
    readonly_rootfs: bool = False
    privileged: bool = False
    rootfs_propagation: str = ""  # linux.rootfsPropagation; empty: libcontainer's default (rslave)
    mounts: tuple[dict[str, Any], ...] = ()
    cgroups_path: str = ""
    cgroup_ns: bool = False
    shm_size: int = DEFAULT_SHM_SIZE
    # Docker mounts /sys/fs/cgroup (type "cgroup", runc's special case: the container's own
    # hierarchies, read-only)
    mount_cgroups: bool = True
    cap_add: tuple[str, ...] = ()  # "NET_ADMIN" or "CAP_NET_ADMIN"; "ALL"
    cap_drop: tuple[str, ...] = ()
    no_new_privileges: bool = False
    rlimits: tuple[tuple[str, int, int], ...] = ()  # ("nofile", soft, hard), Docker's --ulimit names
    sysctls: tuple[tuple[str, str], ...] = ()
    oom_score_adj: int = 0
    # "default" (seccomp_default.json), "unconfined", or a profile in Docker's format
    # (--security-opt seccomp=profile.json); resolved against the bounding set by
    # seccompprofile.to_oci. Privileged means unconfined unless a profile is given (Docker).
    seccomp: str | dict[str, Any] = "default"
    # HostConfig.MaskedPaths / ReadonlyPaths: None = Docker's defaults; privileged = none
    masked_paths: tuple[str, ...] | None = None
    readonly_paths: tuple[str, ...] | None = None
    # OCI linux.devices to create in /dev (--privileged: every device node of the host's /dev)
    devices: tuple[dict[str, Any], ...] = ()
    pid_host: bool = False  # --pid host: no PID namespace
    ipc_host: bool = False  # --ipc host
    uts_host: bool = False  # --uts host: the host's hostname (none is set)
    # namespaces joined by path, e.g. ("pid", "/proc/123/ns/pid") for --pid container:X
    joined: tuple[tuple[str, str], ...] = ()
    # /dev/shm: "private" (a tmpfs of shm_size), "none" (--ipc none: no /dev/shm), or a
    # directory to bind there (--ipc host: /dev/shm; --ipc container:X: X's, under /proc/PID/root)
    shm: str = "private"
    # a user namespace of its own with these (container id, host id, count) maps (--userns-remap)
    uid_mappings: tuple[tuple[int, int, int], ...] = ()
    gid_mappings: tuple[tuple[int, int, int], ...] = ()


def build_spec(inp: SpecInput) -> dict[str, Any]:
    """The OCI ``config.json`` for ``inp``; raises :class:`InvalidParameter` for unusable input."""
    _validate(inp)
    caps = capabilities(inp.privileged, inp.cap_add, inp.cap_drop)
    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": inp.tty,
            "user": {"uid": inp.uid, "gid": inp.gid, "additionalGids": list(inp.additional_gids)},
            "args": list(inp.args),
            "env": build_env(inp.env, inp.hostname, inp.tty),
            "cwd": inp.cwd or "/",
            "capabilities": process_capabilities(caps, inp.uid, inp.privileged),
            "noNewPrivileges": inp.no_new_privileges,
            "oomScoreAdj": inp.oom_score_adj,
        },
        "root": {"path": inp.rootfs, "readonly": inp.readonly_rootfs},
        "mounts": _mounts(inp),
        "linux": _linux(inp, caps),
    }
    if not inp.uts_host:  # with the host's UTS namespace the host keeps its name (runc refuses one)
        spec["hostname"] = inp.hostname
    if inp.domainname and not inp.uts_host:
        spec["domainname"] = inp.domainname
    if inp.rlimits:
        spec["process"]["rlimits"] = [
            {"type": "RLIMIT_" + name.upper().removeprefix("RLIMIT_"), "soft": soft, "hard": hard}
            for name, soft, hard in inp.rlimits
        ]
    return spec


def process_capabilities(caps: list[str], uid: int, privileged: bool) -> dict[str, list[str]]:
    """The OCI capability sets of a process running as ``uid`` with the capability list ``caps``:
    the one rule for the container's init and every exec'd process. A non-root user keeps only
    the bounding set, as the kernel leaves it after runc's setuid; privileged keeps them all."""
    running = list(caps) if uid == 0 or privileged else []
    return {"bounding": list(caps), "effective": running, "permitted": list(running)}


def exec_process_spec(
    container: dict[str, Any],
    args: list[str],
    env: list[str],
    cwd: str,
    terminal: bool,
    user: tuple[int, int, list[int]] | None = None,
    privileged: bool = False,
    container_privileged: bool = False,
) -> dict[str, Any]:
    """The OCI ``process`` of ``docker exec``: the container's own process (``container`` is its
    ``config.json`` process object: user and groups, capabilities, no_new_privileges, rlimits,
    oom_score_adj) with the exec's command, environment, cwd and terminal -- moby's way -- so an
    exec'd process has exactly the init's walls. ``user`` (``docker exec -u``: uid, gid,
    supplementary gids) replaces the user, and the capability sets follow it by the same rule
    as the init's; ``privileged`` (``docker exec --privileged``) gives every capability, as
    Docker does, but not the seccomp profile or anything else of a privileged container.

        >>> c = {"user": {"uid": 0, "gid": 0}, "capabilities": {"bounding": ["CAP_KILL"]}, "noNewPrivileges": True}
        >>> p = exec_process_spec(c, ["id"], ["PATH=/bin"], "/", False, user=(1000, 1000, []))
        >>> p["user"]["uid"], p["capabilities"]["bounding"], p["capabilities"]["effective"], p["noNewPrivileges"]
        (1000, ['CAP_KILL'], [], True)
    """
    process = copy.deepcopy(container)
    process.update(args=list(args), env=list(env), cwd=cwd or "/", terminal=terminal)
    if user is not None:
        uid, gid, groups = user
        process["user"] = {"uid": uid, "gid": gid, "additionalGids": list(groups)}
    uid = int((process.get("user") or {}).get("uid", 0))
    bounding = list(ALL_CAPS) if privileged else list((process.get("capabilities") or {}).get("bounding") or [])
    process["capabilities"] = process_capabilities(bounding, uid, privileged or container_privileged)
    return process


def capabilities(privileged: bool, add: tuple[str, ...], drop: tuple[str, ...]) -> list[str]:
    """Docker's capability set (moby's ``TweakCapabilities``), checked side by side with dockerd:

    - privileged: every capability, whatever ``add``/``drop`` say;
    - ``ALL`` among the added: every capability but the dropped ones (a dropped ``ALL`` is not
      a capability and drops nothing here);
    - ``ALL`` among the dropped: exactly the added ones;
    - otherwise the defaults minus the dropped, plus the added.

    Like Docker, names may omit ``CAP_`` and are case-insensitive.

        >>> capabilities(False, ("ALL",), ("ALL",)) == list(ALL_CAPS)
        True
        >>> capabilities(False, ("chown",), ("all",))
        ['CAP_CHOWN']
    """

    def norm(names: tuple[str, ...]) -> list[str]:
        out = []
        for name in names:
            up = name.upper()
            if up == "ALL":
                out.append("ALL")
                continue
            full = up if up.startswith("CAP_") else "CAP_" + up
            if full not in ALL_CAPS:
                raise InvalidParameter(f"build container spec: unknown capability: {name!r}")
            out.append(full)
        return out

    adds, drops = norm(add), norm(drop)
    if privileged:
        return list(ALL_CAPS)
    if "ALL" in adds:
        return [c for c in ALL_CAPS if c not in drops]
    if "ALL" in drops:
        caps: list[str] = []
    else:
        caps = [c for c in DEFAULT_CAPS if c not in drops]
    caps += [c for c in adds if c not in caps]
    return caps


def build_env(env: tuple[str, ...], hostname: str, tty: bool) -> list[str]:
    """Docker's container environment: PATH/HOSTNAME/TERM defaults, the container's own values win."""
    names = {item.partition("=")[0] for item in env}
    out: list[str] = []
    if "PATH" not in names:
        out.append(DEFAULT_PATH)
    if hostname and "HOSTNAME" not in names:
        out.append(f"HOSTNAME={hostname}")
    if tty and "TERM" not in names:
        out.append("TERM=xterm")
    return out + list(env)


def resources_to_oci(res: Resources | None) -> dict[str, Any]:
    """``linux.resources`` (without devices) for berth's cgroup :class:`Resources`."""
    out: dict[str, Any] = {}
    if res is None:
        return out
    memory = getattr(res, "memory", None)
    nano_cpus = getattr(res, "nano_cpus", None)
    cpu_shares = getattr(res, "cpu_shares", None)
    pids_limit = getattr(res, "pids_limit", None)
    if memory:
        out["memory"] = {"limit": memory}
        if getattr(res, "memory_swap", None):
            out["memory"]["swap"] = res.memory_swap
    if getattr(res, "memory_reservation", None):
        out.setdefault("memory", {})["reservation"] = res.memory_reservation
    if getattr(res, "memory_swappiness", None) is not None:
        out.setdefault("memory", {})["swappiness"] = res.memory_swappiness
    if getattr(res, "oom_kill_disable", False):
        out.setdefault("memory", {})["disableOOMKiller"] = True
    cpu: dict[str, Any] = {}
    if cpu_shares:
        cpu["shares"] = cpu_shares
    if nano_cpus:
        cpu["quota"] = nano_cpus * CPU_PERIOD // 1_000_000_000
        cpu["period"] = CPU_PERIOD
    for field, key in (("cpu_quota", "quota"), ("cpu_period", "period"), ("cpuset_cpus", "cpus"),
                       ("cpuset_mems", "mems")):
        if getattr(res, field, None):
            cpu[key] = getattr(res, field)
    if cpu:
        out["cpu"] = cpu
    if pids_limit:
        out["pids"] = {"limit": pids_limit}
    if getattr(res, "blkio_weight", None):
        out["blockIO"] = {"weight": res.blkio_weight}
    return out


def _validate(inp: SpecInput) -> None:
    if not inp.args:
        raise InvalidParameter("build container spec: no command specified")
    if not inp.rootfs.startswith("/"):
        raise InvalidParameter(f"build container spec: rootfs {inp.rootfs!r} is not an absolute path")
    if inp.cwd and not inp.cwd.startswith("/"):
        raise InvalidParameter(f"build container spec: working directory {inp.cwd!r} is not an absolute path")
    if inp.network not in ("none", "host") and not inp.network.startswith("/"):
        raise InvalidParameter(
            f"build container spec: network {inp.network!r} is not none, host or a netns path"
        )
    for item in inp.env:
        if not item or item.startswith("="):
            raise InvalidParameter(f"build container spec: bad environment entry {item!r}")
    if isinstance(inp.seccomp, str) and inp.seccomp not in ("default", "unconfined"):
        raise InvalidParameter(
            f"build container spec: seccomp {inp.seccomp!r} is not default, unconfined or a profile"
        )
    for name, soft, hard in inp.rlimits:
        if soft > hard and hard >= 0:
            raise InvalidParameter(
                f"build container spec: ulimit {name}: soft limit {soft} is above hard limit {hard}"
            )
    if inp.shm not in ("private", "none") and not inp.shm.startswith("/"):
        raise InvalidParameter(f"build container spec: shm {inp.shm!r} is not private, none or a path")
    for kind, path in inp.joined:
        if kind not in ("pid", "ipc", "uts", "user") or not path.startswith("/"):
            raise InvalidParameter(f"build container spec: cannot join {kind} namespace {path!r}")
    for m in inp.mounts:
        if not str(m.get("destination", "")).startswith("/"):
            raise InvalidParameter(
                f"build container spec: mount destination {m.get('destination')!r} is not absolute"
            )


def _mounts(inp: SpecInput) -> list[dict[str, Any]]:
    mounts = default_mounts(inp.shm_size, inp.privileged, cgroup=inp.mount_cgroups)
    if inp.shm != "private":  # moby: --ipc none has no /dev/shm, host and container:X bind one
        mounts = [m for m in mounts if m["destination"] != "/dev/shm"]
        if inp.shm != "none":
            mounts.append({"destination": "/dev/shm", "type": "bind", "source": inp.shm, "options": ["rbind", "rprivate"]})
    for dest, src in (
        ("/etc/resolv.conf", inp.resolv_conf_path),
        ("/etc/hostname", inp.hostname_path),
        ("/etc/hosts", inp.hosts_path),
    ):
        if src:
            # read-only with a read-only root, as moby's NetworkMounts (Writable: !ReadonlyRootfs)
            options = ["rbind", "ro", "rprivate"] if inp.readonly_rootfs else ["rbind", "rprivate"]
            mounts.append({"destination": dest, "type": "bind", "source": src, "options": options})
    mounts.extend(dict(m) for m in inp.mounts)
    return mounts


def _linux(inp: SpecInput, caps: list[str]) -> dict[str, Any]:
    namespaces: list[dict[str, str]] = [{"type": "mount"}]
    if inp.network == "none":
        namespaces.append({"type": "network"})
    elif inp.network != "host":
        namespaces.append({"type": "network", "path": inp.network})
    joined = dict(inp.joined)
    for kind, host in (("uts", inp.uts_host), ("pid", inp.pid_host), ("ipc", inp.ipc_host)):
        if kind in joined:
            namespaces.append({"type": kind, "path": joined[kind]})
        elif not host:
            namespaces.append({"type": kind})
    if inp.cgroup_ns:
        namespaces.append({"type": "cgroup"})
    if "user" in joined:  # another container's, with the same maps (its PID or IPC namespace is joined)
        namespaces.append({"type": "user", "path": joined["user"]})
    elif inp.uid_mappings:
        namespaces.append({"type": "user"})
    resources = resources_to_oci(inp.resources)
    resources["devices"] = (
        [{"allow": True, "access": "rwm"}] if inp.privileged else [dict(r) for r in _DEVICE_RULES]
    )
    masked = MASKED_PATHS if inp.masked_paths is None else inp.masked_paths
    readonly = READONLY_PATHS if inp.readonly_paths is None else inp.readonly_paths
    linux: dict[str, Any] = {
        "resources": resources,
        "namespaces": namespaces,
        "maskedPaths": [] if inp.privileged else list(masked),
        "readonlyPaths": [] if inp.privileged else list(readonly),
    }
    if inp.uid_mappings:  # with a joined user namespace they describe it (runc wants them then too)
        for key, maps in (("uidMappings", inp.uid_mappings), ("gidMappings", inp.gid_mappings)):
            linux[key] = [{"containerID": c, "hostID": h, "size": n} for c, h, n in maps]
    if inp.rootfs_propagation:
        linux["rootfsPropagation"] = inp.rootfs_propagation
    if inp.devices:
        linux["devices"] = [dict(d) for d in inp.devices]
    if inp.cgroups_path:
        linux["cgroupsPath"] = inp.cgroups_path
    if inp.sysctls:
        linux["sysctl"] = dict(inp.sysctls)
    seccomp = _seccomp(inp, caps)
    if seccomp is not None:
        linux["seccomp"] = seccomp
    return linux


def _seccomp(inp: SpecInput, bounding: list[str]) -> dict[str, Any] | None:
    """Docker's choice: unconfined, or the profile resolved for this bounding set.

    ``--privileged`` runs unconfined unless a profile of its own was given (moby's WithSeccomp).
    """
    if inp.seccomp == "unconfined" or (inp.privileged and not isinstance(inp.seccomp, dict)):
        return None
    if isinstance(inp.seccomp, dict):
        return seccompprofile.to_oci(inp.seccomp, bounding)
    return _default_seccomp(tuple(bounding))


@functools.lru_cache(maxsize=16)
def _default_seccomp(bounding: tuple[str, ...]) -> dict[str, Any]:
    """The default profile's OCI form for a bounding set, resolved once per set (0.2-0.5 ms on
    the start's path, on the loop) and shared by the specs that get it: nothing changes a spec's
    ``linux.seccomp`` after it is built (it is serialised for the shim and config.json)."""
    return seccompprofile.default_oci(bounding)
