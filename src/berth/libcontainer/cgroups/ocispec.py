"""OCI ``linux.resources`` -> :class:`Resources`: the one conversion both doors use.

The daemon's containers (the monitor's helper creates the cgroup from the ``config.json`` the
exec driver built) and ``berth-runtime``'s (from a bundle's ``config.json``) get their cgroup
limits here, so a limit the spec holds is written the same way whoever asked. Pure: no I/O.
Values are checked (a bundle is untrusted input): a wrong type is InvalidParameter naming the
field. As in runc, ``0`` means "not set" for every number; ``-1`` is "unlimited" for swap, quota
and pids.

    >>> r = resources_from_oci({"memory": {"limit": 67108864, "swap": -1},
    ...                         "cpu": {"quota": 50000, "period": 100000, "cpus": "0"},
    ...                         "pids": {"limit": 10},
    ...                         "devices": [{"allow": False, "access": "rwm"},
    ...                                     {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"}]})
    >>> r.memory, r.memory_swap, r.cpu_quota, r.cpu_period, r.cpuset_cpus, r.pids_limit
    (67108864, -1, 50000, 100000, '0', 10)
    >>> r.device_rules[0]
    'c 10:229 rw'

Devices: the rules are applied in order (a "deny all" clears what came before, an "allow all"
allows everything), then runc's default allow list (:data:`DEFAULT_DEVICE_RULES`: null, zero,
full, random, urandom, tty, console, ptmx, pts, tun, and mknod of any node) is appended, as runc
appends it after the spec's rules -- so a container always has those, and a privileged spec's
``allow all`` stays allow-all. A deny that narrows an ``allow all`` cannot be expressed as an
allow list (the eBPF filter and the v1 files are written from one) and is refused.
"""

from __future__ import annotations

from berth.errors import InvalidParameter
from berth.libcontainer.cgroups.resources import ALLOW_ALL_DEVICES, DEFAULT_DEVICE_RULES, Resources

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


def resources_from_oci(res: Mapping[str, Any] | None) -> Resources:
    """The cgroup limits of an OCI ``linux.resources`` object (None or {} = no limits)."""
    res = _object(res, "linux.resources")
    memory = _object(res.get("memory"), "linux.resources.memory")
    cpu = _object(res.get("cpu"), "linux.resources.cpu")
    pids = _object(res.get("pids"), "linux.resources.pids")
    block_io = _object(res.get("blockIO"), "linux.resources.blockIO")
    limit = _int(memory, "limit", "memory")
    return Resources(
        # a memory limit of -1 is "unlimited": what a new cgroup already is
        memory=limit if limit is not None and limit > 0 else None,
        memory_swap=_int(memory, "swap", "memory"),
        memory_reservation=_positive(memory, "reservation", "memory"),
        cpu_shares=_positive(cpu, "shares", "cpu"),
        cpu_quota=_int(cpu, "quota", "cpu"),
        cpu_period=_positive(cpu, "period", "cpu"),
        cpuset_cpus=_str(cpu, "cpus", "cpu"),
        cpuset_mems=_str(cpu, "mems", "cpu"),
        pids_limit=_int(pids, "limit", "pids"),
        blkio_weight=_positive(block_io, "weight", "blockIO"),
        device_rules=device_rules_from_oci(res.get("devices")),
        **_extras(res, memory, cpu, block_io),
    )


def _extras(
    res: Mapping[str, Any], memory: Mapping[str, Any], cpu: Mapping[str, Any], block_io: Mapping[str, Any]
) -> dict[str, Any]:
    """The limits only OCI bundles carry (:mod:`.extralimits`); ``kernel`` (kernel memory) is
    left out, as runc leaves it: the spec deprecates it and kernels since 5.16 ignore it."""
    swappiness = memory.get("swappiness")
    if swappiness is not None:
        swappiness = _int(memory, "swappiness", "memory") or 0
        if not 0 <= swappiness <= 100:
            raise InvalidParameter(f"linux.resources.memory.swappiness: {swappiness} is not within 0..100")
    oom = memory.get("disableOOMKiller")
    if oom is not None and not isinstance(oom, bool):
        raise InvalidParameter(f"linux.resources.memory.disableOOMKiller: {oom!r} is not a boolean")
    if block_io.get("leafWeight"):
        raise InvalidParameter("linux.resources.blockIO.leafWeight: not supported (kernels since 5.0 have no leaf weight)")
    weight_device = []
    for i, d in enumerate(_list(block_io, "weightDevice", "blockIO")):
        what = f"linux.resources.blockIO.weightDevice[{i}]"
        if d.get("leafWeight"):
            raise InvalidParameter(f"{what}.leafWeight: not supported (kernels since 5.0 have no leaf weight)")
        weight = _positive(d, "weight", f"blockIO.weightDevice[{i}]")
        if weight:
            weight_device.append((_device(d, what), weight))
    throttle = []
    for key, kind in (
        ("throttleReadBpsDevice", "read_bps"),
        ("throttleWriteBpsDevice", "write_bps"),
        ("throttleReadIOPSDevice", "read_iops"),
        ("throttleWriteIOPSDevice", "write_iops"),
    ):
        for i, d in enumerate(_list(block_io, key, "blockIO")):
            rate = _positive(d, "rate", f"blockIO.{key}[{i}]") or 0
            throttle.append((kind, _device(d, f"linux.resources.blockIO.{key}[{i}]"), rate))
    hugetlb = []
    for i, h in enumerate(_list(res, "hugepageLimits", "")):
        size = h.get("pageSize")
        if not isinstance(size, str) or not size or "/" in size:
            raise InvalidParameter(f"linux.resources.hugepageLimits[{i}].pageSize: {size!r} is not a page size")
        hugetlb.append((size, _positive(h, "limit", f"hugepageLimits[{i}]") or 0))
    network = _object(res.get("network"), "linux.resources.network")
    prio = []
    for i, p in enumerate(_list(network, "priorities", "network")):
        name = p.get("name")
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise InvalidParameter(f"linux.resources.network.priorities[{i}].name: {name!r} is not an interface name")
        prio.append((name, _positive(p, "priority", f"network.priorities[{i}]") or 0))
    if res.get("rdma"):
        raise InvalidParameter("linux.resources.rdma: not supported by berth")
    unified = _object(res.get("unified"), "linux.resources.unified")
    for key, value in unified.items():
        if not isinstance(value, str):
            raise InvalidParameter(f"linux.resources.unified[{key!r}]: {value!r} is not a string")
    return {
        "memory_swappiness": swappiness,
        "oom_kill_disable": bool(oom),
        "kernel_tcp": _int(memory, "kernelTCP", "memory"),
        "blkio_weight_device": tuple(weight_device),
        "blkio_throttle": tuple(throttle),
        "hugetlb": tuple(hugetlb),
        "net_cls_classid": _positive(network, "classID", "network"),
        "net_prio": tuple(prio),
        "cpu_rt_runtime": _int(cpu, "realtimeRuntime", "cpu"),
        "cpu_rt_period": _positive(cpu, "realtimePeriod", "cpu"),
        "unified": tuple(sorted(unified.items())),
    }


def _list(obj: Mapping[str, Any], key: str, section: str) -> list[Mapping[str, Any]]:
    value = obj.get(key)
    where = f"linux.resources.{section}.{key}" if section else f"linux.resources.{key}"
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise InvalidParameter(f"{where}: {value!r} is not a list of objects")
    return value


def _device(d: Mapping[str, Any], what: str) -> str:
    numbers = []
    for key in ("major", "minor"):
        value = d.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidParameter(f"{what}.{key}: {value!r} is not a device number")
        numbers.append(str(value))
    return ":".join(numbers)


def device_rules_from_oci(rules: Any) -> tuple[str, ...]:
    """v1 allow lines (``"c 1:3 rwm"``) for OCI ``linux.resources.devices``, runc's defaults included."""
    if rules is None:
        rules = []
    if not isinstance(rules, list):
        raise InvalidParameter(f"linux.resources.devices: {rules!r} is not a list")
    allowed: list[str] = []
    allow_all = False
    for i, rule in enumerate(rules):
        what = f"linux.resources.devices[{i}]"
        line, everything = _device_line(_object(rule, what), what)
        if rule.get("allow") is True:
            if everything:
                allow_all, allowed = True, []
            elif line not in allowed:
                allowed.append(line)
        elif everything:
            allow_all, allowed = False, []
        elif allow_all:
            raise InvalidParameter(f"{what}: denying {line!r} after allowing every device is not supported")
        else:
            allowed = [a for a in allowed if a != line]
    if allow_all:
        return ALLOW_ALL_DEVICES
    # the spec's rules first, in its order (the kernel lists v1 exceptions as written, and the
    # OCI spec says entries are applied in order), then the defaults it did not name
    return tuple(allowed) + tuple(d for d in DEFAULT_DEVICE_RULES if d not in allowed)


def _device_line(rule: Mapping[str, Any], what: str) -> tuple[str, bool]:
    """(v1 line, whether it names every device with every access)."""
    kind = rule.get("type") or "a"
    if kind not in ("a", "b", "c"):
        raise InvalidParameter(f"{what}.type: {kind!r} is not a, b or c")
    numbers = []
    for key in ("major", "minor"):
        value = rule.get(key)
        if value is None or value == -1:
            numbers.append("*")
        elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            numbers.append(str(value))
        else:
            raise InvalidParameter(f"{what}.{key}: {value!r} is not a device number")
    access = rule.get("access")
    if access is None or access == "":
        access = "rwm"
    if not isinstance(access, str) or not set(access) <= set("rwm"):
        raise InvalidParameter(f"{what}.access: {access!r} is not made of r, w and m")
    access = "".join(c for c in "rwm" if c in access)
    everything = kind == "a" and numbers == ["*", "*"] and access == "rwm"
    return f"{kind} {numbers[0]}:{numbers[1]} {access}", everything


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidParameter(f"{what}: {value!r} is not an object")
    return value


def _int(obj: Mapping[str, Any], key: str, section: str) -> int | None:
    """An integer field; 0 (or absent) is unset."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidParameter(f"linux.resources.{section}.{key}: {value!r} is not an integer")
    return value or None


def _positive(obj: Mapping[str, Any], key: str, section: str) -> int | None:
    value = _int(obj, key, section)
    if value is not None and value < 0:
        raise InvalidParameter(f"linux.resources.{section}.{key}: {value} is negative")
    return value


def _str(obj: Mapping[str, Any], key: str, section: str) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidParameter(f"linux.resources.{section}.{key}: {value!r} is not a string")
    return value
