"""berth's libcontainer: run an OCI runtime-spec on the Linux kernel, with syscalls only.

The model: a single-threaded caller (the monitor) hands :func:`create` a ``config.json`` dict,
the graph driver's rootfs mount plan, the stdio fds and a cgroup. ``create`` forks the container
init (pid 1 of a new PID namespace when the spec asks), which builds the container's world --
namespaces, the rootfs mounts, /proc /dev /sys, masked paths, pivot_root, hostname, rlimits,
user, capabilities, cwd, the resolved executable -- and then waits at a barrier.
``InitProcess.start()`` releases it and init ``execve``s the process. ``exec_process`` runs a
process in a running container: a throwaway launcher joins its cgroup and namespaces, takes on
its walls, and only then forks the process (``setns``), so it is never seen unconfined.

    init = create(spec, [Mount("overlay", "overlay", spec["root"]["path"], (...,))],
                  Stdio(0, 1, 2), cgroup)
    init.start()                     # the container's process runs
    os.waitpid(init.pid, 0)

Anything that fails before exec raises :class:`ContainerInitError` with runc's text and the
exit status Docker records (127 not found, 126 cannot execute, 128 otherwise).

Modules: ``spec`` (OCI dict -> frozen dataclasses, validated before any side effect),
``kernel`` (the raw system calls), ``cabi`` (C calls through ``_ctypes`` alone), ``mounts`` (one mount), ``securepath`` (the one symlink-safe
walk inside a root), ``defaultmounts`` (the one default mount table), ``rootfs`` (the
container's file system: mount order, devices, pivot_root, masked/read-only paths),
``cgroup_mount`` (OCI's "cgroup" mount type), ``capabilities`` (names, DEFAULT_CAPS),
``seccomp`` (libseccomp-compiled BPF, cached per profile), ``seccompprofile`` (Docker's profile
format and default profile -> OCI ``linux.seccomp`` for a bounding set), ``bpfeval`` (runs a
compiled filter on one syscall, for tests), ``hostdevices`` (the host's /dev nodes for
``--privileged``), ``enosysstub`` (runc's ENOSYS prologue), ``stdio`` (fds, the console pty),
``executable`` (PATH lookup with runc's text), ``init`` (the child's linear program),
``confine`` (the walls both doors end with: limits, user, capabilities, no_new_privs, seccomp),
``setns`` (the exec door: the launcher), ``removetree`` (removing a directory that may hold
mounts, never through one),
``process`` (fork, PID namespace, sync pipes), ``userns`` (a user namespace of the
container's own: stage A, the id maps), ``cgroups`` (one ``Cgroup`` protocol, a v1/hybrid and
a v2 manager, and ``resources_from_oci``, the one spec -> limits conversion), ``devicefilter``
(v2 device rules as eBPF), ``failure`` (ContainerInitError on the wire), ``testing`` (a busybox
rootfs and a Docker-like spec for tests). The OCI command line over this library,
``berth-runtime``, is the package :mod:`berth.runtime` above it.

Not done: id-mapped mounts, AppArmor/SELinux, systemd cgroup paths. (Hooks: ``hookrun`` runs
them; init runs the in-container phases and pauses for the caller's create hooks.)
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from berth.libcontainer.failure import ContainerInitError
    from berth.libcontainer.process import InitProcess, create, exec_process
    from berth.libcontainer.spec import Mount, Stdio

__all__ = ["ContainerInitError", "InitProcess", "Mount", "Stdio", "create", "exec_process"]

# Loaded on first use (PEP 562): importing any submodule runs this file, and an OCI runtime's
# `state` or `kill` needs none of init's modules.
_LAZY = {
    "ContainerInitError": "berth.libcontainer.failure",
    "InitProcess": "berth.libcontainer.process",
    "create": "berth.libcontainer.process",
    "exec_process": "berth.libcontainer.process",
    "Mount": "berth.libcontainer.spec",
    "Stdio": "berth.libcontainer.spec",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'berth.libcontainer' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
