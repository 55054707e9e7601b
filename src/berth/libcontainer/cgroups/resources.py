"""What a cgroup is asked to hold: the limits at creation, a live update, and what it reports.

``Resources`` is written once when the cgroup is made (every field a limit, ``None`` = none);
``ResourceUpdate`` changes a live cgroup (``None`` = keep what it has); ``Stats`` is what
``docker stats`` reads back. Version-neutral: the v1 and v2 managers decide the files.

Limits follow Docker: ``nano_cpus`` -> CFS quota over a 100 ms period (an OCI spec's own
``cpu_quota``/``cpu_period`` are written as given); ``cpuset_cpus``/``cpuset_mems`` narrow the
cpuset copied from the parent; ``memory`` without ``memory_swap`` means no swap; device access is
deny-all plus the allow lines of ``device_rules`` (Docker's default list unless privileged).
"""

from __future__ import annotations

from berth.libcontainer.record import record

CFS_PERIOD_US = 100_000

# Docker's default device cgroup rules (runc's AllowedDevices, which moby's spec relies on).
DEFAULT_DEVICE_RULES = (
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",  # null
    "c 1:5 rwm",  # zero
    "c 1:7 rwm",  # full
    "c 1:8 rwm",  # random
    "c 1:9 rwm",  # urandom
    "c 5:0 rwm",  # tty
    "c 5:1 rwm",  # console
    "c 5:2 rwm",  # ptmx
    "c 136:* rwm",  # pts
    "c 10:200 rwm",  # tun
)
ALLOW_ALL_DEVICES = ("a *:* rwm",)


@record
class Resources:
    memory: int | None = None  # bytes
    nano_cpus: int | None = None  # 1e9 = one CPU
    pids_limit: int | None = None  # <= 0 means unlimited
    cpu_shares: int | None = None
    memory_swap: int | None = None  # memory + swap in bytes; None = no swap; -1 = unlimited
    device_rules: tuple[str, ...] = DEFAULT_DEVICE_RULES
    # the OCI spec's own CFS numbers, written as given (after nano_cpus, so they win):
    cpu_quota: int | None = None  # µs per period; -1 = unlimited
    cpu_period: int | None = None  # µs
    cpuset_cpus: str | None = None  # e.g. "0-1,3"
    cpuset_mems: str | None = None
    memory_reservation: int | None = None  # soft limit: memory.soft_limit_in_bytes / memory.low
    blkio_weight: int | None = None  # 10..1000: blkio.weight / io.weight (where the host has it)
    # OCI limits beyond Docker's (berth-runtime's bundles); an error where the host cannot apply
    # them (:mod:`.extralimits`)
    memory_swappiness: int | None = None  # 0..100
    oom_kill_disable: bool = False
    kernel_tcp: int | None = None  # bytes
    blkio_weight_device: tuple[tuple[str, int], ...] = ()  # ("8:0", 500)
    blkio_throttle: tuple[tuple[str, str, int], ...] = ()  # ("read_bps", "8:0", 1048576)
    hugetlb: tuple[tuple[str, int], ...] = ()  # ("2MB", bytes)
    net_cls_classid: int | None = None
    net_prio: tuple[tuple[str, int], ...] = ()  # (interface, priority)
    cpu_rt_runtime: int | None = None  # µs
    cpu_rt_period: int | None = None  # µs
    unified: tuple[tuple[str, str], ...] = ()  # cgroup v2 file name -> value

    @property
    def has_extras(self) -> bool:
        return any(
            (
                self.memory_swappiness is not None,
                self.oom_kill_disable,
                self.kernel_tcp is not None,
                self.blkio_weight_device,
                self.blkio_throttle,
                self.hugetlb,
                self.net_cls_classid is not None,
                self.net_prio,
                self.cpu_rt_runtime is not None,
                self.cpu_rt_period is not None,
                self.unified,
            )
        )


@record
class ResourceUpdate:
    """``docker update`` (runc's ``update``): only the fields given (not None) are written."""

    memory: int | None = None  # bytes
    memory_swap: int | None = None  # memory + swap; -1 = unlimited
    memory_reservation: int | None = None
    nano_cpus: int | None = None
    cpu_quota: int | None = None  # µs; -1 = unlimited
    cpu_period: int | None = None  # µs
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: int | None = None  # <= 0 = unlimited
    blkio_weight: int | None = None


@record
class Stats:
    """What ``docker stats`` needs from a cgroup; ``None`` where the kernel says nothing/unlimited."""

    cpu_usage_ns: int | None = None
    memory_usage: int | None = None
    memory_limit: int | None = None
    memory_stat: tuple[tuple[str, int], ...] = ()  # memory.stat, in file order
    pids_current: int | None = None
    pids_limit: int | None = None


def nano_cpus_quota(nano_cpus: int) -> int:
    """``--cpus``' CFS quota over the default 100 ms period."""
    return nano_cpus * CFS_PERIOD_US // 1_000_000_000


def pids_max(limit: int) -> int | str:
    """``pids.max``' value: <= 0 is unlimited."""
    return "max" if limit <= 0 else limit
