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
from typing import TYPE_CHECKING, Any, BinaryIO

from berth.engine import Job
from berth.errors import BerthError, Conflict

if TYPE_CHECKING:
    from berth.daemon.daemon import Daemon

CHUNK = 256 * 1024
log = logging.getLogger("berth.daemon")


async def _stream_file_from(d: Daemon, job: Job, write: Callable[[BinaryIO], None]) -> None:
    assert job.stdout is not None
    fd, path = tempfile.mkstemp(prefix="archive-", suffix=".tar", dir=d.cfg.data_root / "tmp")
    try:
        with os.fdopen(fd, "w+b") as f:
            await asyncio.to_thread(write, f)
            f.seek(0)
            await job.stdout.start("application/x-tar")  # type: ignore[attr-defined]
            while chunk := await asyncio.to_thread(f.read, CHUNK):
                await job.stdout.write(chunk)
    finally:
        os.unlink(path)


async def _body_to_file(d: Daemon, job: Job) -> str:
    assert job.stdin is not None
    fd, path = tempfile.mkstemp(prefix="upload-", suffix=".tar", dir=d.cfg.data_root / "tmp")
    with os.fdopen(fd, "wb") as f:
        while chunk := await job.stdin.read():
            f.write(chunk)
    return path


async def changes(d: Daemon, job: Job) -> list[dict[str, Any]] | None:
    c = d.find(job.args["id"])
    return (await asyncio.to_thread(d.graph.changes, c.id)) or None


async def export(d: Daemon, job: Job) -> None:
    c = d.find(job.args["id"])
    await _stream_file_from(d, job, lambda f: d.graph.export(c.id, f))
    d.publish(c, "export")


async def commit(d: Daemon, job: Job) -> dict[str, str]:
    c = d.find(job.args["container"])
    repo, tag = job.args.get("repo") or "", job.args.get("tag") or ""
    repo_tag = f"{repo}:{tag}" if repo and tag else (repo or None)
    session = d.sessions.get(c.id)
    paused_here = False
    if job.args.get("pause", True) and c.state.status == "running" and session and session.handle:
        try:
            await session.handle.pause()  # a consistent snapshot, as docker commit does by default
            paused_here = True
        except Conflict:
            pass  # it exited meanwhile (not yet settled): its files are at rest, nothing to pause
    try:
        image_id = await asyncio.to_thread(
            d.graph.commit, c.id, repo_tag, list(job.args.get("changes") or []), job.args.get("comment") or "",
            job.args.get("author") or "", job.args.get("container_config") or c.config,
            job.args.get("config"), job.args.get("created_by"),  # a build step's own config and history line
        )
    finally:
        if paused_here and session and session.handle:
            try:
                await session.handle.resume()
            except Conflict:
                pass  # killed while frozen: nothing is left to thaw
    d.publish(c, "commit")
    return {"Id": image_id}


async def save(d: Daemon, job: Job) -> None:
    names = list(job.args["names"])
    for name in names:
        await asyncio.to_thread(d.graph.resolve, name)  # 404 before any byte is sent
    oci = job.args.get("format") == "oci"
    await _stream_file_from(d, job, lambda f: d.graph.save(names, f, oci))


async def load(d: Daemon, job: Job) -> None:
    assert job.stdout is not None
    path = await _body_to_file(d, job)
    try:
        with open(path, "rb") as f:
            lines = await asyncio.to_thread(d.graph.load, f)
    finally:
        os.unlink(path)
    for line in lines:
        await job.stdout.write(json.dumps({"stream": line.rstrip("\n") + "\n"}).encode() + b"\n")


async def image_prune(d: Daemon, job: Job) -> dict[str, Any]:
    def users(image_id: str) -> list[str]:
        return [c.id for c in d.containers.values() if c.image_id == image_id]

    return await asyncio.to_thread(d.graph.prune, job.args.get("filters") or {}, users)  # type: ignore[no-any-return]


async def container_prune(d: Daemon, job: Job) -> dict[str, Any]:
    from berth.daemon.containers import matches_filter, remove_container

    filters = dict(job.args.get("filters") or {})
    deleted, reclaimed = [], 0
    for c in list(d.containers.values()):
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
    return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}


HANDLERS = {
    "container.changes": changes,
    "container.export": export,
    "container.prune": container_prune,
    "image.commit": commit,
    "image.save": save,
    "image.load": load,
    "image.prune": image_prune,
}
