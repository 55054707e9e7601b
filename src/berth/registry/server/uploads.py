"""Blob upload sessions: bytes appended in order, hashed as they arrive, verified at the end.

A session is a file under ``uploads/``; its length is the offset the next chunk must start at.
The running sha256 lives in memory (recomputed from the file after a restart), so a monolithic
or chunked push hashes each byte once. Chunks are written and hashed off the event loop in
batches of a few MiB (hashlib releases the GIL, so hashing overlaps with receiving)::

    up = await sessions.get(store, upload_id)
    async with up.lock:
        await up.append(request.content)         # returns the new offset
        digest = await up.finish(expected)       # raises DigestMismatch
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field

from aiohttp import StreamReader

from berth.registry.digest import CANONICAL, Digest, Hasher, new_hasher
from berth.registry.server.store import RegistryStore

BATCH = 4 << 20  # bytes collected before one write+hash in a worker thread


class DigestMismatch(Exception):
    pass


class TooLarge(Exception):
    pass


@dataclass
class Upload:
    id: str
    repo: str
    path: str
    offset: int = 0
    hasher: Hasher | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def append(self, body: StreamReader, limit: int | None = None) -> int:
        """Append the request body; the new offset."""
        hasher = await self._hasher()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            buf = bytearray()
            while True:
                chunk = await body.readany()
                if chunk:
                    buf += chunk
                if len(buf) >= BATCH or (not chunk and buf):
                    data, buf = buf, bytearray()
                    if limit is not None and self.offset + len(data) > limit:
                        raise TooLarge(f"blob larger than the limit of {limit} bytes")
                    await asyncio.to_thread(_write_hash, fd, hasher, data)
                    self.offset += len(data)
                if not chunk:
                    break
        finally:
            os.close(fd)
        return self.offset

    async def finish(self, expected: Digest) -> None:
        """Check the whole content against ``expected`` (DigestMismatch when it differs)."""
        if expected.algorithm == CANONICAL:
            got = Digest.of(await self._hasher())
        else:
            got = await asyncio.to_thread(_hash_file, self.path, expected.algorithm)
        if got != expected:
            raise DigestMismatch(f"content digest is {got}, not {expected}")

    async def _hasher(self) -> Hasher:
        if self.hasher is None:
            self.hasher = await asyncio.to_thread(_rehash, self.path)
            self.offset = os.stat(self.path).st_size
        return self.hasher


class Sessions:
    """The live upload sessions, by id (a cache over the store's ``uploads`` table)."""

    def __init__(self) -> None:
        self._live: dict[str, Upload] = {}

    async def get(self, store: RegistryStore, upload_id: str, repo: str) -> Upload | None:
        up = self._live.get(upload_id)
        if up is not None:
            return up if up.repo == repo else None
        if not _plausible_id(upload_id):
            return None
        owner = await asyncio.to_thread(store.upload_repo, upload_id)
        if owner != repo:
            return None
        path = str(store.upload_path(upload_id))
        up = Upload(upload_id, repo, path)
        try:
            up.offset = os.stat(path).st_size
        except FileNotFoundError:
            return None
        self._live[upload_id] = up
        return up

    def new(self, upload_id: str, repo: str, path: str) -> Upload:
        up = Upload(upload_id, repo, path, 0, new_hasher(CANONICAL))
        self._live[upload_id] = up
        return up

    def forget(self, upload_id: str) -> None:
        self._live.pop(upload_id, None)


def _plausible_id(upload_id: str) -> bool:
    return 0 < len(upload_id) <= 64 and all(c in "0123456789abcdef-" for c in upload_id)


def _write_hash(fd: int, hasher: Hasher, data: bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    hasher.update(data)


def _rehash(path: str) -> Hasher:
    h = new_hasher(CANONICAL)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h


def _hash_file(path: str, algorithm: str) -> Digest:
    h = new_hasher(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return Digest.of(h)
