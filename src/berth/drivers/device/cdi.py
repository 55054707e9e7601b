"""The Container Device Interface (CDI): vendor spec files -> edits of a container's OCI spec.

A CDI spec (JSON or YAML, in ``/etc/cdi`` and ``/var/run/cdi``; the later directory wins) names a
kind ``vendor.com/class`` and its devices, each with *container edits*: environment entries,
device nodes, mounts, OCI hooks and extra groups, plus edits common to every device of the spec.
A container asks for devices by qualified name, ``vendor.com/class=name`` (``docker run
--device nvidia.com/gpu=0``, or ``--gpus``, see :mod:`.requests`)::

    registry = Registry([Path("/etc/cdi"), Path("/var/run/cdi")])
    edits = registry.resolve(["vendor.com/dev=x"])     # DeviceError for a name no spec has
    apply(spec, edits)                                 # the OCI config.json dict, in place

``apply`` follows the reference implementation (tags.cncf.io/container-device-interface): an
env entry replaces one of the same name; a device node replaces one at the same path, is filled
in from the host node (type, numbers, mode; ``hostPath`` defaults to ``path``) and allowed in the
device cgroup with its ``permissions`` (``rwm`` by default); a mount replaces one at the same
container path and the mounts are then ordered by depth; hooks are added to their phase; groups
are added to the process. Spec files are untrusted input: every field is type-checked and a bad
file is skipped with the reason (``Registry.errors``), as the reference does, so one broken vendor
file does not take the others down.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth.drivers.device.nodes import DeviceError

HOOK_PHASES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
MAX_SPEC_BYTES = 4 << 20  # a vendor spec is a few KB; a bigger file is refused unread

_VENDOR = re.compile(r"^[A-Za-z](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?$")
_CLASS = re.compile(r"^[A-Za-z](?:[A-Za-z0-9_-]*[A-Za-z0-9])?$")
_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.:-]*[A-Za-z0-9])?$")


def parse_qualified_name(name: str) -> tuple[str, str, str]:
    """``vendor.com/class=name`` -> (vendor, class, name); :class:`DeviceError` otherwise.

    >>> parse_qualified_name("nvidia.com/gpu=all")
    ('nvidia.com', 'gpu', 'all')
    """
    kind, eq, dev = name.partition("=")
    vendor, slash, klass = kind.partition("/")
    if not (eq and slash and _VENDOR.match(vendor) and _CLASS.match(klass) and _NAME.match(dev)):
        raise DeviceError(f"invalid CDI device name {name!r}: it is not vendor.com/class=name")
    return vendor, klass, dev


def is_qualified_name(name: str) -> bool:
    try:
        parse_qualified_name(name)
    except DeviceError:
        return False
    return True


# ---- container edits ------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceNode:
    path: str
    host_path: str = ""
    type: str = ""
    major: int | None = None
    minor: int | None = None
    file_mode: int | None = None
    permissions: str = ""
    uid: int | None = None
    gid: int | None = None


@dataclass(frozen=True)
class MountEdit:
    host_path: str
    container_path: str
    type: str = ""
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hook:
    phase: str
    path: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    timeout: int | None = None


@dataclass(frozen=True)
class ContainerEdits:
    """What one device (or a whole spec) adds to a container; ``source`` names it in errors."""

    source: str = ""
    env: tuple[str, ...] = ()
    device_nodes: tuple[DeviceNode, ...] = ()
    mounts: tuple[MountEdit, ...] = ()
    hooks: tuple[Hook, ...] = ()
    additional_gids: tuple[int, ...] = ()


class SpecError(ValueError):
    """A CDI spec file that cannot be used (the message names the field)."""


def _obj(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpecError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _str(value: Any, where: str, required: bool = False) -> str:
    if value is None or value == "":
        if required:
            raise SpecError(f"{where}: missing")
        return ""
    if not isinstance(value, str):
        raise SpecError(f"{where}: expected a string, got {type(value).__name__}")
    return value


def _int(value: Any, where: str, low: int = 0, high: int = 2**32 - 1) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise SpecError(f"{where}: {value!r} is not an integer in [{low}, {high}]")
    return value


def _abs(path: str, where: str) -> str:
    if not path.startswith("/"):
        raise SpecError(f"{where}: {path!r} is not an absolute path")
    return path


def parse_edits(obj: Any, where: str) -> ContainerEdits:
    """A ``containerEdits`` object, checked field by field."""
    obj = _obj(obj, where)
    env = []
    for i, item in enumerate(_list(obj.get("env"), f"{where}.env")):
        entry = _str(item, f"{where}.env[{i}]", required=True)
        if not entry.partition("=")[0] or "\0" in entry:
            raise SpecError(f"{where}.env[{i}]: {entry!r} is not NAME=value")
        env.append(entry)
    nodes = []
    for i, item in enumerate(_list(obj.get("deviceNodes"), f"{where}.deviceNodes")):
        w = f"{where}.deviceNodes[{i}]"
        d = _obj(item, w)
        kind = _str(d.get("type"), f"{w}.type")
        if kind not in ("", "b", "c", "u", "p"):
            raise SpecError(f"{w}.type: {kind!r} is not b, c, u or p")
        perms = _str(d.get("permissions"), f"{w}.permissions")
        if perms and not re.fullmatch(r"[rwm]{1,3}", perms):
            raise SpecError(f"{w}.permissions: {perms!r} is not made of r, w and m")
        host = _str(d.get("hostPath"), f"{w}.hostPath")
        nodes.append(
            DeviceNode(
                path=_abs(_str(d.get("path"), f"{w}.path", required=True), f"{w}.path"),
                host_path=_abs(host, f"{w}.hostPath") if host else "",
                type=kind,
                major=_int(d.get("major"), f"{w}.major"),
                minor=_int(d.get("minor"), f"{w}.minor"),
                file_mode=_int(d.get("fileMode"), f"{w}.fileMode", high=0o7777),
                permissions=perms,
                uid=_int(d.get("uid"), f"{w}.uid"),
                gid=_int(d.get("gid"), f"{w}.gid"),
            )
        )
    mounts = []
    for i, item in enumerate(_list(obj.get("mounts"), f"{where}.mounts")):
        w = f"{where}.mounts[{i}]"
        m = _obj(item, w)
        options = tuple(_str(o, f"{w}.options[{j}]", required=True) for j, o in enumerate(_list(m.get("options"), f"{w}.options")))
        mounts.append(
            MountEdit(
                host_path=_str(m.get("hostPath"), f"{w}.hostPath", required=True),
                container_path=_abs(_str(m.get("containerPath"), f"{w}.containerPath", required=True), f"{w}.containerPath"),
                type=_str(m.get("type"), f"{w}.type"),
                options=options,
            )
        )
    hooks = []
    for i, item in enumerate(_list(obj.get("hooks"), f"{where}.hooks")):
        w = f"{where}.hooks[{i}]"
        h = _obj(item, w)
        phase = _str(h.get("hookName"), f"{w}.hookName", required=True)
        if phase not in HOOK_PHASES:
            raise SpecError(f"{w}.hookName: {phase!r} is not one of {', '.join(HOOK_PHASES)}")
        hooks.append(
            Hook(
                phase=phase,
                path=_abs(_str(h.get("path"), f"{w}.path", required=True), f"{w}.path"),
                args=tuple(_str(a, f"{w}.args[{j}]") for j, a in enumerate(_list(h.get("args"), f"{w}.args"))),
                env=tuple(_str(e, f"{w}.env[{j}]", required=True) for j, e in enumerate(_list(h.get("env"), f"{w}.env"))),
                timeout=_int(h.get("timeout"), f"{w}.timeout", low=1),
            )
        )
    gids = [_int(g, f"{where}.additionalGids[{i}]") for i, g in enumerate(_list(obj.get("additionalGids"), f"{where}.additionalGids"))]
    for key in ("intelRdt", "netDevices"):
        if obj.get(key):
            raise SpecError(f"{where}.{key}: not supported by berth")
    return ContainerEdits(where, tuple(env), tuple(nodes), tuple(mounts), tuple(hooks), tuple(g for g in gids if g))


# ---- spec files and the registry ------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    path: str
    vendor: str
    klass: str
    common: ContainerEdits
    devices: dict[str, ContainerEdits]


def parse_spec(doc: Any, path: str) -> Spec:
    doc = _obj(doc, path)
    if not isinstance(doc.get("cdiVersion"), str):
        raise SpecError(f"{path}: cdiVersion: missing")
    kind = _str(doc.get("kind"), f"{path}: kind", required=True)
    vendor, _, klass = kind.partition("/")
    if not (_VENDOR.match(vendor) and _CLASS.match(klass)):
        raise SpecError(f"{path}: kind: {kind!r} is not vendor.com/class")
    devices: dict[str, ContainerEdits] = {}
    for i, item in enumerate(_list(doc.get("devices"), f"{path}: devices")):
        d = _obj(item, f"{path}: devices[{i}]")
        name = _str(d.get("name"), f"{path}: devices[{i}].name", required=True)
        if not _NAME.match(name):
            raise SpecError(f"{path}: devices[{i}].name: {name!r} is not a valid device name")
        if name in devices:
            raise SpecError(f"{path}: devices[{i}].name: device {name!r} is defined twice")
        devices[name] = parse_edits(d.get("containerEdits"), f"{kind}={name}")
    if not devices:
        raise SpecError(f"{path}: devices: the spec defines no device")
    return Spec(path, vendor, klass, parse_edits(doc.get("containerEdits"), f"{path}: containerEdits"), devices)


def load_spec(path: Path) -> Spec:
    """One spec file (``.json``, ``.yaml``, ``.yml``), read without following a FIFO or a huge file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SpecError(f"{path}: not a regular file")
        if st.st_size > MAX_SPEC_BYTES:
            raise SpecError(f"{path}: {st.st_size} bytes is larger than a CDI spec may be ({MAX_SPEC_BYTES})")
        data = os.read(fd, MAX_SPEC_BYTES + 1)
    finally:
        os.close(fd)
    if path.suffix == ".json":
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise SpecError(f"{path}: not valid JSON: {exc}") from exc
    else:
        import yaml  # PyYAML; YAML is what vendor tools write (nvidia-ctk cdi generate)

        try:
            doc = yaml.load(data, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError as exc:
            raise SpecError(f"{path}: not valid YAML: {exc}") from exc
    return parse_spec(doc, str(path))


@dataclass
class Registry:
    """The CDI specs of ``dirs`` (later directories take priority), read at construction."""

    dirs: list[Path]
    devices: dict[str, tuple[Spec, ContainerEdits]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for directory in self.dirs:
            try:
                names = sorted(os.listdir(directory))
            except FileNotFoundError:
                continue
            except OSError as exc:
                self.errors.append(f"{directory}: {exc.strerror}")
                continue
            seen: dict[str, str] = {}
            for name in names:
                if not name.endswith((".json", ".yaml", ".yml")):
                    continue
                try:
                    spec = load_spec(Path(directory) / name)
                except (OSError, SpecError) as exc:
                    self.errors.append(str(exc) if isinstance(exc, SpecError) else f"{directory}/{name}: {exc.strerror}")
                    continue
                for dev, edits in spec.devices.items():
                    qualified = f"{spec.vendor}/{spec.klass}={dev}"
                    if qualified in seen:  # the same name twice at one priority: neither is used
                        self.errors.append(f"{qualified}: defined in both {seen[qualified]} and {spec.path}")
                        self.devices.pop(qualified, None)
                        continue
                    seen[qualified] = spec.path
                    self.devices[qualified] = (spec, edits)

    def names(self) -> list[str]:
        return sorted(self.devices)

    def resolve(self, names: Iterable[str]) -> list[ContainerEdits]:
        """The edits of each named device, each spec's common edits once, in request order."""
        out: list[ContainerEdits] = []
        specs_done: set[str] = set()
        unknown = []
        for name in names:
            parse_qualified_name(name)
            found = self.devices.get(name)
            if found is None:
                unknown.append(name)
                continue
            spec, edits = found
            if spec.path not in specs_done:
                specs_done.add(spec.path)
                out.append(spec.common)
            out.append(edits)
        if unknown:
            raise DeviceError(f"CDI device injection failed: unresolvable CDI devices {', '.join(unknown)}")
        return out


# ---- applying edits to an OCI spec ----------------------------------------------------------


def _fill(node: DeviceNode) -> DeviceNode:
    """A node's missing type, numbers and mode, from the host node (``hostPath`` or ``path``)."""
    host = node.host_path or node.path
    if node.type == "p" or (node.type and node.major is not None and node.minor is not None and node.file_mode is not None):
        return DeviceNode(**{**node.__dict__, "host_path": host})
    try:
        st = os.stat(host)
    except OSError as exc:
        raise DeviceError(f"CDI device node {node.path}: stat {host}: {exc.strerror}") from exc
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    elif stat.S_ISFIFO(st.st_mode):
        kind = "p"
    else:
        raise DeviceError(f"CDI device node {node.path}: {host} is not a device node")
    if node.type and node.type != kind and not (node.type == "u" and kind == "c"):
        raise DeviceError(f"CDI device node {node.path}: {host} is of type {kind}, not {node.type}")
    return DeviceNode(
        path=node.path,
        host_path=host,
        type=node.type or kind,
        major=node.major if node.major is not None else os.major(st.st_rdev),
        minor=node.minor if node.minor is not None else os.minor(st.st_rdev),
        file_mode=node.file_mode if node.file_mode is not None else stat.S_IMODE(st.st_mode),
        permissions=node.permissions,
        uid=node.uid,
        gid=node.gid,
    )


def _depth(mount: Mapping[str, Any]) -> int:
    return len([p for p in str(mount.get("destination", "")).split("/") if p])


def apply(spec: dict[str, Any], edits: Iterable[ContainerEdits]) -> dict[str, Any]:
    """Apply ``edits`` to the OCI ``spec`` (in place; also returned)."""
    process = spec.setdefault("process", {})
    linux = spec.setdefault("linux", {})
    user = process.setdefault("user", {"uid": 0, "gid": 0})
    mounts_changed = False
    for e in edits:
        for entry in e.env:
            key = entry.partition("=")[0]
            env = [x for x in process.get("env") or [] if x.partition("=")[0] != key]
            process["env"] = [*env, entry]
        for raw in e.device_nodes:
            node = _fill(raw)
            oci: dict[str, Any] = {"path": node.path, "type": node.type}
            if node.type != "p":
                oci.update(major=node.major, minor=node.minor)
            if node.file_mode is not None:
                oci["fileMode"] = node.file_mode
            uid = node.uid if node.uid is not None else (user.get("uid") or None)
            gid = node.gid if node.gid is not None else (user.get("gid") or None)
            if uid is not None:
                oci["uid"] = uid
            if gid is not None:
                oci["gid"] = gid
            linux["devices"] = [d for d in linux.get("devices") or [] if d.get("path") != node.path] + [oci]
            if node.type in ("b", "c", "u"):
                rule = {"allow": True, "type": "c" if node.type == "u" else node.type, "major": node.major,
                        "minor": node.minor, "access": node.permissions or "rwm"}
                resources = linux.setdefault("resources", {})
                resources["devices"] = [*(resources.get("devices") or []), rule]
        for m in e.mounts:
            options = list(m.options)
            kind = m.type or ("bind" if not options or {"bind", "rbind"} & set(options) else "")
            mount: dict[str, Any] = {"destination": m.container_path, "type": kind, "source": m.host_path}
            if options:
                mount["options"] = options
            spec["mounts"] = [x for x in spec.get("mounts") or [] if x.get("destination") != m.container_path]
            spec["mounts"].append(mount)
            mounts_changed = True
        for h in e.hooks:
            hook: dict[str, Any] = {"path": h.path}
            if h.args:
                hook["args"] = list(h.args)
            if h.env:
                hook["env"] = list(h.env)
            if h.timeout is not None:
                hook["timeout"] = h.timeout
            spec.setdefault("hooks", {}).setdefault(h.phase, []).append(hook)
        if e.additional_gids:
            gids = list(user.get("additionalGids") or [])
            user["additionalGids"] = gids + [g for g in e.additional_gids if g not in gids]
    if mounts_changed:
        spec["mounts"] = sorted(spec["mounts"], key=_depth)  # stable: parents before children
    return spec
