"""``update``: new cgroup limits for a created or running container, as ``runc update``.

From ``--resources FILE`` (an OCI ``linux.resources`` object; ``-`` reads stdin: podman's
``update`` sends one) or from the flags (``--memory 64m``, ``--cpu-quota``, ``--pids-limit`` ...),
written through the cgroup manager's update (:class:`berth.libcontainer.cgroups.ResourceUpdate`,
only the fields given). Device rules in a resources object are left as they were (runc 1.1 does
not re-apply them either); a limit update cannot change (hugetlb, network, rdma, unified) is an
error naming it, never dropped.
"""

from __future__ import annotations

import sys

from berth.runtime.errors import CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from berth.runtime.cli import Args

_UNITS = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}

# flag -> (section, OCI field, parse as bytes)
FLAGS = {
    "memory": ("memory", "limit", True),
    "memory-swap": ("memory", "swap", True),
    "memory-reservation": ("memory", "reservation", True),
    "kernel-memory": ("memory", "kernel", True),
    "kernel-memory-tcp": ("memory", "kernelTCP", True),
    "cpu-shares": ("cpu", "shares", False),
    "cpu-period": ("cpu", "period", False),
    "cpu-quota": ("cpu", "quota", False),
    "cpu-rt-period": ("cpu", "realtimePeriod", False),
    "cpu-rt-runtime": ("cpu", "realtimeRuntime", False),
    "cpuset-cpus": ("cpu", "cpus", None),
    "cpuset-mems": ("cpu", "mems", None),
    "pids-limit": ("pids", "limit", False),
    "blkio-weight": ("blockIO", "weight", False),
}


def size(text: str) -> int:
    """``64m``, ``1g``, ``1024``, ``-1`` (units.RAMInBytes: binary units)."""
    t = text.strip().lower()
    t = t[:-1] if t.endswith("b") and len(t) > 1 and t[-2] in _UNITS else t  # "64mb" -> "64m"
    mult = 1
    if t and t[-1] in _UNITS:
        mult, t = _UNITS[t[-1]], t[:-1]
    try:
        value = float(t) if "." in t else int(t)
    except ValueError as exc:
        raise CommandError(f"invalid size {text!r}") from exc
    return int(value * mult)


def cmd_update(args: Args) -> int:
    from berth.libcontainer.cgroups import open_cgroup
    from berth.runtime.state import Store

    store, cid = Store(args.root), args.args[0]
    state = store.load(cid)
    if store.status(state) == "stopped":
        raise CommandError(f"container {cid} is not running")
    resources = _resources(args)
    open_cgroup(state["cgroup"]).update(resource_update(resources))
    return 0


def _resources(args: Args) -> dict[str, Any]:
    import json

    path = args.opt("resources")
    res: dict[str, Any] = {}
    if path:
        try:
            text = sys.stdin.read() if path == "-" else open(path).read()  # noqa: SIM115 -- read at once
            res = json.loads(text)
        except (OSError, ValueError) as exc:
            raise CommandError(f"read resources '{path}': {exc}") from exc
        if not isinstance(res, dict):
            raise CommandError(f"resources '{path}': not a JSON object")
    for flag, (section, field, as_bytes) in FLAGS.items():
        value = args.opt(flag)
        if value is None:
            continue
        if as_bytes is None:
            parsed: object = value
        elif as_bytes:
            parsed = size(value)
        else:
            try:
                parsed = int(value)
            except ValueError as exc:
                raise CommandError(f"--{flag} {value!r}: not a number") from exc
        res.setdefault(section, {})[field] = parsed
    return res


def resource_update(res: dict[str, Any]) -> Any:
    """An OCI ``linux.resources`` object as a ResourceUpdate; CommandError for what cannot be
    updated. 0 leaves a value as it is (runc's reading); -1 means unlimited where it can."""
    from berth.libcontainer.cgroups import ResourceUpdate

    for key in ("hugepageLimits", "network", "rdma", "unified"):
        if res.get(key):
            raise CommandError(f"update: linux.resources.{key} cannot be changed on a running container")
    memory, cpu = res.get("memory") or {}, res.get("cpu") or {}
    for section, fields in (("memory", ("swappiness", "kernel", "kernelTCP", "disableOOMKiller")),
                            ("cpu", ("realtimeRuntime", "realtimePeriod", "idle"))):
        for name in fields:
            if (memory if section == "memory" else cpu).get(name):
                raise CommandError(f"update: linux.resources.{section}.{name} cannot be changed by berth-runtime")
    block = res.get("blockIO") or {}
    if any(block.get(k) for k in ("weightDevice", "throttleReadBpsDevice", "throttleWriteBpsDevice",
                                  "throttleReadIOPSDevice", "throttleWriteIOPSDevice", "leafWeight")):
        raise CommandError("update: linux.resources.blockIO devices cannot be changed by berth-runtime")

    def get(obj: dict[str, Any], key: str, what: str) -> Any:
        value = obj.get(key)
        if value is None or value == 0 or value == "":
            return None
        if key in ("cpus", "mems"):
            if not isinstance(value, str):
                raise CommandError(f"update: {what}: {value!r} is not a string")
            return value
        if not isinstance(value, int) or isinstance(value, bool):
            raise CommandError(f"update: {what}: {value!r} is not an integer")
        return value

    return ResourceUpdate(
        memory=get(memory, "limit", "memory.limit"),
        memory_swap=get(memory, "swap", "memory.swap"),
        memory_reservation=get(memory, "reservation", "memory.reservation"),
        cpu_quota=get(cpu, "quota", "cpu.quota"),
        cpu_period=get(cpu, "period", "cpu.period"),
        cpu_shares=get(cpu, "shares", "cpu.shares"),
        cpuset_cpus=get(cpu, "cpus", "cpu.cpus"),
        cpuset_mems=get(cpu, "mems", "cpu.mems"),
        pids_limit=get(res.get("pids") or {}, "limit", "pids.limit"),
        blkio_weight=get(block, "weight", "blockIO.weight"),
    )
