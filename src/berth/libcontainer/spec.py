"""The OCI runtime-spec, parsed into small frozen records (:mod:`berth.libcontainer.record`) before any side effect.

``parse(config)`` takes the ``config.json`` dict the exec driver wrote and returns a
:class:`ContainerSpec`; every check that can fail without the kernel happens here, so init
(which runs in a forked child) only performs the plan. Mount options are split the way runc
splits them (:mod:`berth.libcontainer.mountopts`): flag words become ``MS_*`` bits, propagation
words a separate propagation mount, everything else the filesystem's data string.

    >>> spec = parse({"root": {"path": "/r"}, "process": {"args": ["sh"], "cwd": "/"},
    ...               "linux": {"namespaces": [{"type": "mount"}]}})
    >>> spec.process.args, spec.namespace("pid")
    (('sh',), None)

``Mount`` and ``Stdio`` are the types other boxes hand to :func:`berth.libcontainer.create`.
"""

from __future__ import annotations

import os
import resource

from berth.libcontainer import fastjson as json
from berth.libcontainer.capabilities import parse_caps
from berth.libcontainer.failure import ContainerInitError
from berth.libcontainer.mountopts import PROPAGATION, check_mount_options
from berth.libcontainer.record import field, record
from berth.libcontainer.sysctl import SysctlError
from berth.libcontainer.sysctl import check as check_sysctls

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@record
class Mount:
    """One mount: ``mount -t type -o options source target``; also the graph driver's plan.

    A bind with ``uid_mappings``/``gid_mappings`` (the OCI mount's ``uidMappings``/``gidMappings``,
    runtime-spec 1.1) is id-mapped: on-disk id ``containerID + i`` reads as ``hostID + i``
    (``mount_setattr(MOUNT_ATTR_IDMAP)`` with a user namespace of those maps), recursively unless
    the options say ``idmap`` or the bind is not ``rbind``. ``tree`` is such a mount already made
    by a privileged ancestor (a detached copy, :func:`berth.libcontainer.idmapped.prepare_mounts`:
    init in a user namespace of its own may not id-map), which init attaches instead."""

    type: str
    source: str
    target: str
    options: tuple[str, ...] = ()
    uid_mappings: tuple[IdMap, ...] = ()
    gid_mappings: tuple[IdMap, ...] = ()
    tree: int = -1

    @property
    def idmapped(self) -> bool:
        return bool(self.uid_mappings)

    @property
    def idmap_recursive(self) -> bool:
        return "ridmap" in self.options or ("idmap" not in self.options and "rbind" in self.options)


@record
class Stdio:
    """File descriptors in the caller; with ``tty`` all three are the pty slave (made the ctty)."""

    stdin: int
    stdout: int
    stderr: int
    tty: bool = False
    # With tty and a connected unix socket here, the pty is made *inside* the container (its own
    # /dev/pts/N, as runc's --console-socket does) and its master sent over the socket with
    # SCM_RIGHTS; stdin/stdout/stderr are then ignored (pass -1).
    console_socket: int = -1
    # The caller's fds 3 .. 3+preserve_fds-1 stay open in the process as they are (an OCI
    # runtime's --preserve-fds and LISTEN_FDS socket activation); every other fd is closed.
    preserve_fds: int = 0

    @property
    def console(self) -> bool:
        return self.tty and self.console_socket >= 0


# Docker's default masked and read-only /proc and /sys paths (moby's oci.DefaultLinuxSpec).
MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


@record
class User:
    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = ()


@record
class Rlimit:
    resource: int
    soft: int
    hard: int
    name: str = ""


@record
class Capabilities:
    """Capability numbers per set; ``None`` on Process means "leave the caller's sets"."""

    bounding: frozenset[int] = frozenset()
    effective: frozenset[int] = frozenset()
    permitted: frozenset[int] = frozenset()
    inheritable: frozenset[int] = frozenset()
    ambient: frozenset[int] = frozenset()


DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@record
class Process:
    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: User = field(default_factory=User)
    terminal: bool = False
    capabilities: Capabilities | None = None
    rlimits: tuple[Rlimit, ...] = ()
    no_new_privileges: bool = False
    oom_score_adj: int | None = None
    apparmor_profile: str = ""  # applied at exec (the caller checked the host has AppArmor)
    console_size: tuple[int, int] | None = None  # consoleSize (height, width): the pty's size from the start

    @property
    def path_env(self) -> str:
        """``PATH`` from the process's environment (the last one wins), or the default."""
        value = None
        for entry in self.env:
            if entry.startswith("PATH="):
                value = entry[5:]
        return DEFAULT_PATH if value is None else value


@record
class Namespace:
    type: str  # pid, mount, uts, ipc, network, cgroup, user
    path: str | None = None


@record
class Hook:
    """An OCI hook: a program, its argv and environment, a timeout in seconds (None: none)."""

    path: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    timeout: int | None = None


@record
class IdMap:
    """One line of a user namespace's uid_map or gid_map."""

    container_id: int
    host_id: int
    size: int


@record
class Device:
    path: str
    type: str  # c, b, u, p
    major: int
    minor: int
    file_mode: int = 0o666
    uid: int = 0
    gid: int = 0


@record
class ContainerSpec:
    root_path: str
    process: Process
    root_readonly: bool = False
    hostname: str | None = None
    domainname: str | None = None
    mounts: tuple[Mount, ...] = ()
    namespaces: tuple[Namespace, ...] = ()
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    devices: tuple[Device, ...] = ()
    sysctl: tuple[tuple[str, str], ...] = ()
    rootfs_propagation: str = "rslave"
    seccomp: str | None = None  # linux.seccomp as canonical JSON (compiled in the parent)
    uid_mappings: tuple[IdMap, ...] = ()  # with a new user namespace
    gid_mappings: tuple[IdMap, ...] = ()
    # the hooks init runs (:mod:`berth.libcontainer.hookrun`), and the state they get: the
    # caller's JSON template (an OCI runtime's), without which they are refused
    create_container_hooks: tuple[Hook, ...] = ()
    start_container_hooks: tuple[Hook, ...] = ()
    hook_state: str = ""
    # the caller runs the runtime's create hooks (prestart, createRuntime) while init waits
    # (set by :mod:`berth.libcontainer.process`, not by the spec)
    sync_create_hooks: bool = False

    @property
    def chroot(self) -> bool:
        """No mount namespace entry: the runtime's own is inherited (OCI), and the container is
        set up in a private bind of its root there, entered with chroot (runc does the same)."""
        return self.namespace("mount") is None

    @property
    def new_userns(self) -> bool:
        ns = self.namespace("user")
        return ns is not None and ns.path is None

    def namespace(self, type_: str) -> Namespace | None:
        for ns in self.namespaces:
            if ns.type == type_:
                return ns
        return None


NAMESPACE_TYPES = ("pid", "mount", "uts", "ipc", "network", "cgroup", "user")
# The standard device nodes every container gets (runc's AllowedDevices "default" subset).
DEFAULT_DEVICES = (
    Device("/dev/null", "c", 1, 3),
    Device("/dev/zero", "c", 1, 5),
    Device("/dev/full", "c", 1, 7),
    Device("/dev/random", "c", 1, 8),
    Device("/dev/urandom", "c", 1, 9),
    Device("/dev/tty", "c", 5, 0),
)


def _bad(what: str) -> ContainerInitError:
    return ContainerInitError(f"invalid config.json: {what}", 128)


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"{what} must be an integer, got {value!r}")
    return value


def _str(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or "\0" in value or "\n" in value:
        raise _bad(f"{what} must be a string, got {value!r}")
    return value


def parse_process(obj: Any) -> Process:
    """Parse an OCI ``process`` object (also what ``exec_process`` receives)."""
    if not isinstance(obj, dict):
        raise _bad("process must be an object")
    args = obj.get("args") or []
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise _bad("process.args must be a non-empty list of strings")
    env = obj.get("env") or []
    if not isinstance(env, list) or not all(isinstance(e, str) for e in env):
        raise _bad("process.env must be a list of strings")
    cwd = obj.get("cwd") or "/"
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise _bad(f"process.cwd must be an absolute path, got {cwd!r}")
    u = obj.get("user") or {}
    user = User(
        _int(u.get("uid", 0), "process.user.uid"),
        _int(u.get("gid", 0), "process.user.gid"),
        tuple(_int(g, "process.user.additionalGids") for g in u.get("additionalGids") or ()),
    )
    caps = None
    if obj.get("capabilities") is not None:
        c = obj["capabilities"]
        if not isinstance(c, dict):
            raise _bad("process.capabilities must be an object")
        try:
            caps = Capabilities(
                *(
                    parse_caps(c.get(k) or ())
                    for k in ("bounding", "effective", "permitted", "inheritable", "ambient")
                )
            )
        except ValueError as exc:
            raise _bad(f"process.capabilities: {exc}") from exc
    rlimits = []
    for rl in obj.get("rlimits") or ():
        name = rl.get("type", "")
        res = getattr(resource, name, None) if name.startswith("RLIMIT_") else None
        if not isinstance(res, int):
            raise _bad(f"unknown rlimit type {name!r}")
        rlimits.append(Rlimit(res, _int(rl.get("soft", 0), name), _int(rl.get("hard", 0), name), name))
    oom = obj.get("oomScoreAdj")
    return Process(
        args=tuple(args),
        env=tuple(env),
        cwd=cwd,
        user=user,
        terminal=bool(obj.get("terminal", False)),
        capabilities=caps,
        rlimits=tuple(rlimits),
        no_new_privileges=bool(obj.get("noNewPrivileges", False)),
        oom_score_adj=None if oom is None else _int(oom, "process.oomScoreAdj"),
        apparmor_profile=_str(obj.get("apparmorProfile"), "process.apparmorProfile"),
        console_size=_console_size(obj.get("consoleSize")),
    )


def _console_size(box: Any) -> tuple[int, int] | None:
    if box is None:
        return None
    if not isinstance(box, dict):
        raise _bad("process.consoleSize must be an object")
    height, width = _int(box.get("height", 0), "process.consoleSize.height"), _int(box.get("width", 0), "process.consoleSize.width")
    return (height, width) if height > 0 and width > 0 else None


# What an exec'd process takes from the container's own process when its process object leaves
# it out (runc's newInitConfig): the walls are the container's unless the caller says otherwise.
INHERITED = ("user", "capabilities", "noNewPrivileges", "rlimits", "oomScoreAdj", "apparmorProfile")


def parse_exec_process(obj: Any, container_process: Any) -> Process:
    """Parse the process object of an exec, filling what it omits from the container's."""
    if not isinstance(obj, dict):
        raise _bad("process must be an object")
    merged = dict(obj)
    if isinstance(container_process, dict):
        for key in INHERITED:
            if merged.get(key) is None or (key == "rlimits" and not merged[key]):
                if container_process.get(key) is not None:
                    merged[key] = container_process[key]
    return parse_process(merged)


def parse_mount(m: Any) -> Mount:
    """One OCI ``mounts[]`` entry, checked (options, id maps); its ``target`` is the destination."""
    if not isinstance(m, dict) or not isinstance(m.get("destination"), str):
        raise _bad(f"mount needs a destination: {m!r}")
    dest = m["destination"]
    if not dest.startswith("/"):
        raise _bad(f"mount destination must be absolute: {dest!r}")
    options = m.get("options") or ()
    if not isinstance(options, list | tuple) or not all(isinstance(o, str) for o in options):
        raise _bad(f"mount '{dest}': options must be a list of strings")
    options = tuple(options)
    mtype = m.get("type") or ("bind" if any(o in ("bind", "rbind") for o in options) else "none")
    problem = check_mount_options(mtype, options)
    if problem is not None:
        raise _bad(f"mount '{dest}': {problem}")
    uid_maps = _id_maps(m, "uidMappings", f"mount '{dest}': ")
    gid_maps = _id_maps(m, "gidMappings", f"mount '{dest}': ")
    if uid_maps or gid_maps or "idmap" in options or "ridmap" in options:
        if mtype != "bind" and not any(o in ("bind", "rbind") for o in options):
            raise _bad(f"mount '{dest}': id-mapped mounts must be bind mounts, not {mtype}")
        if bool(uid_maps) != bool(gid_maps):
            raise _bad(f"mount '{dest}': an id-mapped mount needs both uidMappings and gidMappings")
    return Mount(mtype, m.get("source") or mtype, dest, options, uid_maps, gid_maps)


def _idmap_defaults(mounts: tuple[Mount, ...], uid_maps: tuple[IdMap, ...], gid_maps: tuple[IdMap, ...]) -> tuple[Mount, ...]:
    """``idmap``/``ridmap`` without mappings of its own: the container's (runc's rule)."""
    out = []
    for m in mounts:
        if not m.uid_mappings and ("idmap" in m.options or "ridmap" in m.options):
            if not uid_maps:
                raise _bad(f"mount '{m.target}': idmap without uidMappings needs the container's user namespace maps")
            m = Mount(m.type, m.source, m.target, m.options, uid_maps, gid_maps)
        out.append(m)
    return tuple(out)


def _parse_device(d: Any) -> Device:
    try:
        return Device(
            d["path"],
            d["type"],
            _int(d.get("major", 0), "device major"),
            _int(d.get("minor", 0), "device minor"),
            _int(d.get("fileMode", 0o666), "device fileMode"),
            _int(d.get("uid", 0), "device uid"),
            _int(d.get("gid", 0), "device gid"),
        )
    except (KeyError, TypeError) as exc:
        raise _bad(f"device needs path and type: {d!r}") from exc


def parse(config: dict[str, Any]) -> ContainerSpec:
    """Validate and convert a ``config.json`` dict; raises ContainerInitError (exit 128)."""
    root = config.get("root") or {}
    if not isinstance(root.get("path"), str) or not root["path"]:
        raise _bad("root.path is required")
    linux = config.get("linux") or {}
    namespaces = []
    for ns in linux.get("namespaces") or ():
        if ns.get("type") not in NAMESPACE_TYPES:
            raise _bad(f"unknown namespace type {ns.get('type')!r}")
        namespaces.append(Namespace(ns["type"], ns.get("path") or None))
    if len({ns.type for ns in namespaces}) != len(namespaces):
        raise _bad("a namespace type is listed twice")
    propagation = linux.get("rootfsPropagation") or "rslave"
    if propagation not in PROPAGATION:
        raise _bad(f"rootfsPropagation={propagation} is not supported")
    hostname = config.get("hostname") or None
    # As runc: a joined UTS namespace (a path) is enough, and init sets the name in it.
    if hostname is not None and not any(ns.type == "uts" for ns in namespaces):
        raise _bad("unable to set hostname without a private UTS namespace")
    domainname = config.get("domainname") or None
    if domainname is not None and not any(ns.type == "uts" for ns in namespaces):
        raise _bad("unable to set domainname without a private UTS namespace")
    uid_mappings = _id_maps(linux, "uidMappings")
    gid_mappings = _id_maps(linux, "gidMappings")
    user = next((ns for ns in namespaces if ns.type == "user"), None)
    if user is not None and user.path is None:
        if not uid_mappings or not gid_mappings:
            raise _bad("a new user namespace needs linux.uidMappings and linux.gidMappings")
    elif user is None and (uid_mappings or gid_mappings):
        # with a joined one (a path) they describe it, as runc reads them; not written
        raise _bad("linux.uidMappings/gidMappings need a new user namespace (or the joined one they describe): "
                   "linux.namespaces has no user entry")
    devices = tuple(_parse_device(d) for d in linux.get("devices") or ())
    sysctl = tuple(sorted((str(k), str(v)) for k, v in (linux.get("sysctl") or {}).items()))
    _check_sysctls(sysctl, namespaces)
    return ContainerSpec(
        root_path=root["path"],
        process=parse_process(config.get("process") or {}),
        root_readonly=bool(root.get("readonly", False)),
        hostname=hostname,
        domainname=domainname,
        mounts=_idmap_defaults(tuple(parse_mount(m) for m in config.get("mounts") or ()), uid_mappings, gid_mappings),
        namespaces=tuple(namespaces),
        masked_paths=tuple(linux.get("maskedPaths") or ()),
        readonly_paths=tuple(linux.get("readonlyPaths") or ()),
        devices=devices,
        sysctl=sysctl,
        rootfs_propagation=propagation,
        seccomp=_seccomp_json(linux.get("seccomp")),
        uid_mappings=uid_mappings,
        gid_mappings=gid_mappings,
        create_container_hooks=_hooks(config, "createContainer"),
        start_container_hooks=_hooks(config, "startContainer"),
    )


def hooks_of(config: dict[str, Any], phase: str) -> tuple[Hook, ...]:
    """``config``'s hooks of one phase, checked (ContainerInitError naming the field)."""
    return _hooks(config, phase)


def _hooks(config: dict[str, Any], phase: str) -> tuple[Hook, ...]:
    hooks = (config.get("hooks") or {}).get(phase) or []
    if not isinstance(hooks, list):
        raise _bad(f"hooks.{phase} must be a list")
    out = []
    for i, h in enumerate(hooks):
        what = f"hooks.{phase}[{i}]"
        if not isinstance(h, dict) or not isinstance(h.get("path"), str) or not h["path"].startswith("/"):
            raise _bad(f"{what}.path must be an absolute path")
        args, env = h.get("args") or [], h.get("env") or []
        if not all(isinstance(a, str) for a in [*args, *env]):
            raise _bad(f"{what}: args and env must be lists of strings")
        timeout = h.get("timeout")
        if timeout is not None and (_int(timeout, f"{what}.timeout") <= 0):
            raise _bad(f"{what}.timeout must be positive")
        out.append(Hook(h["path"], tuple(args), tuple(env), timeout))
    return tuple(out)


def _id_maps(obj: dict[str, Any], key: str, where: str = "linux.") -> tuple[IdMap, ...]:
    """``obj[key]``: a list of id ranges (``linux.uidMappings``, or a mount's); ``where`` prefixes
    the key in messages."""
    name = f"{where}{key}"
    entries = obj.get(key) or []
    if not isinstance(entries, list):
        raise _bad(f"{name} must be a list")
    maps = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise _bad(f"{name}[{i}] must be an object")
        m = IdMap(*(_int(e.get(k), f"{name}[{i}].{k}") for k in ("containerID", "hostID", "size")))
        if m.container_id < 0 or m.host_id < 0 or m.size <= 0 or max(m.container_id, m.host_id) + m.size > 1 << 32:
            raise _bad(f"{name}[{i}]: {m.container_id} {m.host_id} {m.size} is not a valid id range")
        maps.append(m)
    if len(maps) > 340:  # the kernel's limit on lines in uid_map/gid_map
        raise _bad(f"{name}: at most 340 ranges, got {len(maps)}")
    return tuple(maps)


def _joins_own_netns(path: str) -> bool:
    # runc's isHostNetNS: "host" means the caller's own network namespace
    try:
        mine, theirs = os.stat("/proc/self/ns/net"), os.stat(path)
    except OSError as exc:
        raise _bad(f"invalid netns path {path}: {exc.strerror}") from exc
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


def _check_sysctls(sysctl: tuple[tuple[str, str], ...], namespaces: list[Namespace]) -> None:
    """As runc: only sysctls of namespaces the container does not share with the host."""
    if not sysctl:
        return
    kinds = {ns.type: ns for ns in namespaces}
    net = kinds.get("network")
    try:
        check_sysctls(
            (k for k, _ in sysctl),
            private_net=net is not None and (net.path is None or not _joins_own_netns(net.path)),
            private_ipc="ipc" in kinds,
            private_uts="uts" in kinds,
        )
    except SysctlError as exc:
        raise _bad(str(exc)) from None


def _seccomp_json(profile: Any) -> str | None:
    if profile is None:
        return None
    if not isinstance(profile, dict) or not isinstance(profile.get("defaultAction"), str):
        raise _bad("linux.seccomp must be an object with a defaultAction")
    return json.dumps(profile, sort_keys=True)
