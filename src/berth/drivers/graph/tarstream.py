"""Reading a hostile tar stream: decompression, hashing, Go's strictness, bounded headers, sparse maps.

The model: a layer or image archive comes from anyone, so reading it must cost no more than the
archive is worth. :func:`members` walks a (decompressed) tar stream the way Go's
``archive/tar`` does, with the same bounds:

- a special header (PAX extended or global, GNU long name or long link) holds at most 1 MiB
  (Go's ``maxSpecialFileSize``); Python's tarfile would read any size into memory;
- a sparse map (old GNU ``S`` entries with extension blocks, PAX 0.0, 0.1, 1.0) holds at most
  :data:`MAX_SPARSE_ENTRIES` entries, sorted, not overlapping, inside the file's size, and its
  data segments add up to exactly the bytes the archive stores for the member;
- any parse failure (bad header, bad number, a stream cut short) is an :class:`ArchiveError`.

:func:`sparse_segments` then yields a sparse member's data segments as ``(offset, chunk)``
pairs, read straight from the archive, so the caller writes them at their offsets and keeps the
holes as holes (a 10 KB archive may describe a 2 GiB file that is all hole)::

    reader = HashingReader(decompressed(stream))
    archive = open_stream(reader)
    for member in members(archive):
        if member.sparse is not None:
            for offset, chunk in sparse_segments(archive, member): ...
"""

from __future__ import annotations

import bz2
import errno
import gzip
import hashlib
import lzma
import os
import tarfile
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO, Protocol, cast

from berth.drivers.graph.gunzip import GunzipReader
from berth.errors import InvalidParameter, SystemFailure

BLOCK = 512
MAX_SPECIAL_HEADER = 1 << 20  # Go's archive/tar maxSpecialFileSize
MAX_SPARSE_ENTRIES = 1 << 16
READ_AHEAD = 1 << 20  # what HashingReader reads from the stream at a time
_TAIL_KEEP = 1 << 16  # > tarfile's read-ahead (RECORDSIZE), so the unparsed tail is recoverable
_CHUNK = 1 << 20
_SPECIAL = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
            tarfile.GNUTYPE_LONGLINK)


class Writer(Protocol):
    def write(self, data: bytes, /) -> int: ...


class ArchiveError(InvalidParameter):
    """The stream is not a valid (possibly compressed) tar archive."""


class HashingReader:
    """Read the uncompressed stream, hash every byte, hand it to ``tee`` and keep the last few
    KiB for the tail check.

    The stream underneath is read :data:`READ_AHEAD` bytes at a time and tarfile's small reads
    (10 KiB, a 512-byte header) are served from that buffer: hashing, teeing and decompressing
    then run once per MiB instead of once per 10 KiB, which is where a layer's time went
    (Python's per-call overhead, and the GIL it holds while the other layers' threads wait).
    ``hashing=False``: the same buffering without the hash (an image archive, whose digest no
    one needs: its layers are hashed as they are applied)."""

    def __init__(self, raw: BinaryIO, tee: Writer | None = None, hashing: bool = True) -> None:
        self._raw = raw
        self._tee = tee
        self.sha = hashlib.sha256()
        self._hashing = hashing
        self.total = 0  # bytes handed to the reader (a prefix of what was read from ``raw``)
        self._buf = b""  # read from ``raw``, not yet handed out from ``_pos`` on
        self._pos = 0
        self._prev = b""  # at least _TAIL_KEEP bytes read before ``_buf``, for :meth:`bytes_from`
        self._eof = False
        self._offset = 0  # bytes read from ``raw``
        # ``raw`` is this plain file, read as is, and no one needs the bytes (no hash, no tee):
        # :meth:`copy_to` may move data from it to another file in the kernel
        self.file: BinaryIO | None = None

    def _fill(self) -> bool:
        """Read the next piece of ``raw`` into the buffer; False at its end."""
        if self._eof:
            return False
        try:
            data = self._raw.read(READ_AHEAD)
        except (EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError) as exc:
            raise ArchiveError(f"apply layer: corrupt compressed stream: {exc}") from exc
        except OSError as exc:
            if exc.errno is None:  # bz2/gzip report bad data as an OSError without errno
                raise ArchiveError(f"apply layer: corrupt compressed stream: {exc}") from exc
            raise
        if not data:
            self._eof = True
            return False
        self._offset += len(data)
        if self._hashing:
            self.sha.update(data)
        if self._tee is not None:
            self._tee.write(data)
        # keep at least _TAIL_KEEP bytes before the new buffer (a short read may be tiny)
        self._prev = self._buf if len(self._buf) >= _TAIL_KEEP else (self._prev + self._buf)[-_TAIL_KEEP:]
        self._buf, self._pos = data, 0
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts = [self._buf[self._pos :]]
            self.total += len(parts[0])
            self._pos = len(self._buf)
            while self._fill():
                parts.append(self._buf)
                self.total += len(self._buf)
                self._pos = len(self._buf)
            return b"".join(parts)
        if self._pos >= len(self._buf) and not self._fill():
            return b""
        end = min(self._pos + size, len(self._buf))
        data = self._buf[self._pos : end] if self._pos or end < len(self._buf) else self._buf
        self._pos = end
        self.total += len(data)
        return data

    def copy_to(self, out: BinaryIO, size: int) -> bool:
        """Write the next ``size`` bytes to the file ``out``: what is buffered, then the rest
        file to file in the kernel (``copy_file_range``), never through Python; False (nothing
        read) where there is no :attr:`file`, or the kernel cannot copy between these files."""
        if self.file is None or self._hashing or self._tee is not None:
            return False
        buffered = self._buf[self._pos : self._pos + size]
        rest = size - len(buffered)
        out.write(buffered)
        out.flush()
        src, dst, offset = self.file.fileno(), out.fileno(), self._offset
        while rest:
            try:
                n = os.copy_file_range(src, dst, rest, offset)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS) or offset != self._offset:
                    raise
                n = _copy_range(src, dst, rest, offset)  # another file system, an old kernel
            if not n:
                raise ArchiveError("apply layer: invalid tar archive: unexpected EOF")
            rest -= n
            offset += n
        self.file.seek(offset)
        self._prev, self._buf, self._pos = b"", b"", 0  # what came before is not in memory
        self.total += size
        self._offset = offset
        return True

    def bytes_from(self, offset: int) -> bytes:
        """The bytes read so far from ``offset`` on (must still be in the kept tail)."""
        kept = self._prev + self._buf[: self._pos]
        start = offset - (self.total - len(kept))
        if start < 0:
            raise SystemFailure("apply layer: tar tail no longer buffered")
        return kept[start:]

    def drain(self) -> bytes:
        """Read to EOF (the diff id covers the whole stream); return the first bytes read."""
        rest = bytearray()
        while chunk := self.read(READ_AHEAD):
            if len(rest) < 2 * BLOCK:  # only the first two blocks matter for the check
                rest += chunk[: 2 * BLOCK - len(rest)]
        return bytes(rest)

    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


def _copy_range(src: int, dst: int, size: int, offset: int) -> int:
    """``copy_file_range`` through a buffer: the bytes copied (0 at the source's end)."""
    done = 0
    while done < size:
        data = memoryview(os.pread(src, min(size - done, READ_AHEAD), offset + done))
        if not data:
            break
        done += len(data)
        while data:
            data = data[os.write(dst, data) :]
    return done


def decompressed(stream: BinaryIO) -> BinaryIO:
    """Wrap ``stream`` in the decompressor its magic bytes name (or return a buffered copy)."""
    buffered = stream if hasattr(stream, "peek") else _Peekable(stream)
    head = buffered.peek(6)[:6]
    source = cast(BinaryIO, buffered)
    if head.startswith(b"\x1f\x8b"):
        return cast(BinaryIO, GunzipReader(source))
    if head.startswith(b"BZh"):
        return cast(BinaryIO, bz2.BZ2File(source, mode="rb"))
    if head.startswith(b"\xfd7zXZ\x00"):
        return cast(BinaryIO, lzma.LZMAFile(source, mode="rb"))
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        raise ArchiveError("apply layer: zstd-compressed layers are not supported")
    return buffered  # type: ignore[return-value]


class _Peekable:
    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._buf = b""

    def peek(self, size: int) -> bytes:
        while len(self._buf) < size:
            chunk = self._raw.read(size - len(self._buf))
            if not chunk:
                break
            self._buf += chunk
        return self._buf

    def read(self, size: int = -1) -> bytes:
        if self._buf:
            if size < 0:
                out, self._buf = self._buf + self._raw.read(), b""
                return out
            out, self._buf = self._buf[:size], self._buf[size:]
            return out
        return self._raw.read(size)


class StrictTarInfo(tarfile.TarInfo):
    """tarfile's TarInfo with Go's bounds on what a header may make us read or keep.

    tarfile's own comment invites subclasses to override the ``_proc_*`` methods; these add
    limits in front of them and otherwise defer to the standard implementation.
    """

    def _proc_member(self, tarfile_: Any) -> Any:
        if self.type in _SPECIAL and self.size > MAX_SPECIAL_HEADER:
            raise ArchiveError(
                f"invalid tar archive: a {_kind(self.type)} header of {self.size} bytes "
                f"(the limit is {MAX_SPECIAL_HEADER})"
            )
        return super()._proc_member(tarfile_)  # type: ignore[misc]

    def _proc_sparse(self, tarfile_: Any) -> Any:
        """Old GNU sparse (type ``S``): tarfile's loop over extension blocks, bounded."""
        structs, isextended, origsize = self._sparse_structs  # type: ignore[attr-defined]
        del self._sparse_structs  # type: ignore[attr-defined]
        while isextended:
            if len(structs) > MAX_SPARSE_ENTRIES:
                raise ArchiveError(f"invalid tar archive: {self.name!r}: sparse map over {MAX_SPARSE_ENTRIES} entries")
            buf = tarfile_.fileobj.read(BLOCK)
            if len(buf) < BLOCK:
                raise ArchiveError("invalid tar archive: unexpected EOF in a sparse header")
            for pos in range(0, 21 * 24, 24):
                try:
                    offset = _nti(buf[pos : pos + 12])
                    numbytes = _nti(buf[pos + 12 : pos + 24])
                except tarfile.HeaderError as exc:
                    raise ArchiveError(f"invalid tar archive: {self.name!r}: bad sparse header: {exc}") from exc
                if offset or numbytes:
                    structs.append((offset, numbytes))
            isextended = bool(buf[504])
        self.sparse = structs  # typeshed says bytes; it is a list
        self.offset_data = tarfile_.fileobj.tell()
        tarfile_.offset = self.offset_data + self._block(self.size)  # type: ignore[attr-defined]
        self.size = origsize
        return self

    def _proc_gnusparse_10(self, next_: Any, pax_headers: Any, tarfile_: Any) -> None:
        """PAX sparse 1.0: the map is decimal text at the start of the data; bounded here."""
        text = b""
        numbers: list[int] = []
        wanted: int | None = None
        while wanted is None or len(numbers) < wanted:
            if b"\n" not in text:
                if len(text) > MAX_SPECIAL_HEADER:
                    raise ArchiveError(f"invalid tar archive: {next_.name!r}: sparse map over 1 MiB")
                block = tarfile_.fileobj.read(BLOCK)
                if len(block) < BLOCK:
                    raise ArchiveError("invalid tar archive: unexpected EOF in a sparse map")
                text += block
                continue
            line, text = text.split(b"\n", 1)
            if not line.isdigit():
                raise ArchiveError(f"invalid tar archive: {next_.name!r}: bad sparse map entry {line[:20]!r}")
            if wanted is None:
                if int(line) > MAX_SPARSE_ENTRIES:
                    raise ArchiveError(
                        f"invalid tar archive: {next_.name!r}: sparse map over {MAX_SPARSE_ENTRIES} entries"
                    )
                wanted = 2 * int(line)
            else:
                numbers.append(int(line))
        next_.offset_data = tarfile_.fileobj.tell()
        next_.sparse = list(zip(numbers[::2], numbers[1::2], strict=True))


_nti = getattr(tarfile, "nti")  # noqa: B009  # tarfile's header number parser (not in its __all__)


def sparse_map(member: tarfile.TarInfo) -> list[tuple[int, int]]:
    """The member's sparse map as ``[(offset, length), ...]`` (typeshed types it as bytes)."""
    return cast(list[tuple[int, int]], member.sparse or [])


def _kind(type_: bytes) -> str:
    return {tarfile.GNUTYPE_LONGNAME: "GNU long name", tarfile.GNUTYPE_LONGLINK: "GNU long link"}.get(
        type_, "PAX"
    )


def open_stream(reader: Any) -> tarfile.TarFile:
    """A forward-only tar reader over ``reader`` (already decompressed) with :class:`StrictTarInfo`."""
    try:
        return tarfile.open(fileobj=reader, mode="r|", tarinfo=StrictTarInfo)
    except tarfile.TarError as exc:
        raise ArchiveError(f"invalid tar archive: {exc}") from exc


# Errors the standard parser lets out for malformed numbers and maps (int(), split(), zip()).
_PARSE_ERRORS = (tarfile.TarError, ValueError, OverflowError, EOFError, UnicodeError)


def members(archive: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The archive's members, each checked; a malformed header or sparse map is an ArchiveError."""
    while True:
        try:
            member = archive.next()
        except ArchiveError:
            raise
        except _PARSE_ERRORS as exc:
            raise ArchiveError(f"invalid tar archive: {exc}") from exc
        if member is None:
            return
        if member.sparse is not None:
            _check_sparse(archive, member)
        yield member


def _check_sparse(archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
    """Go's validateSparseEntries, plus: the segments use exactly the bytes stored."""
    # Zero-length entries carry no data (GNU tar ends its maps with one at the file's size).
    entries = [(offset, length) for offset, length in sparse_map(member) if length]
    member.sparse = entries  # type: ignore[assignment]
    if len(entries) > MAX_SPARSE_ENTRIES:
        raise ArchiveError(f"invalid tar archive: {member.name!r}: sparse map over {MAX_SPARSE_ENTRIES} entries")
    if member.size < 0:
        raise ArchiveError(f"invalid tar archive: {member.name!r}: negative sparse file size")
    end = 0
    stored = 0
    for offset, length in entries:
        if offset < 0 or length < 0 or offset < end or offset + length > member.size:
            raise ArchiveError(
                f"invalid tar archive: {member.name!r}: sparse map entry ({offset}, {length}) is out of "
                f"order, overlapping or past the file's size {member.size}"
            )
        end = offset + length
        stored += length
    available = archive.offset - member.offset_data
    if member._block(stored) != available:  # type: ignore[attr-defined]
        raise ArchiveError(
            f"invalid tar archive: {member.name!r}: sparse map describes {stored} bytes of data, "
            f"the archive stores {available}"
        )


def sparse_segments(archive: tarfile.TarFile, member: tarfile.TarInfo) -> Iterator[tuple[int, bytes]]:
    """A sparse member's data as ``(file offset, chunk)`` pairs, read from the archive in order."""
    stream = cast(Any, archive.fileobj)
    try:
        stream.seek(member.offset_data)
        for offset, length in sparse_map(member):
            done = 0
            while done < length:
                chunk = stream.read(min(_CHUNK, length - done))
                if not chunk:
                    raise ArchiveError(f"invalid tar archive: unexpected EOF in {member.name!r}")
                yield offset + done, chunk
                done += len(chunk)
    except _PARSE_ERRORS as exc:
        raise ArchiveError(f"invalid tar archive: {member.name!r}: {exc}") from exc


def check_end(tail: bytes) -> None:
    """Go's archive/tar end rules: clean EOF, or two zero blocks; anything else is an error."""
    if not tail:
        return
    if len(tail) < BLOCK:
        raise ArchiveError("apply layer: invalid tar archive: unexpected EOF")
    if tail[:BLOCK].strip(b"\0"):
        raise ArchiveError("apply layer: invalid tar archive: archive/tar: invalid tar header")
    second = tail[BLOCK : 2 * BLOCK]
    if second and len(second) < BLOCK:
        raise ArchiveError("apply layer: invalid tar archive: unexpected EOF")
    if second.strip(b"\0"):
        raise ArchiveError("apply layer: invalid tar archive: archive/tar: invalid tar header")


def short(name: str, keep: int = 80) -> str:
    """A member name for a message: attacker-chosen, so cut to a readable length."""
    return name if len(name) <= keep else name[:keep] + f"...({len(name)} characters)"

