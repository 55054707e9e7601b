"""``-v``/``--mount``/``VOLUME`` → the container's mount plan (pure; dockerd's ``volume/mounts``).

A create body names mounts three ways: ``HostConfig.Binds`` (``-v src:dst[:mode]``),
``HostConfig.Mounts`` (``--mount type=...``) and ``Config.Volumes`` (``-v /path`` and the
image's ``VOLUME``s). They become one list of ``MountPoint``s, one per destination, checked
before any side effect; the daemon then creates the volumes and records Docker's inspect view::

    plan(["data:/data", "/srv:/srv:ro"], [], {"/cache": {}})
    -> [MountPoint("volume", "data", "/data", ...), MountPoint("bind", "/srv", "/srv", rw=False, ...),
        MountPoint("volume", "", "/cache", ...)]          # "" = anonymous: named at create

A bind's missing source is created as a directory for ``-v`` (``create_source``) and is a 400
for ``--mount`` (checked by the daemon, which looks at the host).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Any

from berth.errors import InvalidParameter

VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
_MODES = ("ro", "rw", "z", "Z", "nocopy", *_PROPAGATIONS)


@dataclass(frozen=True)
class MountPoint:
    type: str  # "bind" | "volume"
    source: str  # bind: absolute host path; volume: its name ("" = anonymous)
    destination: str
    rw: bool = True
    mode: str = ""  # as inspect shows it: "ro", "rw", "z", "ro,z", ""
    propagation: str = ""  # binds: "rprivate" unless given
    copy_data: bool = True  # volumes: copy the image's content into an empty new volume
    create_source: bool = False  # bind from -v: a missing host path becomes a directory


def _clean_dest(dest: str, spec: str, kind: str) -> str:
    if not dest:
        raise InvalidParameter(f'invalid mount config for type "{kind}": field Target must not be empty')
    if not dest.startswith("/"):
        raise InvalidParameter(
            f"invalid volume specification: '{spec}': invalid mount config for type \"{kind}\": "
            f"invalid mount path: '{dest}' mount path must be absolute"
        )
    dest = posixpath.normpath(dest)
    if dest == "/":
        raise InvalidParameter(f"invalid volume specification: '{spec}': invalid mount config for type "
                               f"\"{kind}\": invalid specification: destination can't be '/'")
    return dest


def check_volume_name(name: str) -> str:
    if not VOLUME_NAME_RE.match(name):
        raise InvalidParameter(
            f'create {name}: "{name}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path'
        )
    return name


def parse_bind(spec: str) -> MountPoint:
    """One ``HostConfig.Binds`` entry: ``src:dst``, ``src:dst:mode`` (``ro``, ``rw``, ``z``,
    ``nocopy``, a propagation; comma-separated)."""
    parts = spec.split(":")
    if len(parts) == 2:
        src, dest, mode = parts[0], parts[1], ""
    elif len(parts) == 3:
        src, dest, mode = parts
    else:
        raise InvalidParameter(f"invalid volume specification: '{spec}'")
    if not src:
        raise InvalidParameter(f"invalid volume specification: '{spec}'")
    options = [m for m in mode.split(",") if m]
    for opt in options:
        if opt not in _MODES:
            raise InvalidParameter(f"invalid mode: {opt}")
    if "ro" in options and "rw" in options:
        raise InvalidParameter(f"invalid mode: {mode}")
    rw = "ro" not in options
    propagation = next((o for o in options if o in _PROPAGATIONS), "")
    kind = "bind" if src.startswith("/") else "volume"
    dest = _clean_dest(dest, spec, kind)
    if kind == "bind":
        if "nocopy" in options:
            raise InvalidParameter(f"invalid volume specification: '{spec}': nocopy applies to volumes only")
        return MountPoint(
            "bind", posixpath.normpath(src), dest, rw=rw, mode=mode, propagation=propagation or "rprivate",
            copy_data=False, create_source=True,
        )
    if propagation:
        raise InvalidParameter(f"invalid volume specification: '{spec}': propagation applies to binds only")
    check_volume_name(src)
    return MountPoint(
        "volume", src, dest, rw=rw, mode=mode or "z", copy_data="nocopy" not in options,
    )


def parse_mount(obj: dict[str, Any]) -> MountPoint:
    """One ``HostConfig.Mounts`` object (``--mount type=bind|volume,source=,target=,readonly``)."""
    if not isinstance(obj, dict):
        raise InvalidParameter("json: cannot unmarshal into field HostConfig.Mounts of type mount.Mount")
    kind = obj.get("Type") or ""
    source = obj.get("Source") or ""
    target = obj.get("Target") or ""
    rw = not obj.get("ReadOnly")
    if kind not in ("bind", "volume"):
        raise InvalidParameter(f'invalid mount config for type "{kind}": mount type is not supported by berth')
    if not target:
        raise InvalidParameter(f'invalid mount config for type "{kind}": field Target must not be empty')
    if not target.startswith("/"):
        raise InvalidParameter(f"invalid mount config for type \"{kind}\": invalid mount path: '{target}' mount path must be absolute")
    dest = posixpath.normpath(target)
    if kind == "bind":
        if not source:
            raise InvalidParameter('invalid mount config for type "bind": field Source must not be empty')
        if not source.startswith("/"):
            raise InvalidParameter(f"invalid mount config for type \"bind\": invalid mount path: '{source}' mount path must be absolute")
        if obj.get("VolumeOptions"):
            raise InvalidParameter('invalid mount config for type "bind": field VolumeOptions must not be specified')
        propagation = (obj.get("BindOptions") or {}).get("Propagation") or "rprivate"
        if propagation not in _PROPAGATIONS:
            raise InvalidParameter(f"invalid propagation mode: {propagation}")
        return MountPoint("bind", posixpath.normpath(source), dest, rw=rw, mode="", propagation=propagation, copy_data=False)
    if obj.get("BindOptions"):
        raise InvalidParameter('invalid mount config for type "volume": field BindOptions must not be specified')
    if source:
        check_volume_name(source)
    nocopy = bool((obj.get("VolumeOptions") or {}).get("NoCopy"))
    return MountPoint("volume", source, dest, rw=rw, mode="z", copy_data=not nocopy)


def plan(binds: list[str] | None, mounts: list[dict[str, Any]] | None, volumes: dict[str, Any] | None) -> list[MountPoint]:
    """Every mount of a new container, one per destination, parents before children.
    ``-v``/``--mount`` naming the same destination twice is Docker's ``Duplicate mount point``;
    a ``Config.Volumes`` path already covered by one of them is not mounted again."""
    out: dict[str, MountPoint] = {}
    for spec in binds or []:
        if not isinstance(spec, str):
            raise InvalidParameter("json: cannot unmarshal into field HostConfig.Binds of type string")
        m = parse_bind(spec)
        if m.destination in out:
            raise InvalidParameter(f"Duplicate mount point: {m.destination}")
        out[m.destination] = m
    for obj in mounts or []:
        m = parse_mount(obj)
        if m.destination in out:
            raise InvalidParameter(f"Duplicate mount point: {m.destination}")
        out[m.destination] = m
    for path in volumes or {}:
        dest = _clean_dest(path, path, "volume")
        if dest not in out:
            out[dest] = MountPoint("volume", "", dest, mode="")
    return sorted(out.values(), key=lambda m: (m.destination.count("/"), m.destination))


def inspect_view(m: MountPoint, name: str, source: str) -> dict[str, Any]:
    """Docker's ``Mounts[]`` entry (container inspect and ``ps``) for a planned mount, once a
    volume has its ``name`` and every mount its host ``source``."""
    if m.type == "bind":
        return {"Type": "bind", "Source": source, "Destination": m.destination, "Mode": m.mode, "RW": m.rw,
                "Propagation": m.propagation}
    return {"Type": "volume", "Name": name, "Source": source, "Destination": m.destination, "Driver": "local",
            "Mode": m.mode, "RW": m.rw, "Propagation": ""}


def oci_mounts(mounts: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    """The recorded ``Mounts[]`` → OCI spec mounts (rbind; ro when asked), parents first."""
    out = []
    for m in sorted(mounts, key=lambda m: (m["Destination"].count("/"), m["Destination"])):
        options = ["rbind", "rw" if m["RW"] else "ro", m.get("Propagation") or "rprivate"]
        out.append({"destination": m["Destination"], "type": "bind", "source": m["Source"], "options": options})
    return tuple(out)
