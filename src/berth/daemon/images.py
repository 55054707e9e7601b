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
from typing import TYPE_CHECKING, Any

from berth.engine import Job
from berth.errors import Conflict

if TYPE_CHECKING:
    from berth.daemon.daemon import Daemon


async def import_(d: Daemon, job: Job) -> None:
    assert job.stdin is not None and job.stdout is not None
    fd, path = tempfile.mkstemp(prefix="import-", suffix=".tar", dir=d.cfg.data_root / "tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            while True:
                chunk = await job.stdin.read()
                if not chunk:
                    break
                f.write(chunk)
        image_id = await asyncio.to_thread(
            d.graph.import_tar, path, job.args.get("repo") or None, list(job.args.get("changes") or []),
            job.args.get("message") or "",
        )
    finally:
        os.unlink(path)
    d.engine.events.publish("image", "import", image_id, {"name": image_id})
    if job.args.get("repo"):
        d.engine.events.publish("image", "tag", image_id, {"name": job.args["repo"]})
    await job.stdout.write(json.dumps({"status": image_id}).encode() + b"\r\n")


def _users(d: Daemon):  # type: ignore[no-untyped-def]
    def users(image_id: str) -> list[str]:
        return [c.id for c in d.containers.values() if c.image_id == image_id]

    return users


async def list_(d: Daemon, job: Job) -> list[dict[str, Any]]:
    images = await asyncio.to_thread(d.graph.list, bool(job.args.get("all")), job.args.get("filters") or {})
    version = job.args.get("api_version") or (1, 45)
    counts: dict[str, int] = {}
    for c in d.containers.values():
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


async def inspect(d: Daemon, job: Job) -> dict[str, Any]:
    data = await asyncio.to_thread(d.graph.inspect, job.args["name"])
    version = job.args.get("api_version") or (1, 45)
    if version >= (1, 44):
        data.pop("VirtualSize", None)
    if version >= (1, 45):
        data.pop("Container", None)
        data.pop("ContainerConfig", None)
    return data


async def history(d: Daemon, job: Job) -> list[dict[str, Any]]:
    return await asyncio.to_thread(d.graph.history, job.args["name"])


async def tag(d: Daemon, job: Job) -> None:
    await asyncio.to_thread(d.graph.tag, job.args["name"], job.args["repo"], job.args.get("tag") or "")
    image_id = await asyncio.to_thread(d.graph.resolve, job.args["name"])
    repo = job.args["repo"] + ":" + (job.args.get("tag") or "latest")
    d.engine.events.publish("image", "tag", image_id, {"name": repo})


async def remove(d: Daemon, job: Job) -> list[dict[str, str]]:
    if job.args.get("force"):
        # Docker refuses even -f while a *running* container uses the image.
        image_id = await asyncio.to_thread(d.graph.resolve, job.args["name"])
        for c in d.containers.values():
            if c.image_id == image_id and c.state.running:
                raise Conflict(
                    f"conflict: unable to delete {image_id.removeprefix('sha256:')[:12]} (cannot be forced) - "
                    f"image is being used by running container {c.id[:12]}"
                )
    result = await asyncio.to_thread(
        d.graph.remove, job.args["name"], bool(job.args.get("force")), bool(job.args.get("noprune")), _users(d)
    )
    for item in result:
        for action, ident in item.items():
            d.engine.events.publish("image", action.lower().replace("untagged", "untag").replace("deleted", "delete"), ident, {"name": ident})
    return result  # type: ignore[no-any-return]


HANDLERS = {
    "image.import": import_,
    "image.list": list_,
    "image.inspect": inspect,
    "image.history": history,
    "image.tag": tag,
    "image.remove": remove,
}
