"""Volume jobs (``volume.create``, ``.list``, ``.inspect``, ``.remove``, ``.prune``) and the
container side of volumes and binds: a create's mount plan made real, ``rm -v``.

A volume is in use while any container record (running or not) mounts it, or while a create
that will mount it is under way (``LiveContainer.claims``); an in-use volume is never removed.
Binds and volumes are mounted by the container's init inside its own mount namespace (the OCI
spec's mounts, ``mountspec.oci_mounts``): nothing is mounted on the host.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from berth.daemon import mountspec, remap
from berth.daemon.faults import crash_point
from berth.daemon.handlers import HandlerTable
from berth.daemon.volumestore import ANONYMOUS_LABEL
from berth.engine import Job
from berth.errors import Conflict, InvalidParameter, NotFound, SystemFailure
from berth.jobs import volumes as jobs
from berth.jobs.results import JSONObject

if TYPE_CHECKING:
    from berth.container.record import Container
    from berth.daemon.daemon import Daemon

handlers = HandlerTable()


def check_sources(plan: list[mountspec.MountPoint]) -> None:
    """``--mount type=bind`` needs an existing source (``-v`` creates it at start)."""
    for m in plan:
        if m.type == "bind" and not m.create_source and not os.path.exists(m.source):
            raise InvalidParameter(f'invalid mount config for type "bind": bind source path does not exist: {m.source}')


async def make_mounts(d: Daemon, cid: str, plan: list[mountspec.MountPoint]) -> list[dict[str, Any]]:
    """Create the volumes of a new container (its rw layer exists) and copy the image's content
    into empty ones; returns Docker's ``Mounts[]``. Claims each volume for ``cid`` until the
    record is stored (``release_claims``); on failure the anonymous volumes made here go again."""
    out: list[dict[str, Any]] = []
    made: list[str] = []
    try:
        for m in plan:
            if m.type == "bind":
                out.append(mountspec.inspect_view(m, "", m.source))
                continue
            if m.type == "tmpfs":
                if m.listed:  # --mount type=tmpfs is in Mounts, --tmpfs is not (dockerd)
                    out.append(mountspec.inspect_view(m, "", ""))
                continue
            volume, new = await _claim(d, cid, m.source)
            name = volume["Name"]
            if new and not m.source:
                made.append(name)
            target = Path(volume["Mountpoint"])
            # One copy-up at a time per volume: two creates naming a new volume copy it once.
            async with _lock(d, name):
                if m.copy_data and await asyncio.to_thread(_empty, target):
                    await asyncio.to_thread(_copy_up, d, cid, m.destination, target)
            if new:
                d.engine.events.publish("volume", "create", name, {"driver": "local"})
            out.append(mountspec.inspect_view(m, name, str(target)))
    except BaseException:
        release_claims(d, cid)
        for name in made:
            await asyncio.to_thread(d.volumes.remove, name)
        raise
    return out


def _lock(d: Daemon, name: str) -> asyncio.Lock:
    return d.volume_locks.setdefault(name, asyncio.Lock())


def _empty(path: Path) -> bool:
    return not any(path.iterdir())


def _copy_up(d: Daemon, cid: str, path: str, target: Path) -> None:
    """Copy the image's ``path`` into the empty volume directory ``target``, all or nothing: the
    copy is made beside it and renamed over it (a rename replaces an empty directory at once),
    so a daemon killed midway leaves the volume empty, and the next create copies it again."""
    partial = target.with_name(target.name + ".copy-up")
    shutil.rmtree(partial, ignore_errors=True)  # a copy a killed daemon left
    partial.mkdir(mode=0o755)
    try:
        if not d.graph.copy_dir(cid, path, partial):
            return  # not a directory in the image: nothing to copy
        creating = d.live.any(cid)
        if creating is not None and creating.record.userns and d.cfg.remap is not None:
            # volumes hold the daemon-wide mapping's ids, whatever the container's maps (one with
            # maps of its own sees them id-mapped: remap.volume_maps), so its root owns its copy
            remap.shift_tree(partial, d.cfg.remap.default_maps())
        crash_point("volume.after-copy-up")
        os.rename(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


async def _claim(d: Daemon, cid: str, source: str) -> tuple[dict[str, Any], bool]:
    """The volume ``source`` names (a new anonymous one for ""), claimed for the create ``cid``:
    a named volume's lookup and claim hold its lock, so a removal cannot come in between."""

    def claim(volume: dict[str, Any]) -> None:
        creating = d.live.any(cid)
        if creating is not None:
            creating.claims.add(volume["Name"])

    if not source:
        volume, new = await asyncio.to_thread(d.volumes.create, "")
        claim(volume)
        return volume, new
    async with _lock(d, source):
        volume, new = await asyncio.to_thread(d.volumes.create, source)
        claim(volume)
    return volume, new


def release_claims(d: Daemon, cid: str) -> None:
    lc = d.live.any(cid)
    if lc is not None:
        lc.claims.clear()


def make_bind_sources(c: Container) -> None:
    """At start: ``-v /missing:/x`` makes ``/missing`` a directory, as Docker does."""
    for spec in c.host_config.get("Binds") or []:
        m = mountspec.parse_bind(spec)
        if m.type == "bind" and not os.path.exists(m.source):
            try:
                os.makedirs(m.source, 0o755, exist_ok=True)
            except OSError as exc:
                raise SystemFailure(f"error while creating mount source path '{m.source}': {exc.strerror}") from exc


def subpath_sources(c: Container) -> dict[str, str]:
    """At start: for each volume mounted with ``VolumeOptions.Subpath``, the host path of that
    subpath (destination -> path), resolved with every symlink followed and refused when it
    leaves the volume (dockerd's ``safepath`` errors)."""
    wanted = {}
    for obj in c.host_config.get("Mounts") or []:
        m = mountspec.parse_mount(obj)
        if m.type == "volume" and m.subpath:
            wanted[m.destination] = m.subpath
    out = {}
    for rec in c.mounts:
        sub = wanted.get(rec["Destination"])
        if sub and rec.get("Type") == "volume":
            out[rec["Destination"]] = resolve_subpath(rec["Source"], sub)
    return out


def resolve_subpath(base: str, subpath: str) -> str:
    """``base/subpath`` with its symlinks resolved (they are the volume's content, so hostile);
    NotFound when it does not exist, InvalidParameter when it ends outside ``base``."""
    try:
        real_base = os.path.realpath(base, strict=True)
    except OSError as exc:
        raise NotFound(f"cannot access path {base}: lstat {base}: {(exc.strerror or str(exc)).lower()}") from exc
    combined = os.path.join(real_base, subpath)
    try:
        resolved = os.path.realpath(combined, strict=True)
    except OSError as exc:
        raise NotFound(f"cannot access path {combined}: lstat {combined}: {(exc.strerror or str(exc)).lower()}") from exc
    if os.path.commonpath([real_base, resolved]) != real_base:
        raise InvalidParameter(f"path concatenation escapes the base directory, base: {real_base}, subpath: {subpath}")
    return resolved


def users(d: Daemon, name: str) -> list[str]:
    ids = [lc.id for lc in d.live if any(m.get("Name") == name for m in lc.record.mounts)]
    claiming = {lc.id for lc in d.live.everything() if name in lc.claims}  # creates under way
    return ids + sorted(claiming - set(ids))


async def remove_volume(d: Daemon, name: str, force: bool = False) -> None:
    lock = _lock(d, name)
    async with lock:  # a create cannot claim it between the check and the removal
        try:
            await asyncio.to_thread(d.volumes.get, name)
        except NotFound:
            if force:
                return
            raise
        in_use = users(d, name)
        if in_use:
            raise Conflict(f"remove {name}: volume is in use - [{' '.join(in_use)}]")
        await asyncio.to_thread(d.volumes.remove, name)
    if d.volume_locks.get(name) is lock and not lock.locked():
        del d.volume_locks[name]
    d.engine.events.publish("volume", "destroy", name, {"driver": "local"})


async def remove_anonymous(d: Daemon, c: Container) -> None:
    """``rm -v`` and ``run --rm``: the container's anonymous volumes go, named ones stay
    (after the record is gone, so the container no longer counts as a user)."""
    for m in c.mounts:
        name = m.get("Name") or ""
        if not name:
            continue
        try:
            labels = (await asyncio.to_thread(d.volumes.get, name))["Labels"]
        except NotFound:
            continue  # removed meanwhile (volume rm -f of an unused one): nothing to do
        if ANONYMOUS_LABEL in labels and not users(d, name):
            try:
                await remove_volume(d, name)
            except (NotFound, Conflict):
                continue  # removed, or claimed by a create, meanwhile: it is not ours to remove


# -- jobs ---------------------------------------------------------------------------------


def _matches(d: Daemon, v: dict[str, Any], key: str, values: list[str]) -> bool:
    if key == "name":
        return any(val in v["Name"] for val in values)
    if key == "driver":
        return v["Driver"] in values
    if key == "dangling":
        want = {val.lower() for val in values}
        if not want <= {"true", "false", "1", "0"}:
            raise InvalidParameter(f"Invalid filter 'dangling={values[0]}'")
        dangling = not users(d, v["Name"])
        return dangling if want & {"true", "1"} else not dangling
    if key in ("label", "label!"):
        labels = v["Labels"] or {}
        hit = all(
            labels.get(val.split("=", 1)[0]) == val.split("=", 1)[1] if "=" in val else val in labels for val in values
        )
        return hit if key == "label" else not hit
    if key == "all":
        return True
    raise InvalidParameter(f"Invalid filter '{key}'")  # dockerd's text


@handlers.on(jobs.VolumeCreate)
async def create(d: Daemon, req: jobs.VolumeCreate, job: Job) -> JSONObject:
    body = req.body
    for key, want in (("Name", str), ("Driver", str), ("Labels", dict), ("DriverOpts", dict)):
        if body.get(key) is not None and not isinstance(body[key], want):
            raise InvalidParameter(f"json: cannot unmarshal into field {key} of type {want.__name__}")
    volume, new = await asyncio.to_thread(
        functools.partial(
            d.volumes.create, body.get("Name") or "", labels=body.get("Labels"),
            driver=body.get("Driver") or "local", options=body.get("DriverOpts"),
        )
    )
    if new:
        d.engine.events.publish("volume", "create", volume["Name"], {"driver": "local"})
    return volume


@handlers.on(jobs.VolumeList)
async def list_(d: Daemon, req: jobs.VolumeList, job: Job) -> JSONObject:
    filters = req.filters
    out = [v for v in await asyncio.to_thread(d.volumes.all) if all(_matches(d, v, k, vals) for k, vals in filters.items())]
    return {"Volumes": out, "Warnings": None}


@handlers.on(jobs.VolumeInspect)
async def inspect(d: Daemon, req: jobs.VolumeInspect, job: Job) -> JSONObject:
    volume: JSONObject = await asyncio.to_thread(d.volumes.get, req.name)
    return volume


def volumes_from(d: Daemon, specs: list[str] | None) -> list[dict[str, Any]]:
    """``--volumes-from NAME[:ro|:rw]``: the volumes and binds of other containers (dockerd's
    ``parseVolumesFrom``), each read-only if it was or if ``ro`` says so; tmpfs mounts stay
    with their container. Missing containers are dockerd's 404, bad modes its 400."""
    out: dict[str, dict[str, Any]] = {}
    for spec in specs or []:
        if not isinstance(spec, str) or not spec:
            raise InvalidParameter("json: cannot unmarshal into field HostConfig.VolumesFrom of type string")
        ref, _, mode = spec.partition(":")
        if mode and mode not in ("ro", "rw", "z", "Z", "ro,z", "ro,Z", "rw,z", "rw,Z", "z,ro", "Z,ro", "z,rw", "Z,rw"):
            raise InvalidParameter(f"invalid mode: {mode}")
        try:
            source = d.find(ref)
        except NotFound as exc:
            raise InvalidParameter(exc.message) from None  # dockerd: a 400, not a missing image
        for m in source.mounts:
            if m.get("Type") == "tmpfs":
                continue
            copied = dict(m)
            copied["RW"] = bool(m.get("RW", True)) and "ro" not in mode.split(",")
            if mode:
                copied["Mode"] = mode
            out[m["Destination"]] = copied
    return list(out.values())


def with_inherited(own: list[dict[str, Any]], inherited: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The container's own mounts and, where it has none, the inherited ones; parents first."""
    taken = {m["Destination"] for m in own}
    merged = own + [m for m in inherited if m["Destination"] not in taken]
    return sorted(merged, key=lambda m: (m["Destination"].count("/"), m["Destination"]))


def publish_mounts(d: Daemon, c: Container, action: str) -> None:
    """dockerd's ``volume mount`` events at a start and ``unmount`` ones at the exit, one per
    named or anonymous volume (binds and tmpfs have none)."""
    for m in c.mounts:
        if m.get("Type") != "volume" or not m.get("Name"):
            continue
        attrs = {"container": c.id, "driver": m.get("Driver") or "local"}
        if action == "mount":
            attrs.update({"destination": m["Destination"], "propagation": m.get("Propagation") or "",
                          "read/write": "true" if m.get("RW", True) else "false"})
        d.engine.events.publish("volume", action, m["Name"], attrs)


@handlers.on(jobs.VolumeRemove)
async def remove(d: Daemon, req: jobs.VolumeRemove, job: Job) -> None:
    await remove_volume(d, req.name, req.force)


@handlers.on(jobs.VolumePrune)
async def prune(d: Daemon, req: jobs.VolumePrune, job: Job) -> JSONObject:
    """Unused volumes go; from API 1.42 on only anonymous ones unless the ``all`` filter is
    true (``docker volume prune -a``), as dockerd."""
    filters = dict(req.filters)
    everything = any(v.lower() in ("1", "true") for v in filters.pop("all", []))
    if req.api_version < (1, 42):
        everything = True
    deleted: list[str] = []
    space = 0
    for v in await asyncio.to_thread(d.volumes.all):
        if users(d, v["Name"]) or not all(_matches(d, v, k, vals) for k, vals in filters.items()):
            continue
        if not everything and ANONYMOUS_LABEL not in (v["Labels"] or {}):
            continue
        size = await asyncio.to_thread(d.volumes.size, v["Name"])
        try:
            await remove_volume(d, v["Name"])
        except (NotFound, Conflict):
            continue  # removed, or claimed by a create, meanwhile
        space += size
        deleted.append(v["Name"])
    d.engine.events.publish("volume", "prune", "", {"reclaimed": str(space)})
    return {"VolumesDeleted": deleted or None, "SpaceReclaimed": space}


