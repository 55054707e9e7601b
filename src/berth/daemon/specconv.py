"""A container record → the exec driver's SpecInput (runc's ``specconv`` step; pure).

Everything the daemon knows about a container at start (its Config and HostConfig, the user
already resolved against the container's /etc/passwd, its files) becomes one frozen
``SpecInput``; ``berth.drivers.exec.spec.build_spec`` turns that into the OCI config.json.

    spec_input(c, rootfs="/…/rootfs", user=(0, 0, []), cgroup_parent="berth-1a2b3c4d")

``--privileged`` also needs the host's device nodes (``host_devices``, read from /dev by the
caller: this module does no I/O).
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from berth.container.record import Container
from berth.daemon import securityopt
from berth.daemon.mountspec import oci_mounts, tmpfs_mounts
from berth.daemon.propagation import root_propagation
from berth.drivers.exec.spec import SpecInput
from berth.libcontainer.cgroups import ALLOW_ALL_DEVICES, DEFAULT_DEVICE_RULES, Resources
from berth.libcontainer.defaultmounts import DEFAULT_SHM_SIZE
from berth.libcontainer.sysctl import normalize as normalize_sysctl


def resources(host: dict[str, Any]) -> Resources:
    """Docker's limits: -m, --memory-swap (-1 unlimited; unset = no swap), --memory-reservation,
    --cpus (or --cpu-quota/--cpu-period as given), --cpuset-cpus/-mems, --pids-limit,
    --cpu-shares, --blkio-weight, --memory-swappiness, --oom-kill-disable (the device throttles
    need the host's device numbers: :func:`berth.daemon.devices.apply` adds them)."""
    memory = host.get("Memory") or None
    swap = host.get("MemorySwap") or None
    swappiness = host.get("MemorySwappiness")
    return Resources(
        memory=memory,
        nano_cpus=host.get("NanoCpus") or None,
        pids_limit=host.get("PidsLimit") or None,
        cpu_shares=host.get("CpuShares") or None,
        memory_swap=swap if memory else None,
        cpu_quota=host.get("CpuQuota") or None,
        cpu_period=host.get("CpuPeriod") or None,
        cpuset_cpus=host.get("CpusetCpus") or None,
        cpuset_mems=host.get("CpusetMems") or None,
        memory_reservation=host.get("MemoryReservation") or None,
        blkio_weight=host.get("BlkioWeight") or None,
        # dockerd writes memory.swappiness only when asked (-1 or unset: the parent's)
        memory_swappiness=swappiness if swappiness is not None and swappiness >= 0 else None,
        oom_kill_disable=bool(host.get("OomKillDisable")),
        # --privileged: the device cgroup allows every device (Docker's "a *:* rwm")
        device_rules=ALLOW_ALL_DEVICES if host.get("Privileged") else DEFAULT_DEVICE_RULES,
    )


def _paths(value: Any) -> tuple[str, ...] | None:
    """HostConfig.MaskedPaths/ReadonlyPaths: None keeps Docker's defaults, a list replaces them."""
    return None if value is None else tuple(str(p) for p in value)


# Docker's sysctls for a container with a network namespace of its own (moby's oci_linux.go):
# ping sockets without CAP_NET_RAW, and ports below 1024 without CAP_NET_BIND_SERVICE.
DEFAULT_NETWORK_SYSCTLS = (
    ("net.ipv4.ping_group_range", "0 2147483647"),
    ("net.ipv4.ip_unprivileged_port_start", "0"),
)


def sysctls(
    requested: dict[str, str], private_network: bool, proc_sys: Path = Path("/proc/sys"), userns: bool = False
) -> tuple[tuple[str, str], ...]:
    """The container's sysctls: the requested ones, plus Docker's defaults for a private
    network namespace where the kernel has them and the container does not set them (in a user
    namespace of its own, as moby, no ping sockets: the group range is read in the writer's
    user namespace, where most of it is unmapped)."""
    out = dict(requested)
    given = {normalize_sysctl(k) for k in out}
    if private_network:
        for key, value in DEFAULT_NETWORK_SYSCTLS:
            if userns and key == "net.ipv4.ping_group_range":
                continue
            if key not in given and (proc_sys / key.replace(".", "/")).exists():
                out[key] = value
    return tuple(out.items())


def cgroups_path(requested: str, daemon_parent: str, cid: str) -> str:
    """Docker's cgroupfs rule: ``<CgroupParent>/<id>`` when the container names a parent (a
    path from the cgroup root, cleaned so that it stays inside it), else the daemon's parent."""
    parent = posixpath.normpath("/" + requested).strip("/") if requested else daemon_parent.strip("/")
    return f"{parent}/{cid}" if parent else cid


def spec_input(
    c: Container,
    rootfs: str,
    user: tuple[int, int, list[int]],
    cgroup_parent: str,
    host_devices: tuple[dict[str, Any], ...] = (),
    sources: dict[str, str] | None = None,
    init: Path | None = None,
    netns: str = "none",
    joined: tuple[tuple[str, str], ...] = (),
    shm: str = "private",
    volume_idmap: dict[str, list[list[int]]] | None = None,
) -> SpecInput:
    """``sources`` replaces the host path of the mounts at those destinations (a volume's
    resolved subpath); ``init``, when given, runs as PID 1 in front of the command (--init).
    ``netns``: "host", "none" (a fresh namespace) or the path of the namespace the network
    driver made (or the one a ``container:`` network mode joins). ``joined`` and ``shm`` are
    what :func:`berth.daemon.namespaces.resolve` found for ``--pid``/``--ipc container:X``.
    ``volume_idmap``: the maps its volumes are id-mapped with (berth.daemon.remap.volume_maps)."""
    host = c.host_config
    security = securityopt.parse(host.get("SecurityOpt"))
    privileged = bool(host.get("Privileged"))
    cdir = Path(c.dir)
    host_network = netns == "host"
    uid, gid, groups = user
    args: tuple[str, ...] = (c.path, *c.args)
    extra_mounts: tuple[dict[str, Any], ...] = ()
    if init is not None:
        from berth.daemon.initbinary import wrap

        args, init_mount = wrap(args, init)
        extra_mounts = (init_mount,)
    return SpecInput(
        args=args,
        rootfs=rootfs,
        env=tuple(c.config.get("Env") or ()),
        cwd=c.config.get("WorkingDir") or "/",
        uid=uid,
        gid=gid,
        additional_gids=tuple(groups),
        tty=c.tty,
        hostname=c.config.get("Hostname") or c.id[:12],
        domainname=c.config.get("Domainname") or "",
        network=netns,
        hosts_path=str(cdir / "hosts"),
        resolv_conf_path=str(cdir / "resolv.conf"),
        hostname_path=None if host_network else str(cdir / "hostname"),
        resources=resources(host),
        readonly_rootfs=bool(host.get("ReadonlyRootfs")),
        cgroups_path=cgroups_path(host.get("CgroupParent") or "", cgroup_parent, c.id),
        shm_size=host.get("ShmSize") or DEFAULT_SHM_SIZE,
        privileged=privileged,
        cap_add=tuple(host.get("CapAdd") or ()),
        cap_drop=tuple(host.get("CapDrop") or ()),
        no_new_privileges=security.no_new_privileges,
        seccomp=security.seccomp,
        masked_paths=_paths(host.get("MaskedPaths")),
        readonly_paths=_paths(host.get("ReadonlyPaths")),
        devices=host_devices if privileged else (),
        rlimits=tuple((u["Name"], int(u["Soft"]), int(u["Hard"])) for u in host.get("Ulimits") or ()),
        sysctls=sysctls(host.get("Sysctls") or {}, private_network=not host_network, userns=bool(c.userns)),
        oom_score_adj=int(host.get("OomScoreAdj") or 0),
        pid_host=host.get("PidMode") == "host",
        ipc_host=host.get("IpcMode") == "host",
        uts_host=host.get("UTSMode") == "host",
        cgroup_ns=host.get("CgroupnsMode") == "private",
        joined=joined,
        shm=shm,
        mounts=(*oci_mounts(c.mounts, tmpfs_mounts(host), sources, volume_idmap), *extra_mounts),
        rootfs_propagation=root_propagation(c.mounts),
        uid_mappings=tuple((a, b, n) for a, b, n in (c.userns or {}).get("uid", ())),
        gid_mappings=tuple((a, b, n) for a, b, n in (c.userns or {}).get("gid", ())),
    )
