"""Id-mapped layers: the image's files seen through the container's id mapping, not copied.

A container in a user namespace of its own (``--userns-remap``, ``--userns=auto``) must see its
image's files owned by its own root, i.e. by the host ids its uid 0 maps to. dockerd chowns a
copy of every layer per remapped root; berth leaves the layers as they are and mounts each lower
layer through an id-mapped mount (``mount_setattr(MOUNT_ATTR_IDMAP)``, Linux 5.12; overlayfs
accepts id-mapped layers since 5.19): on-disk uid 0 reads as the mapped root, 1000 as root+1000.

This runs in stage A (:mod:`berth.libcontainer.userns`), which still holds the host's
privileges (the mount needs them over the layers' file system) and has a mount namespace of its
own; the user namespace the mapping is taken from is a throw-away one with the container's maps
(:func:`mapping_userns`, made by the caller, which may write them)::

    fd = mapping_userns(spec.uid_mappings, spec.gid_mappings)   # the caller, before stage A
    mount_rootfs(rootfs_mounts, fd)                             # stage A, before unshare(USER)

The overlay's ``lowerdir`` entries become ``/proc/self/fd/N`` of detached id-mapped clones
(overlayfs keeps its own reference to each layer, so they are closed after the mount); the upper
directory is the container's own and is written with host ids (the daemon owns it by the mapped
root). A bind (the vfs driver's rootfs) is attached id-mapped as a whole.
"""

from __future__ import annotations

import errno
import os

from berth.libcontainer import kernel
from berth.libcontainer.failure import EXIT_OTHER, ContainerInitError
from berth.libcontainer.mounts import fail, mount
from berth.libcontainer.spec import ContainerSpec, IdMap, Mount

MOUNT_ATTR_IDMAP = 0x00100000
# in a rootfs plan's options: its layers already hold the container's host ids (a chowned copy
# per mapping, for kernels without id-mapped overlay layers): mounted as they are, in stage A
PREMAPPED = "x-berth.premapped"


def _write_map(pid: int, name: str, maps: tuple[IdMap, ...]) -> None:
    text = "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps)
    fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def mapping_userns(uid_maps: tuple[IdMap, ...], gid_maps: tuple[IdMap, ...]) -> int:
    """An O_CLOEXEC-less fd of a new user namespace with these maps (for mount_setattr); the
    helper child that made it exits before this returns. Call only from a single-threaded process."""
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    hold_r, hold_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the helper child
        try:
            os.close(hold_w)  # else our own copy would keep the read below from ever seeing EOF
            os.close(ready_r)
            kernel.unshare(kernel.CLONE_NEWUSER)
            # our pid as /proc names it: a caller in a PID namespace of its own (a container's
            # init id-mapping a bind) may still see the host's /proc, where fork's pid is another
            os.write(ready_w, b"u" + os.readlink("/proc/self").encode())
            os.read(hold_r, 1)  # until the parent has opened our namespace
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(hold_r)
    try:
        ready = os.read(ready_r, 64)
        if ready[:1] != b"u" or not ready[1:].isdigit():
            raise ContainerInitError("make the id mapping's user namespace: the helper died", EXIT_OTHER)
        seen = int(ready[1:])
        try:
            _write_map(seen, "gid_map", gid_maps)
            _write_map(seen, "uid_map", uid_maps)
            return os.open(f"/proc/{seen}/ns/user", os.O_RDONLY)
        except OSError as exc:
            raise ContainerInitError(f"make the id mapping's user namespace: {exc.strerror}", EXIT_OTHER) from exc
    finally:
        os.close(ready_r)
        os.close(hold_w)
        os.waitpid(pid, 0)


def idmapped_clone(path: str, userns_fd: int, recursive: bool = False, what: str = "the layer") -> int:
    """A detached clone of the mount at ``path`` whose ids read through ``userns_fd``'s maps."""
    flags = kernel.OPEN_TREE_CLONE | kernel.OPEN_TREE_CLOEXEC | (kernel.AT_RECURSIVE if recursive else 0)
    try:
        fd = kernel.open_tree(kernel.AT_FDCWD, path, flags)
    except OSError as exc:
        raise fail(f"clone {what}", path, exc) from exc
    try:
        kernel.mount_setattr_fd(fd, MOUNT_ATTR_IDMAP, userns_fd, recursive)
    except OSError as exc:
        os.close(fd)
        cause = exc.strerror or str(exc)
        if exc.errno in (errno.EINVAL, errno.ENOSYS):
            cause += " (id-mapped mounts of this file system need a newer kernel)"
        raise ContainerInitError(f"id-map {what} '{path}': {cause}", 128) from exc
    return fd


def mount_clone(m: Mount) -> int:
    """A detached, id-mapped copy of the bind ``m`` (its ``uid_mappings``/``gid_mappings``), for
    move_mount. Forks a helper: single-threaded callers only."""
    fd = mapping_userns(m.uid_mappings, m.gid_mappings)
    try:
        return idmapped_clone(m.source, fd, m.idmap_recursive, what=f"the bind mount source for '{m.target}':")
    finally:
        os.close(fd)


def prepare_mounts(spec: ContainerSpec) -> ContainerSpec:
    """Stage A's part of the spec's id-mapped binds (volumes of a container with maps other than
    the volumes' owner's, berth.daemon.remap.volume_maps): each made now, with the host's
    privileges (id-mapping a mount needs them over its file system, which init, root of its own
    user namespace only, lacks), as a detached copy init attaches where the spec puts it."""
    if not any(m.idmapped and m.tree < 0 for m in spec.mounts):
        return spec
    from berth.libcontainer import record

    mounts = []
    try:
        for m in spec.mounts:
            if m.idmapped and m.tree < 0:
                m = record.replace(m, tree=mount_clone(m))
            mounts.append(m)
    except BaseException:
        for m in mounts:
            if m.tree >= 0:
                os.close(m.tree)
        raise
    return record.replace(spec, mounts=tuple(mounts))


def premapped(mounts: list[Mount]) -> bool:
    return any(PREMAPPED in m.options for m in mounts)


def mount_rootfs(mounts: list[Mount], userns_fd: int | None) -> None:
    """Mount the graph driver's plan with its layers id-mapped (see the module's docstring);
    without ``userns_fd``, a :data:`PREMAPPED` plan as it is."""
    for m in mounts:
        if userns_fd is None:
            options = ",".join(o for o in m.options if o != PREMAPPED)
            mount(m.source, m.target, m.type, 0, options, f"{m.type} (layers chowned for the container)")
        elif m.type == "overlay":
            _mount_overlay(m, userns_fd)
        elif m.type == "bind" or "bind" in m.options or "rbind" in m.options:
            fd = idmapped_clone(m.source, userns_fd, recursive="rbind" in m.options)
            try:
                kernel.move_mount(fd, "", kernel.AT_FDCWD, m.target, kernel.MOVE_MOUNT_F_EMPTY_PATH)
            except OSError as exc:
                raise fail("attach the id-mapped layer on", m.target, exc) from exc
            finally:
                os.close(fd)
        else:
            raise ContainerInitError(f"id-map the rootfs: a {m.type!r} mount cannot be id-mapped", 128)


def _mount_overlay(m: Mount, userns_fd: int) -> None:
    fds: list[int] = []
    options: list[str] = []
    try:
        for opt in m.options:
            if opt.startswith("lowerdir="):
                paths = opt[len("lowerdir=") :].split(":")
                for path in paths:
                    fds.append(idmapped_clone(path, userns_fd))
                opt = "lowerdir=" + ":".join(f"/proc/self/fd/{fd}" for fd in fds)
            options.append(opt)
        mount(m.source, m.target, "overlay", 0, ",".join(options), "overlay (id-mapped layers)")
    finally:
        for fd in fds:
            os.close(fd)


def probe(workdir: str) -> str | None:
    """Whether this kernel mounts an overlay over an id-mapped layer and shows the mapped ids:
    None if it does, else why not. Forks (the check unshares a mount namespace): call it from a
    single-threaded process only (berthd's start, before any thread)."""
    for name in ("lower", "upper", "work", "merged"):
        os.makedirs(os.path.join(workdir, name), exist_ok=True)
    with open(os.path.join(workdir, "lower", "f"), "w"):
        pass
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the probe child
        os.close(r)
        answer = b""
        try:
            fd = mapping_userns((IdMap(0, 100000, 65536),), (IdMap(0, 100000, 65536),))
            kernel.unshare(kernel.CLONE_NEWNS)
            kernel.mount(None, "/", None, kernel.MS_REC | kernel.MS_PRIVATE, None)
            lower = idmapped_clone(os.path.join(workdir, "lower"), fd)
            opts = f"lowerdir=/proc/self/fd/{lower},upperdir={workdir}/upper,workdir={workdir}/work"
            kernel.mount("overlay", os.path.join(workdir, "merged"), "overlay", 0, opts)
            if os.stat(os.path.join(workdir, "merged", "f")).st_uid != 100000:
                answer = b"the overlay does not show the layer's mapped ids"
        except ContainerInitError as exc:
            answer = str(exc).encode()
        except OSError as exc:
            answer = f"overlay over an id-mapped layer: {exc.strerror or exc}".encode()
        finally:
            os.write(w, answer or b"ok")
            os._exit(0)
    os.close(w)
    try:
        got = os.read(r, 4096).decode(errors="replace")
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    return None if got == "ok" else (got or "the probe died")
