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
    type: str  # "bind" | "volume" | "tmpfs"
    source: str  # bind: absolute host path; volume: its name ("" = anonymous)
    destination: str
    rw: bool = True
    mode: str = ""  # as inspect shows it: "ro", "rw", "z", "ro,z", ""
    propagation: str = ""  # binds: "rprivate" unless given
    copy_data: bool = True  # volumes: copy the image's content into an empty new volume
    create_source: bool = False  # bind from -v: a missing host path becomes a directory
    subpath: str = ""  # volumes (--mount volume-subpath=): only this directory of the volume
    tmpfs_data: str = ""  # tmpfs: the mount data (size=..., mode=..., flags)
    listed: bool = True  # shown in inspect's Mounts (HostConfig.Tmpfs entries are not, as dockerd)


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
    if kind not in ("bind", "volume", "tmpfs"):
        raise InvalidParameter(f'invalid mount config for type "{kind}": mount type unknown')
    if not target:
        raise InvalidParameter(f'invalid mount config for type "{kind}": field Target must not be empty')
    if not target.startswith("/"):
        raise InvalidParameter(f"invalid mount config for type \"{kind}\": invalid mount path: '{target}' mount path must be absolute")
    dest = posixpath.normpath(target)
    if kind != "tmpfs" and obj.get("TmpfsOptions"):
        raise InvalidParameter(f'invalid mount config for type "{kind}": field TmpfsOptions must not be specified')
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
        raise InvalidParameter(f'invalid mount config for type "{kind}": field BindOptions must not be specified')
    if kind == "tmpfs":
        if source:
            raise InvalidParameter('invalid mount config for type "tmpfs": field Source must not be specified')
        return MountPoint("tmpfs", "", dest, rw=rw, copy_data=False, tmpfs_data=tmpfs_mount_data(obj.get("TmpfsOptions"), not rw))
    if source:
        check_volume_name(source)
    options = obj.get("VolumeOptions") or {}
    subpath = options.get("Subpath") or ""
    if subpath:
        if not source:
            raise InvalidParameter('invalid mount config for type "volume": must not set Subpath when using anonymous volumes')
        if not _is_local(subpath):
            raise InvalidParameter('invalid mount config for type "volume": subpath must be a relative path within the volume')
    return MountPoint("volume", source, dest, rw=rw, mode="z", copy_data=not options.get("NoCopy"), subpath=subpath)


def _is_local(path: str) -> bool:
    """Go's ``filepath.IsLocal``: relative, not empty, and not leaving its base lexically."""
    if not path or path.startswith("/"):
        return False
    clean = posixpath.normpath(path)
    return clean != ".." and not clean.startswith("../")


# dockerd's mount flag words (moby/sys/mount) and the tmpfs data keys it accepts
TMPFS_FLAGS = {
    "defaults": "", "ro": "ro", "rw": "ro", "suid": "nosuid", "nosuid": "nosuid", "dev": "nodev",
    "nodev": "nodev", "exec": "noexec", "noexec": "noexec", "sync": "sync", "async": "sync",
    "dirsync": "dirsync", "remount": "remount", "mand": "mand", "nomand": "mand", "atime": "noatime",
    "noatime": "noatime", "diratime": "nodiratime", "nodiratime": "nodiratime", "bind": "propagation",
    "rbind": "propagation", "unbindable": "propagation", "runbindable": "propagation",
    "private": "propagation", "rprivate": "propagation", "shared": "propagation", "rshared": "propagation",
    "slave": "propagation", "rslave": "propagation", "relatime": "relatime", "norelatime": "relatime",
    "strictatime": "strictatime", "nostrictatime": "strictatime",
}  # word -> the flag it sets or clears (words naming the same flag collide)
TMPFS_DATA = ("size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol")
TMPFS_DEFAULTS = ("noexec", "nosuid", "nodev", "rprivate")


def _go_quote_list(parts: list[str]) -> str:
    import json

    return "[" + " ".join(json.dumps(p) for p in parts) + "]"


def check_tmpfs_options(data: str) -> None:
    """``--tmpfs /path:OPTS``: mount flag words and tmpfs's own ``key=value`` options only."""
    for opt in data.split(","):
        if opt in TMPFS_FLAGS:
            continue
        key, eq, _ = opt.partition("=")
        if not eq or key not in TMPFS_DATA:
            raise InvalidParameter(f"invalid tmpfs option {_go_quote_list(opt.split('=', 1))}")


def merge_tmpfs_options(options: list[str]) -> list[str]:
    """dockerd's ``MergeTmpfsOptions``: of words setting or clearing one flag (``exec`` after
    the default ``noexec``) and of ``key=`` options, the last one wins; order kept."""
    seen: set[str] = set()
    out: list[str] = []
    for opt in reversed(options):
        if opt == "defaults":
            continue
        key = "flag:" + TMPFS_FLAGS[opt] if opt in TMPFS_FLAGS else "data:" + opt.partition("=")[0]
        if key not in seen:
            seen.add(key)
            out.insert(0, opt)
    return out


def tmpfs_mount_data(options: dict[str, Any] | None, read_only: bool) -> str:
    """``--mount type=tmpfs,tmpfs-size=,tmpfs-mode=[,readonly]`` as mount data (moby's
    ``ConvertTmpfsOptions``: the size in the largest unit that divides it, the mode in octal)."""
    raw = ["ro"] if read_only else []
    opts = options or {}
    if not isinstance(opts, dict):
        raise InvalidParameter("json: cannot unmarshal into field HostConfig.Mounts.TmpfsOptions of type mount.TmpfsOptions")
    mode, size = opts.get("Mode") or 0, opts.get("SizeBytes") or 0
    if not isinstance(mode, int) or not isinstance(size, int):
        raise InvalidParameter("json: cannot unmarshal into field HostConfig.Mounts.TmpfsOptions of type int64")
    if mode:
        raw.append(f"mode={mode:o}")
    if size:
        for suffix, unit in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
            if size % unit == 0:
                raw.append(f"size={size // unit}{suffix}")
                break
        else:
            raw.append(f"size={size}")
    return ",".join(raw)


def parse_tmpfs(dest: str, data: Any) -> MountPoint:
    """One ``HostConfig.Tmpfs`` entry (``--tmpfs /path:size=64m,mode=1770``)."""
    if not isinstance(data, str):
        raise InvalidParameter("json: cannot unmarshal into field HostConfig.Tmpfs of type string")
    if not dest.startswith("/"):
        raise InvalidParameter(f"invalid mount path: '{dest}' mount path must be absolute")
    if data:
        check_tmpfs_options(data)
    return MountPoint("tmpfs", "", posixpath.normpath(dest), rw="ro" not in data.split(","), copy_data=False,
                      tmpfs_data=data, listed=False)


def plan(
    binds: list[str] | None, mounts: list[dict[str, Any]] | None, volumes: dict[str, Any] | None,
    tmpfs: dict[str, Any] | None = None,
) -> list[MountPoint]:
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
    if tmpfs is not None and not isinstance(tmpfs, dict):
        raise InvalidParameter("json: cannot unmarshal into field HostConfig.Tmpfs of type map[string]string")
    for path, data in (tmpfs or {}).items():
        m = parse_tmpfs(path, data)
        if m.destination in out:
            raise InvalidParameter(f"Duplicate mount point: {m.destination}")
        out[m.destination] = m
    for path in volumes or {}:
        dest = _clean_dest(path, path, "volume")
        if dest not in out:
            out[dest] = MountPoint("volume", "", dest, mode="")
    for dest in out:
        _check_not_in_proc(dest)
    return sorted(out.values(), key=lambda m: (m.destination.count("/"), m.destination))


def _check_not_in_proc(dest: str) -> None:
    """runc's rule (libcontainer checks it again after symlinks): nothing mounted at or inside
    /proc but the files lxcfs emulates; a 400 at create (dockerd: the start fails)."""
    from berth.libcontainer.rootfs import LXCFS_PROC_FILES

    if dest == "/proc":
        raise InvalidParameter(f'invalid mount destination "{dest}": it cannot be mounted because it is not of type proc')
    if dest.startswith("/proc/") and dest not in LXCFS_PROC_FILES:
        raise InvalidParameter(f'invalid mount destination "{dest}": it cannot be mounted because it is inside /proc')


def inspect_view(m: MountPoint, name: str, source: str) -> dict[str, Any]:
    """Docker's ``Mounts[]`` entry (container inspect and ``ps``) for a planned mount, once a
    volume has its ``name`` and every mount its host ``source``."""
    if m.type == "bind":
        return {"Type": "bind", "Source": source, "Destination": m.destination, "Mode": m.mode, "RW": m.rw,
                "Propagation": m.propagation}
    if m.type == "tmpfs":
        return {"Type": "tmpfs", "Source": "", "Destination": m.destination, "Mode": "", "RW": m.rw,
                "Propagation": ""}
    return {"Type": "volume", "Name": name, "Source": source, "Destination": m.destination, "Driver": "local",
            "Mode": m.mode, "RW": m.rw, "Propagation": ""}


def tmpfs_mounts(host: dict[str, Any]) -> list[dict[str, Any]]:
    """The container's tmpfs mounts as OCI mounts, from ``HostConfig.Tmpfs`` and the
    ``type=tmpfs`` entries of ``HostConfig.Mounts``: dockerd's defaults (``noexec``,
    ``nosuid``, ``nodev``, ``rprivate``) merged with the options given (``exec`` wins over the
    default ``noexec``)."""
    points = [parse_tmpfs(dest, data) for dest, data in (host.get("Tmpfs") or {}).items()]
    points += [m for m in (parse_mount(obj) for obj in host.get("Mounts") or []) if m.type == "tmpfs"]
    out = []
    for m in points:
        options = merge_tmpfs_options([*TMPFS_DEFAULTS, *(o for o in m.tmpfs_data.split(",") if o)])
        out.append({"destination": m.destination, "type": "tmpfs", "source": "tmpfs", "options": options})
    return out


def oci_mounts(
    mounts: list[dict[str, Any]], extra: list[dict[str, Any]] | None = None, sources: dict[str, str] | None = None,
    volume_idmap: dict[str, list[list[int]]] | None = None,
) -> tuple[dict[str, Any], ...]:
    """The recorded ``Mounts[]`` (binds and volumes: rbind, ro when asked) and ``extra`` OCI
    mounts (the tmpfs ones) as one list, parents first; ``sources`` overrides the host path
    by destination (a volume's subpath). ``volume_idmap`` (berth.daemon.remap.volume_maps):
    the volumes are id-mapped mounts with those maps (the OCI mount's uidMappings/gidMappings).

        >>> vol = {"Type": "volume", "Source": "/v/_data", "Destination": "/data", "RW": True}
        >>> oci_mounts([vol], volume_idmap={"uid": [[100000, 165536, 65536]], "gid": [[100000, 165536, 65536]]})[0]["uidMappings"]
        [{'containerID': 100000, 'hostID': 165536, 'size': 65536}]
    """
    out = list(extra or [])
    for m in mounts:
        if m["Type"] == "tmpfs":
            continue  # made from the HostConfig by tmpfs_mounts (it keeps the size and mode)
        options = ["rbind", "rw" if m["RW"] else "ro", m.get("Propagation") or "rprivate"]
        source = (sources or {}).get(m["Destination"], m["Source"])
        mount: dict[str, Any] = {"destination": m["Destination"], "type": "bind", "source": source, "options": options}
        if volume_idmap and m["Type"] == "volume":
            for key, kind in (("uidMappings", "uid"), ("gidMappings", "gid")):
                mount[key] = [{"containerID": c, "hostID": h, "size": n} for c, h, n in volume_idmap[kind]]
        out.append(mount)
    return tuple(sorted(out, key=lambda m: (m["destination"].count("/"), m["destination"])))
