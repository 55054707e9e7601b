"""User namespaces: the container's init as root of a namespace of its own, mapped onto host ids.

Two rules of the kernel shape this. Only a process privileged in the *parent* user namespace
may write a new namespace's ``uid_map``/``gid_map`` with more than its own id, so the caller
writes them; and the container's PID namespace must be owned by its user namespace (else its
root may not mount /proc), so the PID namespace is made after the user namespace, which takes
a second fork -- runc's nsexec dance, in two processes. The caller is made a child subreaper
first, so init (the grandchild) becomes its child when stage A exits:

======================================  ==================================================
caller (:func:`spawn_parent_side`)      stage A (:func:`stage_a`, forked by the caller)
======================================  ==================================================
                                        non-dumpable; join the cgroup; rlimits and
                                        oom_score_adj (host privileges: raising them needs
                                        CAP_SYS_RESOURCE of the host); join the namespaces
                                        given by path (user first, mount last)
                                        unshare(CLONE_NEWUSER), ``userns`` on the report pipe
write gid_map, uid_map; one byte on
the sync pipe
                                        setresgid/setresuid(0): root of the namespace;
                                        a new PID namespace (for its children); fork init,
                                        which runs :func:`berth.libcontainer.init.run_init`
                                        with the namespaces already done
                                        ``pid N`` on the report pipe, exit
reap A; wait for init's ``ready``
======================================  ==================================================
"""

from __future__ import annotations

import os

from berth.libcontainer import kernel
from berth.libcontainer.cgroups import Cgroup
from berth.libcontainer.confine import set_limits
from berth.libcontainer.failure import EXIT_OTHER, ContainerInitError, die, step
from berth.libcontainer.spec import ContainerSpec, IdMap, Mount, Stdio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

REQUEST = b"userns\n"  # stage A asks for its maps
PID_PREFIX = b"pid "  # stage A reports init's pid (in the caller's PID namespace)


def map_text(maps: tuple[IdMap, ...]) -> str:
    """``uid_map``'s format: one ``container host size`` line per range."""
    return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps)


def write_maps(pid: int, spec: ContainerSpec) -> None:
    """The caller's part: write stage A's id maps (gid first, as runc; one write each)."""
    for name, maps in (("gid_map", spec.gid_mappings), ("uid_map", spec.uid_mappings)):
        path = f"/proc/{pid}/{name}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, map_text(maps).encode())
            finally:
                os.close(fd)
        except OSError as exc:
            raise ContainerInitError(
                f"write {name} of the container's user namespace ({map_text(maps).strip()!r}): {exc.strerror}",
                EXIT_OTHER,
            ) from exc


def stage_a(
    spec: ContainerSpec,
    seccomp_program: bytes | None,
    rootfs_mounts: list[Mount],
    stdio: Stdio,
    cgroup: Cgroup | None,
    report_fd: int,
    barrier_fd: int,
    sync_fd: int,
    idmap_fd: int | None = None,
    early_rootfs: bool = False,
) -> NoReturn:
    """Stage A, in a child of the (single-threaded) caller; see the module's table.
    ``early_rootfs``: the rootfs is mounted here (:func:`mount_rootfs_idmapped`), its layers
    id-mapped with ``idmap_fd``'s maps (or, without it, already chowned for them), and init gets
    no rootfs mounts."""
    from berth.libcontainer import idmapped
    from berth.libcontainer.init import join_namespaces, run_init

    try:
        kernel.prctl(kernel.PR_SET_DUMPABLE, 0)
        if cgroup is not None:
            cgroup.join()
        set_limits(spec.process)
        # with the host's privileges, before any user namespace is joined or made: the rootfs
        # (its layers id-mapped), and net.* sysctls of a network namespace of the host's
        if early_rootfs:
            mount_rootfs_idmapped(spec, rootfs_mounts, idmap_fd)
            rootfs_mounts = []
        # id-mapped binds (volumes), made while id-mapping is still ours to do; init attaches them
        spec = idmapped.prepare_mounts(spec)
        spec = write_joined_net_sysctls(spec)
        join_namespaces(spec, with_pid=True)
        user = spec.namespace("user")
        if user is not None and user.path is not None:
            # joined: our host ids are not mapped there (files we made would fail, EOVERFLOW)
            step("become root in the joined user namespace", "0", os.setresgid, 0, 0, 0)
            step("become root in the joined user namespace", "0", os.setresuid, 0, 0, 0)
        if spec.new_userns:
            step("unshare user namespace", "self", kernel.unshare, kernel.CLONE_NEWUSER)
            os.write(report_fd, REQUEST)
            if os.read(sync_fd, 1) != b"\0":
                os._exit(EXIT_OTHER)  # the caller could not write the maps (and reports why)
            # root of the new namespace (the container's uid 0 must be mapped, as with runc)
            step("become root in the user namespace", "0", os.setresgid, 0, 0, 0)
            step("become root in the user namespace", "0", os.setresuid, 0, 0, 0)
        os.close(sync_fd)
        pid_ns = spec.namespace("pid")
        if pid_ns is not None and pid_ns.path is None:
            step("unshare pid namespace", "self", kernel.unshare, kernel.CLONE_NEWPID)
        pid = os.fork()
    except BaseException as exc:
        die(report_fd, exc)
    if pid == 0:
        run_init(spec, seccomp_program, rootfs_mounts, stdio, None, report_fd, barrier_fd, namespaces_done=True)
    os.write(report_fd, PID_PREFIX + b"%d\n" % pid)
    os._exit(0)


def write_joined_net_sysctls(spec: ContainerSpec) -> ContainerSpec:
    """Join a network namespace given by path now, with the host's privileges, and write its
    ``net.*`` sysctls; returns the spec without either for what follows. Such a namespace (the
    network driver's) belongs to the host's user namespace: from inside the container's (new or
    joined) its root may neither join it nor write its sysctls (runc has the runtime make the
    network namespace inside the user namespace; berth's is made before the container)."""
    net = spec.namespace("network")
    if net is None or net.path is None:
        return spec
    from berth.libcontainer import record
    from berth.libcontainer.mounts import fail
    from berth.libcontainer.sysctl import proc_path

    fd = os.open(net.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        step("join network namespace", net.path, kernel.setns, fd, kernel.CLONE_NEWNET)
    finally:
        os.close(fd)
    rest = []
    for key, value in spec.sysctl:
        if not key.startswith("net."):
            rest.append((key, value))
            continue
        path = proc_path(key)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            raise fail(f"write sysctl {key}={value!r} to", path, exc) from exc
    namespaces = tuple(ns for ns in spec.namespaces if ns is not net)
    return record.replace(spec, sysctl=tuple(rest), namespaces=namespaces)


def mount_rootfs_idmapped(spec: ContainerSpec, rootfs_mounts: list[Mount], idmap_fd: int | None) -> None:
    """Stage A's part of the rootfs, with the host's privileges still held: a mount namespace of
    its own (owned by the host's user namespace, so init's, made inside the container's user
    namespace, gets these mounts locked: the container cannot unmount them to see what is
    below), propagation cut as :func:`berth.libcontainer.rootfs.prepare` does, then the graph
    driver's plan with id-mapped layers (:mod:`berth.libcontainer.idmapped`)."""
    from berth.libcontainer import idmapped, rootfs
    from berth.libcontainer.mountopts import PROPAGATION
    from berth.libcontainer.mounts import mount

    step("unshare mount namespace", "self", kernel.unshare, kernel.CLONE_NEWNS)
    propagation = PROPAGATION[spec.rootfs_propagation]
    mount(None, "/", None, propagation, None, "(set propagation of)")
    rootfs.root_mount_unshared(spec.root_path, propagation)
    idmapped.mount_rootfs(rootfs_mounts, idmap_fd)
    if idmap_fd is not None:
        os.close(idmap_fd)
