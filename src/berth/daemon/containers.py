"""Container record jobs: create, list, inspect, rename, remove, wait, top."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import posixpath
import re
import secrets
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from berth.container.record import Container, now_rfc3339, parse_rfc3339
from berth.daemon import (
    createchecks,
    createconfig,
    mountspec,
    namespaces,
    netsettings,
    platforms,
    remap,
    storageopt,
    volumes,
)
from berth.daemon.failures import translate
from berth.daemon.faults import crash_point, record_delete_pause
from berth.daemon.handlers import HandlerTable
from berth.daemon.livecontainer import Phase
from berth.daemon.modes import path_dir_mode
from berth.daemon.names import random_name
from berth.engine import Job
from berth.errors import BerthError, Conflict, InvalidParameter, NotFound, NotModified
from berth.jobs import containers as jobs
from berth.jobs.results import Created, JSONList, JSONObject
from berth.libcontainer.removetree import remove_tree
from berth.steptrace import mark

if TYPE_CHECKING:
    from berth.daemon.daemon import Daemon

handlers = HandlerTable()
log = logging.getLogger("berth.daemon")


def _conflict(name: str, cid: str) -> Conflict:
    return Conflict(
        f'Conflict. The container name "/{name}" is already in use by container "{cid}". '
        "You have to remove (or rename) that container to be able to reuse that name."
    )


def _write_files(cdir: Path, hostname: str) -> None:
    # its config holds the environment (0711 with --userns-remap: the remapped root walks to its files)
    cdir.mkdir(mode=path_dir_mode(), parents=True, exist_ok=True)
    (cdir / "hostname").write_text(hostname + "\n")
    (cdir / "hosts").write_text(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
    )
    try:
        resolv = Path("/etc/resolv.conf").read_text()
    except OSError:
        resolv = ""
    (cdir / "resolv.conf").write_text(resolv)


def _check_links(d: Daemon, host: dict[str, Any]) -> None:
    """A link to a missing container is dockerd's 400 (the network driver resolves links at
    start: /etc/hosts entries on the default bridge, DNS aliases on user networks)."""
    for link in host.get("Links") or ():
        target = link.split(":", 1)[0].lstrip("/")
        try:
            d.find(target)
        except NotFound as exc:
            raise InvalidParameter(f"could not get container for {target}: {exc}") from None


def _image_known(d: Daemon, ref: str) -> tuple[str, dict[str, Any]]:
    """The image's id and config if both are in memory and still valid ("", {} if not)."""
    image_id = d.graph.resolve_cached(ref)
    config = d.graph.config_cached(image_id) if image_id else None
    return (image_id, config) if image_id and config is not None else ("", {})


def _image_of(d: Daemon, ref: str) -> tuple[str, dict[str, Any]]:
    """The image's id and config (in a worker thread)."""
    image_id = d.graph.resolve(ref)
    return image_id, d.graph.config(image_id) or {}


def _write_files_and_layer(d: Daemon, cdir: Path, hostname: str, cid: str, image_id: str) -> None:
    """In one worker thread: the container's directory and files, then its read-write layer."""
    _write_files(cdir, hostname)
    d.graph.prepare_rw(cid, image_id)


def _write_all(d: Daemon, cdir: Path, c: Container, image_id: str) -> None:
    """In one worker thread: the directory and files, the read-write layer, then the record (in
    this order: what a crash leaves before the record is deleted at start-up)."""
    _write_files_and_layer(d, cdir, c.config["Hostname"], c.id, image_id)
    crash_point("create.after-rw")
    d.store.put(c, new=True)


@handlers.on(jobs.ContainerCreate)
async def create(d: Daemon, req: jobs.ContainerCreate, job: Job) -> Created:
    mark("d:create")
    body = req.config
    createconfig.validate(body)
    warnings = createchecks.verify(body)  # before the image: a 400 here must not start a pull
    namespaces.check_create(d, body.get("HostConfig") or {})
    remap.check_create(d.cfg.remap, body.get("HostConfig") or {}, body.get("Labels") or {})
    wanted = platforms.parse(req.platform) if req.platform else None
    name = createconfig.validate_name(req.name)
    image_id, image_config = _image_known(d, body["Image"])
    if not image_id:  # not looked up since the graph last changed: one hop to a thread
        image_id, image_config = await asyncio.to_thread(_image_of, d, body["Image"])
    if wanted is not None and not platforms.matches(wanted, image_config):
        raise NotFound(
            f"image with reference {body['Image']} was found but does not match the specified platform: "
            f"wanted {wanted.format()}, actual: {platforms.of_image(image_config).format()}"
        )
    config, host = createconfig.merge(body, image_config, (d.cfg.log_driver, d.cfg.log_opts),
                                       d.cfg.runtime_table)
    _check_links(d, host)
    storageopt.check(host.get("StorageOpt"), d.storage_driver, d.cfg.data_root)
    networks = netsettings.endpoint_configs(body, host, d.network.find)
    netsettings.check_create(d, body, config, host)
    inherited = volumes.volumes_from(d, host.get("VolumesFrom"))
    image_volumes = {k: v for k, v in (config.get("Volumes") or {}).items()
                     if posixpath.normpath(k) not in {m["Destination"] for m in inherited}}
    plan = mountspec.plan(host.get("Binds"), host.get("Mounts"), image_volumes, host.get("Tmpfs"))
    if any(m.subpath for m in plan) and req.api_version < (1, 45):
        raise InvalidParameter("VolumeOptions.Subpath needs API v1.45 or newer")
    volumes.check_sources(plan)
    cid = secrets.token_hex(32)
    # The name is checked and reserved with no await in between, so two concurrent creates of
    # the same name cannot both pass (the rw layer is prepared before the record is stored).
    taken = d.live.names()
    if name and name in taken:
        raise _conflict(name, taken[name])
    name = name or random_name(set(taken))
    # the user namespace's maps, chosen with no await since the other containers' were read
    # (an --userns=auto block is never another's)
    maps = remap.container_maps(d.cfg.remap, host, config.get("Labels") or {}, [lc.record.userns for lc in d.live.everything()])
    if not config["Hostname"]:
        config["Hostname"] = cid[:12]
    entry = list(config["Entrypoint"] or []) + list(config["Cmd"] or [])
    cdir = d.container_dir(cid)
    c = Container(
        id=cid, name=name, created=now_rfc3339(), image=body["Image"], image_id=image_id,
        path=entry[0], args=entry[1:], config=config, host_config=host, driver=d.storage_driver, dir=str(cdir),
        networks=networks, userns=maps,
    )
    lc = d.live.reserve(c)  # the name is taken from here on, though nothing lists it yet
    if name in d.freeing_names:
        await d.name_freed(name)  # a --rm container's of that name, its record still going
    # Order matters for crash safety: the container dir first (a leftover dir without a record
    # is cleaned at start-up), then the rw layer, then the record in one transaction.
    try:
        if plan:
            await asyncio.to_thread(_write_files_and_layer, d, cdir, config["Hostname"], cid, image_id)
            crash_point("create.after-rw")
            c.mounts = volumes.with_inherited(await volumes.make_mounts(d, cid, plan), inherited)
            await d.save(c, new=True)
        else:  # no volume to make: the record goes in the same worker thread (one hop, not two)
            c.mounts = volumes.with_inherited([], inherited)
            await asyncio.to_thread(_write_all, d, cdir, c, image_id)
            d.stored(c)
    except BaseException:
        lc.claims.clear()
        await volumes.remove_anonymous(d, c)
        await asyncio.to_thread(d.graph.remove_rw, cid)
        await asyncio.to_thread(remove_tree, cdir)
        raise
    finally:
        lc.claims.clear()
        d.live.discard(cid)  # a create that failed never existed (a stored one stays)
    d.publish(c, "create")
    mark("d:create-done")
    return {"Id": cid, "Warnings": warnings}


def matches_filter(
    c: Container, key: str, values: list[str], d: Daemon, ancestors: set[str] | None = None
) -> bool:
    """Whether ``c`` passes ``ps``'s filter ``key``; an ``ancestor`` filter needs the image ids
    its values name (:func:`ancestor_ids`, a graph lookup made off the loop)."""
    if key == "status":
        return c.state.status in values
    if key == "name":
        return any(_name_pattern(v).search(c.name) for v in values)
    if key == "id":
        return any(c.id.startswith(v) for v in values)
    if key in ("label", "label!"):
        labels = c.labels()
        hit = all((labels.get(v.split("=", 1)[0]) == v.split("=", 1)[1]) if "=" in v else v in labels for v in values)
        return hit if key == "label" else not hit
    if key == "until":  # Unix seconds, RFC 3339 or a duration ago, as dockerd's prune takes it
        from berth.graph.pruning import parse_until

        return all(parse_rfc3339(c.created) * 1e9 < parse_until(v) for v in values)
    if key == "exited":
        return c.state.status == "exited" and str(c.state.exit_code) in values
    if key == "ancestor":
        return c.image_id in (ancestors or set()) or c.image in values
    if key in ("before", "since"):
        try:
            ref = d.find(values[0])
        except NotFound:
            return False
        rt, ct = parse_rfc3339(ref.created), parse_rfc3339(c.created)
        return ct < rt if key == "before" else ct > rt
    if key == "network":
        return (c.host_config.get("NetworkMode") or "default").replace("default", "bridge") in values
    if key == "volume":  # a volume name or a mount's destination, as dockerd
        return any(m.get("Name") in values or m["Destination"] in values for m in c.mounts)
    if key == "is-task":  # no container is a swarm task here
        return all(v == "false" for v in values)
    if key == "isolation":  # Linux has one isolation: "default"
        return all(v == "default" for v in values)
    if key == "health":
        from berth.daemon.health import status_of

        return status_of(c) in values
    if key in ("publish", "expose"):
        # dockerd compares ps's Ports: publish with the host port, expose with the container's
        wanted = netsettings.port_filter(key, values)
        field = "PublicPort" if key == "publish" else "PrivatePort"
        return any((p.get(field), p["Type"]) in wanted for p in netsettings.summary_ports(c, d.network))
    raise InvalidParameter(f"Invalid filter '{key}'")  # dockerd's text



def ancestor_ids(d: Daemon, values: list[str]) -> set[str]:
    """The image ids an ``ancestor`` filter names (in a worker thread: graph lookups)."""
    ids = set()
    for v in values:
        try:
            ids.add(d.graph.resolve(v))
        except NotFound:
            continue
    return ids


def _name_pattern(value: str) -> re.Pattern[str]:
    try:
        return re.compile(value.lstrip("/"))
    except re.error as exc:
        raise InvalidParameter(f"invalid filter 'name={value}': error parsing regexp: {exc}") from None


@handlers.on(jobs.ContainerList)
async def list_(d: Daemon, req: jobs.ContainerList, job: Job) -> JSONList:
    filters = req.filters
    limit = req.limit or -1
    show_all = req.all or limit > 0 or "status" in filters or "exited" in filters
    from berth.daemon.health import STATUSES

    for value in filters.get("health") or ():
        if value not in STATUSES:
            raise InvalidParameter(f"Unrecognised filter value for health: {value}")
    ancestors = await asyncio.to_thread(ancestor_ids, d, filters["ancestor"]) if filters.get("ancestor") else None
    items = sorted(d.live.records(), key=lambda c: c.created, reverse=True)
    out = []
    for c in items:
        if not show_all and not c.state.running and c.state.status != "restarting":
            continue
        if not all(matches_filter(c, k, v, d, ancestors) for k, v in filters.items()):
            continue
        row = c.summary(c.image)
        row["Ports"] = netsettings.summary_ports(c, d.network)
        row["NetworkSettings"] = {"Networks": netsettings.networks_view(c, d.network)}
        if req.size:
            row["SizeRw"] = await asyncio.to_thread(d.graph.rw_size, c.id)
            row["SizeRootFs"] = row["SizeRw"] + (await asyncio.to_thread(d.graph.inspect, c.image_id)).get("Size", 0)
        out.append(row)
        if 0 < limit <= len(out):
            break
    return out


@handlers.on(jobs.ContainerInspect)
async def inspect(d: Daemon, req: jobs.ContainerInspect, job: Job) -> JSONObject:
    c = d.find(req.id)
    data = c.inspect()
    data["NetworkSettings"] = netsettings.network_settings(c, d.network)
    data["GraphDriver"]["Data"] = await asyncio.to_thread(d.graph.rw_metadata, c.id)
    if req.size:
        data["SizeRw"] = await asyncio.to_thread(d.graph.rw_size, c.id)
    return data


@handlers.on(jobs.ContainerRename)
async def rename(d: Daemon, req: jobs.ContainerRename, job: Job) -> None:
    c = d.find(req.id)
    new = req.name
    if not new:
        raise InvalidParameter("Neither old nor new names may be empty")
    new = createconfig.validate_name(new)
    if new == c.name:
        raise InvalidParameter("Renaming a container with the same name as its current name")
    for other in d.live.records():
        if other.name == new:
            raise _conflict(new, other.id)
    old = c.name
    c.name = new
    await d.name_freed(new)  # a --rm container's of that name, its record still going
    await d.save(c)
    d.publish(c, "rename", {"oldName": "/" + old})


async def remove_container(d: Daemon, c: Container, force: bool, remove_volumes: bool = False,
                           files_after: bool = False) -> None:
    """Stop (with ``force``), then delete the container's files, then its record.

    Files go first: they are what frees space on a full disk, where the record's deletion
    (a database write) could not happen before; a daemon killed in between finds a record
    without files at start-up and finishes the removal. A removal that fails leaves the
    container ``dead`` (as dockerd does), and ``rm`` may be tried again.

    ``files_after`` (a ``--rm`` container's own removal at its exit, which ``docker run --rm``
    waits for): the container leaves the API at once (its name is free, ``wait`` answers); its
    record, then the layer beside the monitor's leftovers, then the files are deleted after, in
    the background, the container's directory last. A daemon killed before the record is deleted
    finds a ``--rm`` container "running" without a monitor at start-up and removes it (as for a
    kill before its exit settled); killed after, a directory without a record, whose leftovers
    it deletes (as for a create cut short). A create or rename that takes the name waits for
    the record's deletion (``Daemon.name_freed``: the store's names are unique); an image
    removal and the shutdown wait for all of it (``Daemon.removed_files``), since the layer
    holds the image's. The database write needs no room the files would free: on a full disk
    the reserve is released for it, as for any removal."""
    if c.state.status == "restarting":
        if not force:
            raise Conflict(
                f"You cannot remove a restarting container {c.id}. Stop the container before attempting "
                "removal or force remove"
            )
        from berth.daemon.restarts import stay_down

        await stay_down(d, c, by_hand=False)
    if c.state.running:
        if not force:
            raise Conflict(
                f"You cannot remove a running container {c.id}. Stop the container before attempting "
                "removal or force remove"
            )
        from berth.daemon.lifecycle import stop_container

        try:
            await stop_container(d, c, 0, "KILL", event=False)
        except NotModified:
            pass  # it exited (and was settled) while the stop began: nothing left to stop
    lc = d.live.any(c.id)
    while lc is not None and lc.removal is not None:
        await asyncio.shield(lc.removal)  # the removal under way (--rm after the kill) decides
    if lc is None or not lc.visible:
        return  # removed meanwhile
    if c.state.running:  # started again while we waited for the stop
        raise Conflict(f"cannot remove container {c.id}: it was started again")
    lc.begin_removal()
    record: asyncio.Future[None] | None = None
    if files_after:
        deleting = asyncio.ensure_future(_delete_record(d, c.id))
        d.freeing_names[c.name] = deleting
        deleting.add_done_callback(functools.partial(_name_freed, d, c.name))
        record = deleting
    else:
        try:
            await d.driver.cleanup(c.id)
            mark("d:rm-cleanup")
            await d.with_room(_remove_stored, d, c)
            mark("d:rm-record")
            crash_point("remove.after-record")
        except BaseException as exc:
            lc.end_removal(failed=True)
            if isinstance(exc, OSError | sqlite3.Error):
                raise translate("container.remove", exc, d.store.path) from exc
            raise
    lc.phase = Phase.GONE  # nothing finds it any more, nor counts it as a volume's user
    lc.end_removal(failed=False)
    d.publish(c, "destroy")
    if not files_after and not d.reserve.held():
        await asyncio.to_thread(d.reserve.take)  # back once the removals made room
    if remove_volumes:
        await volumes.remove_anonymous(d, c)
    d.live.remove(c.id)  # health check, pending restart, execs, session, waiters: all of it
    mark("d:removed")
    if record is not None:
        d.remove_later(_remove_files(d, c, record), f"delete the files of removed container {c.id[:12]}")


async def _delete_record(d: Daemon, cid: str) -> None:
    await record_delete_pause()
    await d.with_room(d.store.delete, cid)


def _name_freed(d: Daemon, name: str, record: asyncio.Future[None]) -> None:
    """The record of a removed container is deleted (or failed to be): its name is the store's
    to give again."""
    if d.freeing_names.get(name) is record:
        del d.freeing_names[name]


async def _remove_files(d: Daemon, c: Container, record: asyncio.Future[None]) -> None:
    """After a ``files_after`` removal: the record (under way), then the monitor's leftovers,
    the layer, the files."""
    try:
        await record
    except (BerthError, OSError, sqlite3.Error) as exc:
        # the container is gone from the API all the same; its record, "running" without a
        # monitor, is removed at the next start-up (a create of its name meets the store's
        # refusal until then)
        log.error("remove container %s from the store: %s", c.id[:12], exc)
    mark("d:rm-record")
    crash_point("remove.after-record")
    # the layer goes while the monitor finishes its own teardown (which the cleanup waits for:
    # the rootfs was mounted in the init's mount namespace only, and the monitor lets go of that
    # as soon as it reported the exit); the container's directory goes last, after both (a
    # daemon killed before finds it at start-up, and with it what is left)
    cleanup = asyncio.ensure_future(d.driver.cleanup(c.id))
    try:
        await asyncio.to_thread(_remove_layer, d, c)
    finally:
        await cleanup
    mark("d:rm-cleanup")
    await asyncio.to_thread(_remove_dir, c)
    if not d.reserve.held():
        await asyncio.to_thread(d.reserve.take)  # back once the removals made room


def _remove_stored(d: Daemon, c: Container) -> None:
    """In one worker thread (each hop costs the loop a wake-up): the layer's files, then its
    record, then the container's files, then its record. Each step can be done again (a retry
    on a full disk, a removal finished at start-up)."""
    _remove_layer(d, c)
    _remove_dir(c)
    d.store.delete(c.id)


def _remove_layer(d: Daemon, c: Container) -> None:
    d.graph.remove_rw(c.id)
    mark("d:rm-layer")
    crash_point("remove.after-layer")


def _remove_dir(c: Container) -> None:
    remove_tree(c.dir)  # never through a mount (one propagated into the data root)
    mark("d:rm-files")
    crash_point("remove.after-files")


@handlers.on(jobs.ContainerRemove)
async def remove(d: Daemon, req: jobs.ContainerRemove, job: Job) -> None:
    await remove_container(d, d.find(req.id), req.force, req.volumes)


@handlers.on(jobs.ContainerWait)
async def wait(d: Daemon, req: jobs.ContainerWait, job: Job) -> None:
    """Headers go out at once (the CLI starts the container only then); the body at the event."""
    c = d.find(req.id)
    condition = req.condition
    out = job.sink
    if condition == "not-running" and not c.state.running and c.state.status != "restarting":
        await out.write(json.dumps({"Error": None, "StatusCode": c.state.exit_code}).encode() + b"\n")
        return
    lc = d.live.find(c.id)
    fut = lc.wait_for(condition)
    await out.write(b"")
    try:
        code = await fut
    finally:
        lc.forget_waiter(fut)
    mark("d:waited")
    await out.write(json.dumps({"Error": None, "StatusCode": code}).encode() + b"\n")


@handlers.on(jobs.ContainerTop)
async def top(d: Daemon, req: jobs.ContainerTop, job: Job) -> JSONObject:
    from berth.daemon.top import run_ps

    c = d.find(req.id)
    if not c.state.running:
        raise Conflict(f"Container {c.id} is not running")
    pids = await d.driver.pids(c.id) if hasattr(d.driver, "pids") else [c.state.pid]
    result = await run_ps(req.ps_args, set(pids))
    d.publish(c, "top")
    return result


