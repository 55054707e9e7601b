"""Local volumes with mount options (``volume create -o type=tmpfs -o device=tmpfs -o o=size=64m``,
``-o type=none -o o=bind -o device=/srv/data``): mounted while containers use them.

As dockerd's local driver: the volume's ``_data`` gets ``mount -t TYPE -o O DEVICE`` when the
first running container that uses it starts and loses it when the last one exits, so a tmpfs
volume is shared by the containers running together and empty again once none runs. ``o`` is
split like mount(8)'s options (``bind``, ``ro``, ``nosuid`` ... become flags, the rest is the
file system's data). The mount sits in the daemon's private data root (0700), where the
containers' binds take it from; a daemon that starts again unmounts the ones no running
container uses. Image content is not copied into such a volume (dockerd's copy goes into a
mount it drops again).

    await acquire(d, c)     # before the container's process starts
    await release(d, c)     # once its exit is settled
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

from berth.container.record import Container
from berth.errors import NotFound, SystemFailure
from berth.libcontainer import kernel
from berth.libcontainer.mountopts import parse_mount_options

if TYPE_CHECKING:
    from berth.daemon.daemon import Daemon

log = logging.getLogger("berth.daemon")


def _mounted_volumes(d: Daemon, c: Container) -> list[tuple[str, dict[str, str]]]:
    """The volumes with mount options ``c`` uses (the volume store's lookups: call it in a worker
    thread)."""
    out = []
    for m in c.mounts:
        if m.get("Type") != "volume" or not m.get("Name"):
            continue
        try:
            options = d.volumes.get(m["Name"]).get("Options") or {}
        except NotFound:
            continue  # removed meanwhile: nothing to mount
        if options.get("device"):
            out.append((m["Name"], options))
    return out


def _mount(target: str, options: dict[str, str]) -> None:
    words = [w for w in (options.get("o") or "").split(",") if w]
    opts = parse_mount_options(words)
    fstype = options.get("type") or None
    if fstype == "none":
        fstype = None
    device = options["device"]
    try:
        kernel.mount(device, target, fstype, opts.flags, opts.data or None)
        if opts.bind and opts.flags & ~(kernel.MS_BIND | kernel.MS_REC):  # flags on a bind need a remount
            kernel.mount(None, target, None, kernel.MS_REMOUNT | opts.flags, None)
    except OSError as exc:
        data = f", data: {opts.data}" if opts.data else ""
        raise SystemFailure(
            f"error while mounting volume '{target}': failed to mount local volume: mount {device}:{target}, "
            f"flags: {opts.flags:#x}{data}: {(exc.strerror or str(exc)).lower()}"
        ) from exc


def _unmount(target: str) -> None:
    try:
        kernel.umount2(target, kernel.MNT_DETACH)
    except OSError as exc:
        log.error("unmount volume %s: %s", target, exc.strerror)


def _mount_volume(d: Daemon, name: str, options: dict[str, str]) -> None:
    _mount(str(d.volumes.mountpoint(name)), options)


def _unmount_volume(d: Daemon, name: str) -> None:
    _unmount(str(d.volumes.mountpoint(name)))


async def acquire(d: Daemon, c: Container) -> None:
    """Mount the option volumes ``c`` uses that no running container holds yet. (A container
    without named volumes has nothing to look up: no hop to a worker thread on its start's way.)"""
    if not _uses_named_volumes(c):
        return
    for name, options in await asyncio.to_thread(_mounted_volumes, d, c):
        async with d.volume_locks.setdefault(name, asyncio.Lock()):
            users = d.volume_users.setdefault(name, set())
            if not users:
                await asyncio.to_thread(_mount_volume, d, name, options)
            users.add(c.id)


def _uses_named_volumes(c: Container) -> bool:
    return any(m.get("Type") == "volume" and m.get("Name") for m in c.mounts)


async def release(d: Daemon, c: Container) -> None:
    """After ``c``'s exit (or a start that failed): unmount what no one uses any more. (A
    container without named volumes has nothing to look up: no hop to a worker thread on the
    way of its exit.)"""
    if not _uses_named_volumes(c):
        return
    for name, _options in await asyncio.to_thread(_mounted_volumes, d, c):
        async with d.volume_locks.setdefault(name, asyncio.Lock()):
            users = d.volume_users.get(name)
            if not users or c.id not in users:
                continue
            users.discard(c.id)
            if not users:
                del d.volume_users[name]
                await asyncio.to_thread(_unmount_volume, d, name)


def reconcile(d: Daemon) -> None:
    """At start-up: the running containers hold their volumes again; any other mount at an
    option volume's ``_data`` (its users went while the daemon was away) goes. (In a worker
    thread: the volume store's lookups and the unmounts.)"""
    for c in d.live.records():
        if c.state.running:
            for name, _options in _mounted_volumes(d, c):
                d.volume_users.setdefault(name, set()).add(c.id)
    for v in d.volumes.all():
        if (v.get("Options") or {}).get("device") and v["Name"] not in d.volume_users:
            target = str(d.volumes.mountpoint(v["Name"]))
            if os.path.ismount(target):
                _unmount(target)

