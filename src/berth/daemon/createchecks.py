"""dockerd's checks of a create body's settings, before the image is looked up (pure).

After the shape (``createschema``), dockerd's ``verifyContainerSettings`` refuses what cannot
work, each with its own text, as a 400 at create rather than a failure at start:

- Config: a relative ``WorkingDir``, an ``Env`` entry with no name (``""``, ``"="``, ``"=foo"``),
  health-check intervals under 1ms;
- HostConfig: unknown capabilities, links with ``--network host``/``container:`` or in a bad
  format, resources out of range (memory under 6MB or negative, swap, swappiness, CPU, blkio,
  OOM score, shm size, maximum IO settings), and sysctls the container's namespaces do not
  isolate (runc's rule, ``berth.libcontainer.sysctl``: one written with ``--network host`` or a
  non-namespaced one would change the host's kernel).

``verify(body)`` returns dockerd's warnings (a blkio weight the host cannot apply is dropped).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from berth.daemon import devices, namespaces, update
from berth.errors import InvalidParameter
from berth.libcontainer.capabilities import NAMES as CAP_NAMES
from berth.libcontainer.sysctl import SysctlError
from berth.libcontainer.sysctl import check as check_sysctls

MIN_MEMORY = 6 * 1024 * 1024
_RESOURCE_KEYS = (
    "Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuQuota", "CpuPeriod", "CpuShares", "PidsLimit",
    "BlkioWeight", "KernelMemory", "CpuRealtimePeriod", "CpuRealtimeRuntime", "CpusetCpus", "CpusetMems",
    "RestartPolicy",
)  # fmt: skip
_LINK_RE = re.compile(r"^/?[^:/][^:]*(?::/?[^:]+)?$")


def _check_config(body: dict[str, Any]) -> None:
    workdir = body.get("WorkingDir") or ""
    if workdir and not workdir.startswith("/"):
        raise InvalidParameter(f"the working directory '{workdir}' is invalid, it needs to be an absolute path")
    for item in body.get("Env") or ():
        if item is None or not item.partition("=")[0]:
            raise InvalidParameter(f"invalid environment variable: {item or ''}")
    health = body.get("Healthcheck") or {}
    for key in ("Interval", "Timeout", "StartPeriod"):
        value = health.get(key) or 0
        if value != 0 and value < 1_000_000:
            raise InvalidParameter(f"{key} in Healthcheck cannot be less than 1ms")
    if (health.get("Retries") or 0) < 0:
        raise InvalidParameter("Retries in Healthcheck cannot be negative")


def normalize_capability(name: str) -> str:
    """Docker's ``NormalizeLegacyCapabilities`` for one name: ``net_admin`` -> ``CAP_NET_ADMIN``."""
    up = name.upper()
    if up == "ALL":
        return up
    return up if up.startswith("CAP_") else "CAP_" + up


def _check_capabilities(host: dict[str, Any]) -> None:
    known = {f"CAP_{n}" for n in CAP_NAMES}
    for key in ("CapAdd", "CapDrop"):
        value = host.get(key)
        names = [value] if isinstance(value, str) else list(value or ())
        for name in names:
            full = normalize_capability(name or "")
            if full != "ALL" and full not in known:
                raise InvalidParameter(f'invalid {key}: unknown capability: "{full}"')


def _check_links(host: dict[str, Any]) -> None:
    links = host.get("Links") or []
    if not links:
        return
    mode = host.get("NetworkMode") or "default"
    if mode == "host":
        raise InvalidParameter(
            "conflicting options: host type networking can't be used with links. This would result in undefined behavior"
        )
    if mode.startswith("container:"):
        raise InvalidParameter(
            "conflicting options: container type network can't be used with links. "
            "This would result in undefined behavior"
        )
    for link in links:
        if not _LINK_RE.match(link):
            raise InvalidParameter(f"bad format for links: {link}")


def _check_resources(host: dict[str, Any]) -> list[str]:
    """dockerd's ``verifyPlatformContainerResources`` plus the HostConfig-wide limits."""
    given = {k: host[k] for k in _RESOURCE_KEYS if host.get(k) is not None}
    memory, swap = given.get("Memory") or 0, given.get("MemorySwap") or 0
    # the checks create shares with update (same dockerd function): memory, CPU, cpusets, blkio
    warnings = update.verify(given)
    if "BlkioWeight" in given and not given["BlkioWeight"]:
        host["BlkioWeight"] = 0  # the host cannot weigh block I/O: dropped with the warning
    if memory == 0 and swap > 0:
        raise InvalidParameter("You should always set the Memory limit when using Memoryswap limit, see usage")
    swappiness = host.get("MemorySwappiness")
    if swappiness is not None and swappiness != -1 and not 0 <= swappiness <= 100:
        raise InvalidParameter(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")
    kernel = host.get("KernelMemory") or 0
    if 0 < kernel < MIN_MEMORY:
        raise InvalidParameter("Minimum kernel memory limit allowed is 6MB")
    if host.get("IOMaximumBandwidth"):
        raise InvalidParameter("Invalid QoS settings: linux does not support configuration of maximum bandwidth")
    if host.get("IOMaximumIOps"):
        raise InvalidParameter("Invalid QoS settings: linux does not support configuration of maximum IOPs")
    if host.get("CpuPercent"):
        warnings.append("linux does not support CPU percent. Percent discarded.")
        host["CpuPercent"] = 0
    policy = (host.get("RestartPolicy") or {}).get("Name") or "no"
    if host.get("AutoRemove") and policy != "no":
        raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
    if (host.get("ShmSize") or 0) < 0:
        raise InvalidParameter("SHM size can not be less than 0")
    oom = host.get("OomScoreAdj") or 0
    if not -1000 <= oom <= 1000:
        raise InvalidParameter(f"Invalid value {oom}, range for oom score adj is [-1000, 1000]")
    if oom < 0 and not _can_raise_limits():
        with open("/proc/self/oom_score_adj") as f:
            own = int(f.read())
        if oom < own:  # the kernel refuses it at start (runc: "can't get final child's PID from pipe")
            raise InvalidParameter(
                f"Invalid value {oom} for OomScoreAdj: lowering the OOM score below the daemon's own ({own})"
                " needs CAP_SYS_RESOURCE, which this host's root lacks"
            )
    _check_ulimits(host)
    return warnings + _discard_unsupported(host)


def _can_raise_limits() -> bool:
    """Whether the daemon holds CAP_SYS_RESOURCE (raising hard rlimits, lowering oom_score_adj)."""
    from berth.libcontainer import kernel

    return bool(kernel.capget()[0] >> 24 & 1)


# Docker's --ulimit names (go-units' ulimitNameMapping)
ULIMIT_NAMES = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
                "rss", "rtprio", "rttime", "sigpending", "stack")


def _check_ulimits(host: dict[str, Any]) -> None:
    """Known names, soft <= hard, and nothing above the daemon's own hard limit when it cannot
    raise it (root without CAP_SYS_RESOURCE, as on these machines): such a container could not
    start (runc fails with ``error setting rlimit type 7: operation not permitted``), so it is a
    400 at create naming the limit."""
    import resource

    can_raise = _can_raise_limits()
    for u in host.get("Ulimits") or ():
        name, soft, hard = str(u.get("Name") or ""), int(u.get("Soft") or 0), int(u.get("Hard") or 0)
        if name not in ULIMIT_NAMES:
            raise InvalidParameter(f"invalid ulimit type: {name}")
        if hard >= 0 and (soft > hard or soft < 0):
            raise InvalidParameter(f"invalid ulimit {name}: soft limit {soft} is above the hard limit {hard}")
        which = getattr(resource, f"RLIMIT_{name.upper()}", None)
        if can_raise or which is None:
            continue
        own = resource.getrlimit(which)[1]
        if own != resource.RLIM_INFINITY and (hard < 0 or hard > own):
            raise InvalidParameter(
                f"invalid ulimit {name}={soft}:{hard}: the hard limit is above this host's ({own}),"
                " which the daemon cannot raise without CAP_SYS_RESOURCE"
            )


# what dockerd discards, with these warnings, when the host's cgroups cannot apply it
_THROTTLE_WARNINGS = (
    ("BlkioDeviceReadBps", "blkio.throttle.read_bps_device", "BPS Block I/O read limit", "Block I/O BPS read limit"),
    ("BlkioDeviceWriteBps", "blkio.throttle.write_bps_device", "BPS Block I/O write limit", "Block I/O BPS write limit"),
    ("BlkioDeviceReadIOps", "blkio.throttle.read_iops_device", "IOPS Block read limit", "Block I/O IOPS read limit"),
    ("BlkioDeviceWriteIOps", "blkio.throttle.write_iops_device", "IOPS Block write limit", "Block I/O IOPS write limit"),
)


def _discard_unsupported(host: dict[str, Any], root: Path = Path("/sys/fs/cgroup")) -> list[str]:
    """dockerd's ``verifyPlatformContainerResources`` for what depends on the host's cgroups:
    a limit the host cannot apply is dropped from the record with dockerd's warning."""
    from berth.libcontainer.cgroups import is_unified

    warnings: list[str] = []
    v2 = is_unified(root)
    if host.get("OomKillDisable"):
        if v2:  # cgroup v2 has no memory.oom_control
            warnings.append("Your kernel does not support OomKillDisable. OomKillDisable discarded.")
            host["OomKillDisable"] = False
        elif not host.get("Memory"):
            warnings.append(
                "OOM killer is disabled for the container, but no memory limit is set, "
                "this can result in the system running out of resources."
            )
    swappiness = host.get("MemorySwappiness")
    if swappiness is not None and swappiness != -1 and v2:
        warnings.append(
            "Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. "
            "Memory swappiness discarded."
        )
        host["MemorySwappiness"] = None
    blkio = None if v2 else root / "blkio"
    if v2:  # io.weight / io.bfq.weight take per-device weights where the io controller is there
        weights = "io" in (root / "cgroup.controllers").read_text().split()
    else:
        weights = any((root / "blkio" / f).exists() for f in ("blkio.weight_device", "blkio.bfq.weight_device"))
    if host.get("BlkioWeightDevice") and not weights:
        warnings.append("Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded.")
        host["BlkioWeightDevice"] = []
    for key, name, what, dropped in _THROTTLE_WARNINGS:
        if host.get(key) and blkio is not None and not (blkio / name).exists():
            warnings.append(f"Your kernel does not support {what} or the cgroup is not mounted. {dropped} discarded.")
            host[key] = []
    return warnings


def check_sysctl_namespaces(host: dict[str, Any]) -> None:
    """runc's rule at create: no sysctl that the container's namespaces leave shared."""
    sysctls = host.get("Sysctls") or {}
    if not sysctls:
        return
    net, ipc = host.get("NetworkMode") or "default", host.get("IpcMode") or "private"
    try:
        check_sysctls(
            sysctls,
            private_net=net != "host" and not net.startswith("container:"),
            private_ipc=ipc != "host" and not ipc.startswith("container:"),
            private_uts=(host.get("UTSMode") or "") != "host",
        )
    except SysctlError as exc:
        raise InvalidParameter(str(exc)) from None


def verify(body: dict[str, Any]) -> list[str]:
    """Raise InvalidParameter with dockerd's text; return its warnings. Changes ``body``'s
    HostConfig only to drop what dockerd discards with a warning."""
    _check_config(body)
    host = body.get("HostConfig") or {}
    _check_capabilities(host)
    _check_links(host)
    warnings = _check_resources(host)
    check_sysctl_namespaces(host)
    devices.check(host)
    namespaces.check(body)
    _check_security_options(host)
    return warnings


def _check_security_options(host: dict[str, Any]) -> None:
    """``--security-opt`` words and a custom seccomp profile, checked as the start would check
    them (issue 10: a bad profile is a 400 at create and nothing is made; dockerd 20.10 reads the
    profile at start and fails there)."""
    from berth.daemon import securityopt
    from berth.libcontainer.capabilities import DEFAULT_CAPS
    from berth.libcontainer.seccompprofile import to_oci

    opts = securityopt.parse(host.get("SecurityOpt"))
    if isinstance(opts.seccomp, dict):
        to_oci(opts.seccomp, DEFAULT_CAPS)

