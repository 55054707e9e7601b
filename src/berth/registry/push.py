"""Pushing an image: its layer blobs (each checked with HEAD first), its config, its manifest.

Layers go up concurrently (``max_concurrent``), each as one monolithic upload of the gzip
blob the graph keeps for it (made once, deterministically, and reused by later pushes), unless
the registry has it already (HEAD) or can mount it from another repository the graph knows holds
it (pulled from or pushed to there: ``blob_sources``), as Docker does. The
manifest is Docker's v2 schema 2, put by tag; its digest and size end the push::

    digest, size = await push(client, source, "team/app", "v1", image_id, progress)

``source`` is what the push reads of the local images (:class:`PushSource`: the daemon passes
the graph's :class:`~berth.graph.distribution.Distribution`: image configs, layer blobs, where
a blob came from, the manifest).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from berth.registry import mediatypes as mt
from berth.registry.client import RegistryClient
from berth.registry.digest import Digest
from berth.registry.progress import Progress

# Blobs larger than this go up in chunks of this size (PATCH with Content-Range, then PUT),
# smaller ones in one PUT: one big request cannot be resumed, and registries behind proxies often
# cap request bodies.
CHUNK_SIZE = 64 << 20


class PushBlob(Protocol):
    @property
    def digest(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def path(self) -> Path: ...


class PushSource(Protocol):
    """What a push needs of the local images."""

    def image_config(self, image_id: str) -> dict[str, Any]: ...

    def push_blobs(self, image_id: str) -> Sequence[PushBlob]: ...

    def blob_sources(self, digest: str, registry: str) -> list[str]: ...

    def config_blob(self, image_id: str) -> PushBlob: ...

    def manifest(self, image_id: str) -> bytes: ...

    def add_blob_sources(self, digests: list[str], registry: str, repository: str) -> None:
        """Remember that ``registry``'s ``repository`` holds these blobs (a later push mounts them)."""
        ...


async def push(client: RegistryClient, graph: PushSource, registry: str, repo: str, tag: str, image_id: str,
               progress: Progress, max_concurrent: int = 5, chunk_size: int = CHUNK_SIZE) -> tuple[str, int]:
    config = await asyncio.to_thread(graph.image_config, image_id)
    diff_ids: list[str] = list((config.get("rootfs") or {}).get("diff_ids") or [])
    shorts = [d.split(":", 1)[-1][:12] for d in diff_ids]
    for short in shorts:
        progress.status("Preparing", short, detail=True)
    blobs = await asyncio.to_thread(graph.push_blobs, image_id)
    gate = asyncio.Semaphore(max(1, max_concurrent))

    async def one(short: str, blob: Any) -> None:
        digest = Digest.parse(blob.digest)
        if await client.has_blob(repo, digest):
            progress.status("Layer already exists", short, detail=True)
            return
        sources = await asyncio.to_thread(graph.blob_sources, blob.digest, registry)
        for source in sources:
            if source != repo and await client.mount(repo, digest, source):
                progress.status(f"Mounted from {source}", short, detail=True)
                return
        if gate.locked():
            progress.status("Waiting", short, detail=True)
        async with gate:
            await client.upload(repo, digest, blob.path, blob.size,
                                lambda n: progress.bar("Pushing", short, n, blob.size), chunk_size)
        progress.status("Pushed", short, detail=True)

    await asyncio.gather(*(one(short, blob) for short, blob in zip(shorts, blobs, strict=True)))
    cfg = await asyncio.to_thread(graph.config_blob, image_id)
    cdigest = Digest.parse(cfg.digest)
    if not await client.has_blob(repo, cdigest):
        await client.upload(repo, cdigest, cfg.path, cfg.size)
    body = await asyncio.to_thread(graph.manifest, image_id)
    digest = await client.put_manifest(repo, tag, mt.DOCKER_MANIFEST, body)
    await asyncio.to_thread(graph.add_blob_sources, [cfg.digest, *(b.digest for b in blobs)], registry, repo)
    return str(digest), len(body)
