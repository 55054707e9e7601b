"""Downloading a blob into a file that a reader may follow while it grows.

The model: :func:`fetch_blob` writes the blob into ``path`` (resuming what an interrupted pull
left there with ``Range: bytes=N-``), hashing it as it arrives, and deletes the file if the
digest does not match. An :class:`Arrival` tells a reader in another thread how far the file
is written, so a layer can be unpacked while it downloads; the reader sees the end of the blob
only once the whole blob is there *and* its digest matched, and an error otherwise, so nothing
unverified is ever taken for a whole layer (and the graph checks the unpacked bytes against the
config's diff id besides)::

    arrival = Arrival(path)
    await fetch_blob(client, repo, digest, path, size, arrival=arrival)   # on the event loop
    with arrival.reader(cancel) as f: f.read(1 << 20)                      # in a worker thread
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from pathlib import Path

import aiohttp

from berth.errors import InvalidParameter, SystemFailure
from berth.registry.client import RegistryClient
from berth.registry.digest import Digest, Hasher

CHUNK = 1 << 20  # bytes gathered from the socket before one write (in a worker thread)
MAX_PIECES = 512  # ... or pieces (one writev takes at most IOV_MAX, 1024)
WAIT = 0.2  # seconds a reader waits between two looks at the cancel flag


class Arrival:
    """How much of a blob file is written; whether the blob is whole and verified, or failed."""

    def __init__(self, path: Path, what: str) -> None:
        self.path, self.what = path, what
        self._cond = threading.Condition()
        self._opened = False  # the file's bytes from 0 to ``_written`` are the blob's
        self._written = 0
        self._verified = False
        self._error: BaseException | None = None

    def opened(self, have: int) -> None:
        """The file now holds the blob's first ``have`` bytes (a resumed prefix, or none)."""
        with self._cond:
            self._opened, self._written = True, have
            self._cond.notify_all()

    def wrote(self, total: int) -> None:
        with self._cond:
            self._written = total
            self._cond.notify_all()

    def verified(self) -> None:
        with self._cond:
            self._verified = True
            self._cond.notify_all()

    def failed(self, exc: BaseException) -> None:
        with self._cond:
            if not self._verified:
                self._error = exc
            self._cond.notify_all()

    @property
    def done(self) -> bool:
        return self._verified

    def available(self, pos: int, cancel: threading.Event) -> int:
        """Bytes readable from ``pos`` on (waiting for some); 0 at the verified end."""
        with self._cond:
            while True:
                if self._error is not None:
                    raise SystemFailure(f"{self.what}: the download failed: {self._error}")
                if self._opened and self._written > pos:
                    return self._written - pos
                if self._verified:
                    return 0
                if cancel.is_set():
                    raise SystemFailure(f"{self.what}: pull cancelled")
                self._cond.wait(WAIT)

    def settled(self, cancel: threading.Event) -> None:
        """Wait until the download is verified or failed; raise its failure."""
        with self._cond:
            while self._error is None and not self._verified:
                if cancel.is_set():
                    raise SystemFailure(f"{self.what}: pull cancelled")
                self._cond.wait(WAIT)
            if self._error is not None:
                raise SystemFailure(f"{self.what}: the download failed: {self._error}")

    def reader(self, cancel: threading.Event) -> Follower:
        return Follower(self, cancel)


class Follower:
    """A read-only file over an :class:`Arrival`'s blob: reads block until bytes arrive."""

    def __init__(self, arrival: Arrival, cancel: threading.Event) -> None:
        self.arrival, self.cancel = arrival, cancel
        self._fd: int | None = None
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        avail = self.arrival.available(self._pos, self.cancel)
        if not avail:
            return b""
        if self._fd is None:  # opened only now: a truncating restart of the download is over
            try:
                self._fd = os.open(self.arrival.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                # the download deleted a blob that failed its digest before it reported the failure
                self.arrival.settled(self.cancel)
                raise SystemFailure(f"{self.arrival.what}: the downloaded file is gone") from None
        data = os.pread(self._fd, avail if size is None or size < 0 else min(size, avail), self._pos)
        if not data:
            raise SystemFailure(f"{self.arrival.what}: the file shrank while it was read")
        self._pos += len(data)
        return data

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def fetch_blob(client: RegistryClient, repo: str, digest: Digest, path: Path, size: int,
                     on_bytes: Callable[[int], None] | None = None, arrival: Arrival | None = None) -> None:
    """Download ``digest`` into ``path`` (resuming what is there); verify it or delete it.
    ``arrival`` (if given) follows the file; the caller reports success or failure to it."""
    hasher = digest.hasher()
    offset = 0
    if path.exists():
        offset = await asyncio.to_thread(_hash_existing, path, hasher)
        if size and offset > size:
            path.unlink()
            hasher, offset = digest.hasher(), 0
    if size and offset == size:
        if Digest.of(hasher) == digest:
            if arrival is not None:
                arrival.opened(size)
            return
        path.unlink()
        hasher, offset = digest.hasher(), 0
    async with client.blob(repo, digest, offset) as resp:
        if offset and resp.status != 206:
            hasher, offset = digest.hasher(), 0  # the registry sent the whole blob
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if offset else os.O_TRUNC) | os.O_CLOEXEC, 0o600)
        if arrival is not None:
            arrival.opened(offset)
        got = offset
        chunks: list[bytes] = []
        pending = 0
        try:
            while True:
                try:
                    chunk = await resp.content.readany()
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    raise SystemFailure(f"blob {digest}: the download broke after {got + pending} bytes: "
                                        f"{exc or type(exc).__name__}") from None
                if chunk:
                    chunks.append(chunk)
                    pending += len(chunk)
                if pending >= CHUNK or len(chunks) >= MAX_PIECES or (not chunk and pending):
                    if size and got + pending > size:
                        raise InvalidParameter(f"blob {digest} is larger than the {size} bytes its manifest says")
                    data, chunks, pending = chunks, [], 0
                    got += await asyncio.to_thread(_write_hash, fd, hasher, data)
                    if arrival is not None:
                        arrival.wrote(got)
                    if on_bytes is not None:
                        on_bytes(got)
                if not chunk:
                    break
        except SystemFailure:
            if chunks and not (size and got + pending > size):
                # what arrived before the break is a valid prefix: keep it for the next pull to resume
                await asyncio.to_thread(_write_hash, fd, hasher, chunks)
            raise
        finally:
            os.close(fd)
    if size and got != size:
        raise SystemFailure(f"blob {digest}: unexpected EOF after {got} of {size} bytes")
    if Digest.of(hasher) != digest:
        path.unlink(missing_ok=True)
        raise InvalidParameter(f"filesystem layer verification failed for digest {digest}")


def _hash_existing(path: Path, hasher: Hasher) -> int:
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            hasher.update(chunk)
            n += len(chunk)
    return n


def _write_hash(fd: int, hasher: Hasher, chunks: list[bytes]) -> int:
    """Append ``chunks`` to ``fd`` (one writev where the kernel takes it all), hash them; the byte count."""
    total = sum(len(c) for c in chunks)
    done = os.writev(fd, chunks)
    if done < total:  # a short write: the rest one piece at a time
        view = memoryview(b"".join(chunks))[done:]
        while view:
            view = view[os.write(fd, view):]
    for chunk in chunks:
        hasher.update(chunk)
    return total
