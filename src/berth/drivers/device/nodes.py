"""``--device`` and ``--device-cgroup-rule``: host device nodes and device cgroup rules.

``devices_from_path`` follows moby's ``DevicesFromPath``: a symlink on the host is resolved
first; a character or block device is one node at the container path; a directory gives every
device node below it (``--device /dev/snd``), each at the same place under the container path;
anything else fails with dockerd's text. Every node keeps the host node's numbers, mode and
owner, and is allowed in the device cgroup with the requested permissions (``r``, ``w``, ``m``).

    >>> parse_cgroup_rule("c 1:11 rwm")
    {'allow': True, 'type': 'c', 'major': 1, 'minor': 11, 'access': 'rwm'}
    >>> parse_cgroup_rule("b 7:* r")
    {'allow': True, 'type': 'b', 'major': 7, 'access': 'r'}
"""

from __future__ import annotations

import os
import re
import stat
from typing import Any

from berth.errors import InvalidParameter

# moby's deviceCgroupRuleRegex
_RULE = re.compile(r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$")
PERMISSIONS = re.compile(r"^[rwm]{1,3}$")


class DeviceError(InvalidParameter):
    """A ``--device`` that names no usable device node on the host (a failed start)."""


def parse_cgroup_rule(rule: str) -> dict[str, Any]:
    """One ``--device-cgroup-rule`` as an OCI ``linux.resources.devices`` allow entry."""
    m = _RULE.match(rule)
    if m is None:
        raise InvalidParameter(f"invalid device cgroup rule format: '{rule}'")
    kind, major, minor, access = m.groups()
    out: dict[str, Any] = {"allow": True, "type": kind}
    if major != "*":
        out["major"] = int(major)
    if minor != "*":
        out["minor"] = int(minor)
    out["access"] = access
    return out


def check_mapping(mapping: Any) -> tuple[str, str, str]:
    """A ``HostConfig.Devices`` entry, checked: (host path, container path, permissions).
    The container path defaults to the host path and the permissions to ``rwm``, as the docker
    CLI fills them in; a relative container path or other permissions are a 400."""
    host = str(mapping.get("PathOnHost") or "")
    if not host:
        raise InvalidParameter("invalid device mapping: PathOnHost is empty")
    inside = str(mapping.get("PathInContainer") or "") or host
    perms = str(mapping.get("CgroupPermissions") or "") or "rwm"
    if not inside.startswith("/"):
        raise InvalidParameter(f"invalid device mapping {host}:{inside}: PathInContainer {inside!r} is not an absolute path")
    if not PERMISSIONS.match(perms):
        raise InvalidParameter(
            f"invalid device mapping {host}:{inside}: CgroupPermissions {perms!r} is not made of r, w and m"
        )
    return host, inside, perms


def _node(path: str, st: os.stat_result, inside: str, perms: str) -> tuple[dict[str, Any], dict[str, Any]]:
    kind = "c" if stat.S_ISCHR(st.st_mode) else "b"
    major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    node = {
        "path": inside,
        "type": kind,
        "major": major,
        "minor": minor,
        "fileMode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
    }
    return node, {"allow": True, "type": kind, "major": major, "minor": minor, "access": perms}


def _is_device(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)


def devices_from_path(host: str, inside: str, perms: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(OCI linux.devices entries, OCI device cgroup allow entries) for one ``--device``."""
    resolved = host
    try:
        if stat.S_ISLNK(os.lstat(host).st_mode):
            resolved = os.path.realpath(host)
        st = os.lstat(resolved)
    except OSError as exc:
        raise DeviceError(
            f'error gathering device information while adding custom device "{host}": '
            f"{(exc.strerror or str(exc)).lower()}"
        ) from exc
    if _is_device(st):
        node, rule = _node(resolved, st, inside, perms)
        return [node], [rule]
    nodes: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []
    if stat.S_ISDIR(st.st_mode):
        for top, dirs, files in os.walk(resolved):
            dirs.sort()
            for name in sorted(files + dirs):
                path = os.path.join(top, name)
                try:
                    child = os.lstat(path)
                except OSError:
                    continue  # gone since the listing (udev at work): moby ignores it too
                if _is_device(child):
                    node, rule = _node(path, child, inside + path[len(resolved):], perms)
                    nodes.append(node)
                    rules.append(rule)
    if not nodes:
        raise DeviceError(f'error gathering device information while adding custom device "{host}": not a device node')
    return nodes, rules
