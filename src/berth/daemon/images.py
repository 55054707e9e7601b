"""Image jobs: import, list, inspect, history, tag, remove (pull and push: ``daemon.registry``).

The graph's API is synchronous (SQLite and file trees); every call runs in a worker thread.
An import reads the whole body into a temporary file under ``<data_root>/tmp`` before the
graph sees it, so a truncated upload is an error with nothing half-written.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from berth.daemon.handlers import HandlerTable
from berth.engine import Job
from berth.jobs import images as jobs
from berth.jobs.results import JSONList, JSONObject

if TYPE_CHECKING:
    from berth.daemon.daemon import Daemon

handlers = HandlerTable()


@handlers.on(jobs.ImageImport)
async def import_(d: Daemon, req: jobs.ImageImport, job: Job) -> None:
    source, out = job.source, job.sink
    fd, path = tempfile.mkstemp(prefix="import-", suffix=".tar", dir=d.cfg.data_root / "tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            while True:
                chunk = await source.read()
                if not chunk:
                    break
                await asyncio.to_thread(f.write, chunk)
        image_id = await asyncio.to_thread(d.graph.import_tar, Path(path), req.repo or None, list(req.changes), req.message)
    finally:
        os.unlink(path)
    d.engine.events.publish("image", "import", image_id, {"name": image_id})
    if req.repo:
        d.engine.events.publish("image", "tag", image_id, {"name": req.repo})
    await out.write(json.dumps({"status": image_id}).encode() + b"\r\n")


def _users(d: Daemon, running: bool = False) -> Callable[[str], list[str]]:
    def users(image_id: str) -> list[str]:
        return [c.id for c in d.live.records() if c.image_id == image_id and (c.state.running or not running)]

    return users


@handlers.on(jobs.ImageList)
async def list_(d: Daemon, req: jobs.ImageList, job: Job) -> JSONList:
    images: JSONList = await asyncio.to_thread(d.graph.list, req.all, req.filters)
    version = req.api_version
    counts: dict[str, int] = {}
    for c in d.live.records():
        counts[c.image_id] = counts.get(c.image_id, 0) + 1
    for img in images:
        if version >= (1, 43):
            if img.get("RepoTags") == ["<none>:<none>"]:
                img["RepoTags"] = []
            if img.get("RepoDigests") == ["<none>@<none>"]:
                img["RepoDigests"] = []
        if version >= (1, 44):
            img.pop("VirtualSize", None)
        img["Containers"] = counts.get(img["Id"], 0)
    return images


@handlers.on(jobs.ImageInspect)
async def inspect(d: Daemon, req: jobs.ImageInspect, job: Job) -> JSONObject:
    data: JSONObject = await asyncio.to_thread(d.graph.inspect, req.name)
    version = req.api_version
    if version >= (1, 44):
        data.pop("VirtualSize", None)
    if version >= (1, 45):
        data.pop("Container", None)
        data.pop("ContainerConfig", None)
    return data


@handlers.on(jobs.ImageHistory)
async def history(d: Daemon, req: jobs.ImageHistory, job: Job) -> JSONList:
    result: JSONList = await asyncio.to_thread(d.graph.history, req.name)
    return result


@handlers.on(jobs.ImageTag)
async def tag(d: Daemon, req: jobs.ImageTag, job: Job) -> None:
    await asyncio.to_thread(d.graph.tag, req.name, req.repo, req.tag)
    image_id = await asyncio.to_thread(d.graph.resolve, req.name)
    repo = req.repo + ":" + (req.tag or "latest")
    labels = ((await asyncio.to_thread(d.graph.inspect, image_id)).get("Config") or {}).get("Labels") or {}
    d.engine.events.publish("image", "tag", image_id, {**labels, "name": repo})


@handlers.on(jobs.ImageRemove)
async def remove(d: Daemon, req: jobs.ImageRemove, job: Job) -> list[dict[str, str]]:
    image_id = await asyncio.to_thread(d.graph.resolve, req.name)
    await d.removed_files()  # a removed container's layer still being deleted holds the image's
    labels = ((await asyncio.to_thread(d.graph.inspect, image_id)).get("Config") or {}).get("Labels") or {}
    images = {i["Id"] for i in await asyncio.to_thread(d.graph.list, True, {})}
    # Docker refuses even -f to delete an image a *running* container uses (a hard conflict);
    # by name, the name goes and the image stays
    result: list[dict[str, str]] = await asyncio.to_thread(d.graph.remove, req.name, req.force, req.noprune, _users(d),
                                                           _users(d, running=True))
    # dockerd's events: an untag per removed name and a delete per removed image (not per
    # layer), named by the image's id, with the image's labels
    for item in result:
        if "Untagged" in item:
            d.engine.events.publish("image", "untag", image_id, {**labels, "name": image_id})
        elif item.get("Deleted") in images:
            d.engine.events.publish("image", "delete", item["Deleted"], {"name": item["Deleted"]})
    return result


