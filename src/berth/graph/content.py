"""The content store: blobs addressed by their digest, OCI image-layout compatible.

The model: ``<root>/blobs/sha256/<hex>`` holds the bytes whose sha256 is ``<hex>``. A blob is
written to a temp file in the same directory, fsynced and renamed into place, so a reader
never sees a partial blob and a crash leaves only ``.tmp-*`` files, which :meth:`ContentStore.gc`
removes. Digests are verified on write::

    store = ContentStore(Path("/var/lib/berth"))
    digest = store.put(b'{"architecture":"amd64"}')      # 'sha256:...'
    store.get(digest)
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from berth.errors import InvalidParameter, NotFound, SystemFailure

_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")


def digest_of(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(digest: str) -> str:
    """Return the hex part of a well-formed ``sha256:<hex>`` digest or raise InvalidParameter."""
    if not _DIGEST_RE.match(digest):
        raise InvalidParameter(f"invalid digest {digest!r}: want sha256:<64 hex>")
    return digest[len("sha256:") :]


class ContentStore:
    """Blobs under ``<root>/blobs/sha256``; every write is atomic and verified."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "blobs" / "sha256"
        for path in (root / "blobs", self.dir):  # layer tars and configs: root's alone
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            if stat.S_IMODE(os.lstat(path).st_mode) != 0o700:
                os.chmod(path, 0o700)

    def path(self, digest: str) -> Path:
        return self.dir / check_digest(digest)

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def put(self, data: bytes, expected: str | None = None) -> str:
        """Store ``data``; if ``expected`` is given the content must hash to it."""
        digest = digest_of(data)
        if expected is not None and expected != digest:
            raise InvalidParameter(f"write blob {expected}: content digest is {digest}")
        target = self.path(digest)
        if target.exists():
            return digest
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.dir)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.rename(tmp, target)
        except OSError as exc:
            _unlink_quiet(Path(tmp))
            raise SystemFailure(f"write blob {digest}: {exc.strerror or exc}") from exc
        except BaseException:
            _unlink_quiet(Path(tmp))
            raise
        _fsync_dir(self.dir)
        return digest

    @contextmanager
    def ingest(self, hashed_by_caller: bool = False, durable: bool = True) -> Iterator[BlobWriter]:
        """A writer for a blob whose digest is known only at the end; ``commit(digest)`` it,
        or leave the block (by an exception or without committing) and nothing remains.

        ``hashed_by_caller``: the caller hashes the very bytes it writes (a layer's tar, hashed
        for its diff id on the way) and ``commit`` takes its digest as is, so the data is not
        hashed twice. ``durable=False`` skips the fsync: for a layer's tar, whose unpacked files
        are not fsynced either (neither are Docker's), so a sync would buy no durability."""
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.dir)
        writer = BlobWriter(os.fdopen(fd, "wb", buffering=1 << 20), Path(tmp), self, not hashed_by_caller, durable)
        try:
            yield writer
        finally:
            writer.close()

    def adopt(self, fd: int, digest: str) -> None:
        """Make the open file ``fd`` (the caller's own temp file, hashed by the caller to
        ``digest`` and never written again) the blob ``digest``: a hard link to that very file
        (whatever its name names by now) moved into place, or a copy where it is on another file
        system. Not fsynced (a layer's tar, as ``ingest``'s)."""
        target = self.path(digest)
        if target.exists():
            return
        tmp = self.dir / f".tmp-adopt-{os.getpid()}-{os.urandom(6).hex()}"
        try:
            fds = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                # linkat(AT_SYMLINK_FOLLOW) of /proc/self/fd/N links the file it is open on
                os.link(str(fd), tmp, src_dir_fd=fds, follow_symlinks=True)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
                shutil.copyfile(f"/proc/self/fd/{fd}", tmp)
            finally:
                os.close(fds)
            os.chmod(tmp, 0o600)
            os.rename(tmp, target)
        except BaseException:
            _unlink_quiet(tmp)
            raise

    def get(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"blob {digest} not found") from exc

    def delete(self, digest: str) -> None:
        _unlink_quiet(self.path(digest))

    def digests(self) -> Iterator[str]:
        for entry in self.dir.iterdir():
            if _DIGEST_RE.match("sha256:" + entry.name):
                yield "sha256:" + entry.name

    def gc(self, keep: set[str]) -> list[str]:
        """Remove temp files and blobs not in ``keep``; return the removed digests."""
        removed = []
        for entry in self.dir.iterdir():
            if entry.name.startswith(".tmp-"):
                _unlink_quiet(entry)
            elif "sha256:" + entry.name not in keep:
                _unlink_quiet(entry)
                removed.append("sha256:" + entry.name)
        return removed


class BlobWriter:
    """The open temp file of :meth:`ContentStore.ingest`; counts and hashes what is written."""

    def __init__(self, file: BinaryIO, tmp: Path, store: ContentStore, hashing: bool = True,
                 durable: bool = True) -> None:
        self._file = file
        self._tmp = tmp
        self._store = store
        self._sha = hashlib.sha256() if hashing else None
        self._durable = durable
        self.size = 0
        self.committed = False

    def write(self, data: bytes) -> int:
        if self._sha is not None:
            self._sha.update(data)
        self.size += len(data)
        return self._file.write(data)

    def flush(self) -> None:
        self._file.flush()

    def commit(self, expected: str | None = None) -> str:
        """fsync and move into place; ``expected`` must match what was written (without our
        own hash, ``expected`` is the caller's digest of the same bytes and is taken as is)."""
        if self._sha is None:
            if expected is None:
                raise SystemFailure("commit blob: a writer that does not hash needs the caller's digest")
            digest = expected
        else:
            digest = "sha256:" + self._sha.hexdigest()
        if expected is not None and expected != digest:
            raise InvalidParameter(f"write blob {expected}: content digest is {digest}")
        self._file.flush()
        if self._durable:
            os.fsync(self._file.fileno())
        self._file.close()
        os.rename(self._tmp, self._store.path(digest))
        if self._durable:
            _fsync_dir(self._store.dir)
        self.committed = True
        return digest

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        if not self.committed:
            _unlink_quiet(self._tmp)


def _unlink_quiet(path: Path) -> None:
    # Removing something already gone is the desired end state, not an error.
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
