"""The OCI limits beyond Docker's set, for ``berth-runtime``'s bundles: written where the host's
cgroups take them, and an error naming the limit where they cannot (never dropped silently).

=========================  ==========================================  ==============================
``Resources`` field        cgroup v1 file (hierarchy)                  cgroup v2 file
=========================  ==========================================  ==============================
memory_swappiness          ``memory.swappiness``                       none: refused
oom_kill_disable           ``memory.oom_control`` = 1                  none: refused
kernel_tcp                 ``memory.kmem.tcp.limit_in_bytes``          none (v2 counts it in memory)
blkio_weight_device        ``blkio.weight_device`` / ``bfq`` one       ``io.weight`` / ``io.bfq``
blkio_throttle             ``blkio.throttle.<kind>_device``            ``io.max`` (rbps= wbps= ...)
hugetlb                    ``hugetlb.<size>.limit_in_bytes``           ``hugetlb.<size>.max``
net_cls_classid            ``net_cls.classid``                         none: refused
net_prio                   ``net_prio.ifpriomap``                      none: refused
cpu_rt_runtime/_period     ``cpu.rt_runtime_us`` / ``cpu.rt_period_us`` none: refused
unified                    the hybrid host's unified hierarchy          the file named, as given
=========================  ==========================================  ==============================

On a hybrid host a controller that lives in the unified hierarchy (hugetlb here) is written
there, as in v2. ``write_v1``/``write_v2`` take the directories the manager made.
"""

from __future__ import annotations

from berth.errors import SystemFailure
from berth.libcontainer.cgroups import files
from berth.libcontainer.cgroups.files import P
from berth.libcontainer.cgroups.resources import Resources

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

THROTTLE_V2_KEYS = {"read_bps": "rbps", "write_bps": "wbps", "read_iops": "riops", "write_iops": "wiops"}


def wanted_v2_controllers(r: Resources) -> list[str]:
    """Controllers these limits need enabled in a v2 tree."""
    wanted = []
    if r.blkio_weight_device or r.blkio_throttle:
        wanted.append("io")
    if r.hugetlb:
        wanted.append("hugetlb")
    wanted += sorted({key.split(".", 1)[0] for key, _ in r.unified} - {"cgroup"})
    return wanted


def write_v1(r: Resources, dir_of: Callable[[str], P | None], unified_root: P | None, name: str) -> None:
    """``dir_of(controller)`` is the container's directory in that v1 hierarchy (None: not
    mounted); ``unified_root`` a hybrid host's unified hierarchy (None: pure v1), where the
    container's directory is ``name``."""
    unified = None if unified_root is None else unified_root / name
    mem = dir_of("memory")
    if r.memory_swappiness is not None:
        _write(_need(mem, "memory", "linux.resources.memory.swappiness"), "memory.swappiness", r.memory_swappiness)
    if r.oom_kill_disable:
        _write(_need(mem, "memory", "linux.resources.memory.disableOOMKiller"), "memory.oom_control", 1)
    if r.kernel_tcp is not None:
        _write(_need(mem, "memory", "linux.resources.memory.kernelTCP"), "memory.kmem.tcp.limit_in_bytes", r.kernel_tcp)
    if r.blkio_weight_device or r.blkio_throttle:
        blkio = _need(dir_of("blkio"), "blkio", "linux.resources.blockIO")
        for dev, weight in r.blkio_weight_device:
            _write_first(blkio, ("blkio.weight_device", "blkio.bfq.weight_device"), f"{dev} {weight}")
        for kind, dev, rate in r.blkio_throttle:
            _write(blkio, f"blkio.throttle.{kind}_device", f"{dev} {rate}")
    if r.hugetlb:
        v1 = dir_of("hugetlb")
        if v1 is not None:
            for size, limit in r.hugetlb:
                _write(v1, f"hugetlb.{size}.limit_in_bytes", limit)
        else:
            leaf = _need(_enable(unified_root, name, "hugetlb"), "hugetlb", "linux.resources.hugepageLimits")
            _write_hugetlb_v2(leaf, r)
    if r.net_cls_classid is not None:
        _write(_need(dir_of("net_cls"), "net_cls", "linux.resources.network.classID"), "net_cls.classid", r.net_cls_classid)
    for iface, prio in r.net_prio:
        _write(_need(dir_of("net_prio"), "net_prio", "linux.resources.network.priorities"), "net_prio.ifpriomap", f"{iface} {prio}")
    if r.cpu_rt_period is not None or r.cpu_rt_runtime is not None:
        cpu = _need(dir_of("cpu"), "cpu", "linux.resources.cpu.realtimeRuntime/realtimePeriod")
        if r.cpu_rt_period is not None:
            _write(cpu, "cpu.rt_period_us", r.cpu_rt_period)
        if r.cpu_rt_runtime is not None:
            _write(cpu, "cpu.rt_runtime_us", r.cpu_rt_runtime)
    if r.unified:
        _write_unified(_need(unified, "unified", "linux.resources.unified"), r)


def write_v2(r: Resources, leaf: P) -> None:
    for value, what in (
        (r.memory_swappiness, "memory.swappiness"),
        (r.oom_kill_disable or None, "memory.disableOOMKiller"),
        (r.net_cls_classid, "network.classID"),
        (r.net_prio or None, "network.priorities"),
        (r.cpu_rt_runtime, "cpu.realtimeRuntime"),
        (r.cpu_rt_period, "cpu.realtimePeriod"),
    ):
        if value is not None:
            raise SystemFailure(f"linux.resources: {what} is not supported with cgroup v2")
    for dev, weight in r.blkio_weight_device:
        _write_first(leaf, ("io.bfq.weight", "io.weight"), f"{dev} {weight}")
    if r.blkio_throttle:
        per_dev: dict[str, list[str]] = {}
        for kind, dev, rate in r.blkio_throttle:
            per_dev.setdefault(dev, []).append(f"{THROTTLE_V2_KEYS[kind]}={rate}")
        for dev, keys in per_dev.items():
            _write(leaf, "io.max", f"{dev} {' '.join(keys)}")
    if r.hugetlb:
        _write_hugetlb_v2(leaf, r)
    _write_unified(leaf, r)


def _write_hugetlb_v2(leaf: P, r: Resources) -> None:
    for size, limit in r.hugetlb:
        _write(leaf, f"hugetlb.{size}.max", limit)


def _write_unified(leaf: P, r: Resources) -> None:
    for key, value in r.unified:
        if "/" in key or key.startswith("."):
            raise SystemFailure(f"linux.resources.unified: {key!r} is not a cgroup file name")
        _write(leaf, key, value)


def _enable(root: P | None, name: str, controller: str) -> P | None:
    """A hybrid host's unified directory ``name`` with ``controller`` enabled on the way down
    (the directories exist; none above the leaf holds a process), or None if the hierarchy does
    not offer it."""
    if root is None or controller not in files.read_quiet(root / "cgroup.controllers").split():
        return None
    here = root
    for part in name.split("/"):
        files.write(here / "cgroup.subtree_control", f"+{controller}")
        here = here / part
    return here


def _need(path: P | None, controller: str, what: str) -> P:
    if path is None:
        raise SystemFailure(f"{what}: the host has no {controller} cgroup controller to apply it")
    return path


def _write(base: P, name: str, value: object) -> None:
    path = base / name
    if not path.exists():
        raise SystemFailure(f"{name}: the host's cgroups offer no such file ('{path}')")
    files.write(path, value)


def _write_first(base: P, names: tuple[str, ...], value: object) -> None:
    for name in names:
        if (base / name).exists():
            files.write(base / name, value)
            return
    raise SystemFailure(f"{names[0]}: the host's cgroups offer no such file (in '{base}')")
