"""docker cp: ``HEAD``/``GET``/``PUT /containers/{id}/archive`` as jobs.

Each operation builds the container's file-system view (:mod:`berth.libcontainer.view`: the
root file system with its volumes, binds and network files, nothing else) through the exec
driver, then works from the view's root fd (:mod:`berth.container.files`). It holds the
container's start lock meanwhile, as dockerd holds the container's lock: a start cannot mount
the root file system a second time while a stopped container's view has it mounted, and a
running container's exit is settled once the copy is done.

dockerd's texts and statuses: a missing path is a 404 ``Could not find the file P in container
C``; ``PUT`` to a non-directory is a 500 ``extraction point is not a directory``; into a read-only
volume ``mounted volume is marked read-only``, elsewhere in a ``--read-only`` container
``container rootfs is marked read-only``. Events: ``archive-path`` (GET), ``extract-to-dir`` (PUT).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import errno
import json
import os
import stat
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from berth.container.files.pack import pack
from berth.container.files.resolve import Resource, clean_path, open_resolved, resolve_resource, scoped_path
from berth.container.files.unpack import UnpackOptions, unpack
from berth.container.record import Container
from berth.daemon import remap
from berth.daemon.handlers import HandlerTable
from berth.daemon.lifecycle import start_lock
from berth.daemon.mountspec import oci_mounts
from berth.daemon.volumes import publish_mounts
from berth.engine import ByteSource, Job
from berth.errors import BerthError, InvalidParameter, NotFound, SystemFailure
from berth.jobs import archive as jobs
from berth.jobs.results import JSONObject
from berth.libcontainer import record

if TYPE_CHECKING:
    from berth.daemon.daemon import Daemon

NETWORK_FILES = ("/etc/resolv.conf", "/etc/hostname", "/etc/hosts")

handlers = HandlerTable()


def _path_arg(path: str) -> str:
    if not path:
        raise InvalidParameter("bad parameter: pathcannot be empty")  # sic: dockerd's text
    return str(path)


async def _view_request(d: Daemon, c: Container) -> dict[str, Any]:
    if c.state.running and c.state.pid:
        keep = [m["Destination"] for m in c.mounts if m.get("Type") != "tmpfs"]
        return {"pid": c.state.pid, "keep": keep + list(NETWORK_FILES)}
    from berth.daemon.volumes import subpath_sources

    rootfs = Path(c.dir) / "rootfs"
    await asyncio.to_thread(rootfs.mkdir, exist_ok=True)
    plan = await asyncio.to_thread(d.graph.rootfs_mounts, c.id, str(rootfs))
    try:
        sources = await asyncio.to_thread(subpath_sources, c)
    except BerthError:
        sources = {}  # a volume subpath that no longer resolves: the whole volume is shown
    # volumes as the container sees them (id-mapped for maps of its own): what cp writes with
    # the container's host ids lands in the daemon-wide ids volumes keep on disk
    volume_idmap = remap.container_volume_maps(d, c)
    mounts = list(oci_mounts([m for m in c.mounts if m.get("Type") != "tmpfs"], None, sources, volume_idmap))
    host_network = (c.host_config.get("NetworkMode") or "default") == "host"
    for dest in NETWORK_FILES:
        if host_network and dest != "/etc/resolv.conf":
            continue
        source = Path(c.dir) / dest.rsplit("/", 1)[1]
        if source.exists():
            mounts.append({"destination": dest, "type": "bind", "source": str(source), "options": ["rbind", "rprivate"]})
    return {
        "pid": 0,
        "root": str(rootfs),
        "rootfs_mounts": [record.asdict(m) for m in plan],
        "mounts": mounts,
        "readonly_root": bool(c.host_config.get("ReadonlyRootfs")),
    }


@contextlib.asynccontextmanager
async def container_view(d: Daemon, c: Container) -> AsyncIterator[int]:
    """The view's root fd, for the time of one copy."""
    async with start_lock(d, c.id):
        if c.id not in d.live:
            raise NotFound(f"No such container: {c.id}")
        view = await d.driver.view(await _view_request(d, c))
        publish_mounts(d, c, "mount")  # dockerd mounts the volumes for a copy, with these events
        try:
            yield view.root_fd
        finally:
            view.close()
            publish_mounts(d, c, "unmount")


def _stat(root_fd: int, path: str, ref: str) -> Resource:
    try:
        return resolve_resource(root_fd, path)
    except FileNotFoundError:
        raise NotFound(f"Could not find the file {path} in container {ref}") from None
    except OSError as exc:
        raise SystemFailure(f"lstat {path}: {(exc.strerror or str(exc)).lower()}") from exc


@handlers.on(jobs.ContainerArchiveStat)
async def stat_path(d: Daemon, req: jobs.ContainerArchiveStat, job: Job) -> JSONObject:
    path = _path_arg(req.path)
    c = d.find(req.id)
    async with container_view(d, c) as root_fd:
        res = await asyncio.to_thread(_stat, root_fd, path, req.id)
    return res.to_docker()


@handlers.on(jobs.ContainerArchiveGet)
async def archive(d: Daemon, req: jobs.ContainerArchiveGet, job: Job) -> None:
    """GET: the path's stat in a header, then its tar, streamed as it is read."""
    path = _path_arg(req.path)
    c = d.find(req.id)
    out = job.sink
    async with container_view(d, c) as root_fd:
        res = await asyncio.to_thread(_stat, root_fd, path, req.id)
        chunks: Iterator[bytes] = pack(root_fd, res, remap.to_container(c.userns))
        first = True
        while True:
            try:
                chunk = await asyncio.to_thread(next, chunks, None)
            except OSError as exc:
                if first:
                    raise SystemFailure(f"archive {path}: {(exc.strerror or str(exc)).lower()}") from exc
                raise  # the response has begun: the connection is cut, the tar is short
            if first:
                await out.start("application/x-tar", {"X-Docker-Container-Path-Stat": encode_stat(res)})
                first = False
            if chunk is None:
                break
            await out.write(chunk)
        d.publish(c, "archive-path")


def encode_stat(res: Resource) -> str:
    return base64.b64encode(json.dumps(res.to_docker(), separators=(",", ":")).encode()).decode()


def _mount_of(c: Container, path: str) -> dict[str, Any] | None:
    """The deepest volume or bind holding ``path`` (a resolved container path), if any."""
    best: dict[str, Any] | None = None
    for m in c.mounts:
        if m.get("Type") == "tmpfs":
            continue
        dest = str(m["Destination"]).rstrip("/") or "/"
        if path == dest or path.startswith(dest.rstrip("/") + "/"):
            if best is None or len(dest) > len(str(best["Destination"])):
                best = m
    return best


@handlers.on(jobs.ContainerArchivePut)
async def extract(d: Daemon, req: jobs.ContainerArchivePut, job: Job) -> None:
    """PUT: extract the request's tar at a directory of the container."""
    path = _path_arg(req.path)
    c = d.find(req.id)
    source = job.source
    async with container_view(d, c) as root_fd:
        resolved = await asyncio.to_thread(_resolve_dest, root_fd, path, req.id)
        mount = _mount_of(c, resolved)
        if mount is not None and not mount.get("RW", True):
            raise SystemFailure("mounted volume is marked read-only")
        if mount is None and c.host_config.get("ReadonlyRootfs"):
            raise SystemFailure("container rootfs is marked read-only")
        chown = None
        if req.copy_uid_gid and c.config.get("User"):
            from berth.daemon.users import resolve_user

            try:
                uid, gid, _ = await asyncio.to_thread(resolve_user, d.graph, c, c.config["User"])
            except BerthError as exc:
                raise SystemFailure(exc.message) from exc
            chown = (uid, gid)
        options = UnpackOptions(req.no_overwrite_dir_non_dir, chown, remap.to_host_ids(c.userns))
        reader = BlockingBody(source, asyncio.get_running_loop())
        pump = asyncio.ensure_future(reader.pump())
        try:
            await asyncio.to_thread(unpack, root_fd, resolved, reader, options)
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)  # its failure, if any, was the read's
        d.publish(c, "extract-to-dir")


def _resolve_dest(root_fd: int, path: str, ref: str) -> str:
    """The extraction directory with every symlink followed inside the root (the last one too:
    a link to a directory is extracted into)."""
    resolved = scoped_path(root_fd, clean_path(path))
    try:
        fd = open_resolved(root_fd, resolved, os.O_PATH)
    except FileNotFoundError:
        raise NotFound(f"Could not find the file {path} in container {ref}") from None
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            raise NotFound(f"Could not find the file {path} in container {ref}") from None
        raise SystemFailure(f"lstat {path}: {(exc.strerror or str(exc)).lower()}") from exc
    try:
        is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
    finally:
        os.close(fd)
    if not is_dir:
        raise SystemFailure("extraction point is not a directory")
    return resolved


class BlockingBody:
    """The request body for the worker thread that unpacks: a task on the event loop reads it
    ahead into a buffer (at most :data:`AHEAD` bytes: back-pressure on the client), and
    ``read()`` hands the buffered chunks over without a round trip to the loop per chunk."""

    AHEAD = 8 << 20

    def __init__(self, source: ByteSource, loop: asyncio.AbstractEventLoop) -> None:
        self.source, self.loop = source, loop
        self.cond = threading.Condition()
        self.chunks: collections.deque[bytes] = collections.deque()
        self.size = 0
        self.done = False
        self.failure: BaseException | None = None
        self.room = asyncio.Event()
        self.room.set()

    async def pump(self) -> None:
        try:
            while True:
                await self.room.wait()
                data = await self.source.read()
                with self.cond:
                    if not data:
                        self.done = True
                    else:
                        self.chunks.append(data)
                        self.size += len(data)
                        if self.size > self.AHEAD:
                            self.room.clear()
                    self.cond.notify_all()
                if not data:
                    return
        except BaseException as exc:
            with self.cond:
                self.failure, self.done = exc, True
                self.cond.notify_all()
            raise

    def read(self, size: int = -1) -> bytes:
        with self.cond:
            while not self.chunks and not self.done:
                self.cond.wait()
            if not self.chunks:
                if self.failure is not None and not isinstance(self.failure, asyncio.CancelledError):
                    raise OSError(f"read the request body: {self.failure}")
                return b""
            out = [self.chunks.popleft()]
            total = len(out[0])
            while self.chunks and total < (1 << 20):
                out.append(self.chunks.popleft())
                total += len(out[-1])
            self.size -= total
            if self.size <= self.AHEAD // 2 and not self.room.is_set():
                self.loop.call_soon_threadsafe(self.room.set)
        return out[0] if len(out) == 1 else b"".join(out)
