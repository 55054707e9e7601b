"""Jobs that move file trees in and out: diff, export, commit, save, load, prune.

The graph writes archives synchronously into a file object; these jobs let it write to a
temporary file under ``<data_root>/tmp`` in a worker thread and then stream the file, so a
failure midway is an ordinary error response rather than a truncated archive.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO, cast

from berth.daemon import bodypipe, remap
from berth.daemon.handlers import HandlerTable
from berth.engine import Job
from berth.errors import BerthError, Conflict, InvalidParameter
from berth.graph.pruning import parse_until
from berth.graph.reference import familiar_name
from berth.jobs import containers as jobs
from berth.jobs import images
from berth.jobs.results import IdOnly, JSONList, JSONObject

if TYPE_CHECKING:
    from berth.daemon.daemon import Daemon

CHUNK = 256 * 1024
log = logging.getLogger("berth.daemon")

handlers = HandlerTable()


async def _stream_file_from(d: Daemon, job: Job, write: Callable[[BinaryIO], None]) -> None:
    out = job.sink
    fd, path = tempfile.mkstemp(prefix="archive-", suffix=".tar", dir=d.cfg.data_root / "tmp")
    try:
        with os.fdopen(fd, "w+b") as f:
            await asyncio.to_thread(write, f)
            f.seek(0)
            await out.start("application/x-tar")
            while chunk := await asyncio.to_thread(f.read, CHUNK):
                await out.write(chunk)
    finally:
        os.unlink(path)


@handlers.on(jobs.ContainerChanges)
async def changes(d: Daemon, req: jobs.ContainerChanges, job: Job) -> JSONList | None:
    c = d.find(req.id)
    return (await asyncio.to_thread(d.graph.changes, c.id)) or None


@handlers.on(jobs.ContainerExport)
async def export(d: Daemon, req: jobs.ContainerExport, job: Job) -> None:
    c = d.find(req.id)
    await _stream_file_from(d, job, lambda f: d.graph.export(c.id, f, remap.to_container(c.userns)))
    d.publish(c, "export")


@handlers.on(jobs.ImageCommit)
async def commit(d: Daemon, req: jobs.ImageCommit, job: Job) -> IdOnly:
    c = d.find(req.container)
    repo, tag = req.repo, req.tag
    repo_tag = f"{repo}:{tag}" if repo and tag else (repo or None)
    session = d.session(c.id)
    paused_here = False
    if req.pause and c.state.status == "running" and session and session.handle:
        try:
            await session.handle.pause()  # a consistent snapshot, as docker commit does by default
            paused_here = True
            d.publish(c, "pause")
        except Conflict:
            pass  # it exited meanwhile (not yet settled): its files are at rest, nothing to pause
    try:
        image_id = await asyncio.to_thread(
            d.graph.commit, c.id, repo_tag, list(req.changes), req.comment, req.author,
            req.container_config or _container_config(c.config, req.config), req.image_config,
            req.created_by,  # a build step's own config and history
            remap.to_container(c.userns),
        )
        labels = (req.image_config or {}).get("Labels") or c.labels()
        shown = f"{familiar_name(repo)}:{tag or 'latest'}" if repo else ""
        if shown:
            d.engine.events.publish("image", "tag", image_id, {**labels, "name": shown})
        d.publish(c, "commit", {"comment": req.comment, "imageID": image_id, "imageRef": shown})
    finally:
        if paused_here and session and session.handle:
            try:
                await session.handle.resume()
                d.publish(c, "unpause")
            except Conflict:
                pass  # killed while frozen: nothing is left to thaw
    return {"Id": image_id}


def _container_config(config: JSONObject, user: JSONObject | None) -> JSONObject:
    """The config a commit starts from: the container's, with what ``POST /commit``'s body sets
    over it (dockerd's merge: values that are set replace, labels are merged)."""
    if not user:
        return config
    merged = dict(config)
    for key, value in user.items():
        if key == "Labels" and isinstance(value, dict) and value:
            merged["Labels"] = {**(config.get("Labels") or {}), **value}
        elif value not in (None, "", [], {}):
            merged[key] = value
    return merged


@handlers.on(images.ImageSave)
async def save(d: Daemon, req: images.ImageSave, job: Job) -> None:
    names = list(req.names)
    for name in names:
        await asyncio.to_thread(d.graph.resolve, name)  # 404 before any byte is sent
    oci = req.format == "oci"
    await _stream_file_from(d, job, lambda f: d.graph.save(names, f, oci))


@handlers.on(images.ImageLoad)
async def load(d: Daemon, req: images.ImageLoad, job: Job) -> None:
    out = job.sink
    # the archive is read as it arrives (no spooling to a file first)
    lines = await bodypipe.consume(job.source, lambda f: d.graph.load(cast(BinaryIO, f)))
    for line in lines:
        await out.write(json.dumps({"stream": line.rstrip("\n") + "\n"}).encode() + b"\n")


@handlers.on(images.ImagePrune)
async def image_prune(d: Daemon, req: images.ImagePrune, job: Job) -> JSONObject:
    def users(image_id: str) -> list[str]:
        return [c.id for c in d.live.records() if c.image_id == image_id]

    await d.removed_files()  # a removed container's layer still being deleted holds the image's
    result: JSONObject = await asyncio.to_thread(d.graph.prune, req.filters, users)
    d.engine.events.publish("image", "prune", "", {"reclaimed": str(result.get("SpaceReclaimed") or 0)})
    return result


@handlers.on(jobs.ContainerPrune)
async def container_prune(d: Daemon, req: jobs.ContainerPrune, job: Job) -> JSONObject:
    from berth.daemon.containers import matches_filter, remove_container

    filters = dict(req.filters)
    for key in filters:
        if key not in ("label", "label!", "until"):
            raise InvalidParameter(f"Invalid filter '{key}'")  # dockerd's text
    for value in filters.get("until") or ():
        parse_until(value)  # a bad one is a 400 before anything goes
    deleted, reclaimed = [], 0
    for c in d.live.records():
        if c.state.running or c.state.status not in ("created", "exited", "dead"):
            continue
        if not all(matches_filter(c, k, v, d) for k, v in filters.items() if k in ("label", "label!", "until")):
            continue
        try:
            size = await asyncio.to_thread(d.graph.rw_size, c.id)
            await remove_container(d, c, force=False)
        except (BerthError, OSError) as exc:
            log.warning("container prune: %s", exc)  # dockerd too goes on with the others
            continue
        reclaimed += size
        deleted.append(c.id)
    d.engine.events.publish("container", "prune", "", {"reclaimed": str(reclaimed)})
    return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}


