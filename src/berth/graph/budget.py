"""How much one import, load or pull may unpack: a bound against archives that explode.

The model: a few KB of gzip can hold gigabytes of zeros, so what an operation writes is bounded
by the *decompressed* bytes it reads, not by what was uploaded. Everything it writes follows from
those bytes: a layer's tar blob is exactly its decompressed stream, the files of a layer are at
most that (sparse files keep their holes), and ``docker load`` unpacks its archive before it
applies the layers. One :class:`UnpackBudget` is shared by every stream of one operation; the
first read past the limit raises :class:`berth.errors.InvalidParameter` and the operation
removes what it wrote. The limit is the daemon's ``max-import-size`` (0: no limit)::

    budget = UnpackBudget(64 << 30, "import")
    apply_layer(driver, content, stream, None, budget)     # charges every decompressed byte
"""

from __future__ import annotations

import threading
from typing import BinaryIO, Protocol

from berth.errors import InvalidParameter

DEFAULT_MAX_IMPORT_SIZE = 64 << 30  # 64 GiB: the largest images in common use unpack to ~20 GB


class Writer(Protocol):
    def write(self, data: bytes, /) -> int: ...


class UnpackBudget:
    """Decompressed bytes ``operation`` may still read; ``limit`` 0 means unbounded."""

    def __init__(self, limit: int, operation: str) -> None:
        self.limit = limit
        self.operation = operation
        self.used = 0
        self._lock = threading.Lock()  # layers of one pull are applied by several threads

    def charge(self, size: int) -> None:
        with self._lock:
            self.used += size
            over = self.limit and self.used > self.limit
        if over:
            raise InvalidParameter(
                f"{self.operation}: refusing an archive that unpacks to more than {self.limit} bytes "
                f"(the daemon's max-import-size; berthd --max-import-size raises it)"
            )

    def counting(self, inner: Writer) -> Writer:
        """``inner`` (a layer's blob writer), charging every byte written to it first."""
        return _CountingWriter(inner, self)

    def reader(self, inner: BinaryIO) -> BinaryIO:
        """``inner`` (a decompressed stream), charging every byte read from it."""
        return _CountingReader(inner, self)  # type: ignore[return-value]


class _CountingWriter:
    def __init__(self, inner: Writer, budget: UnpackBudget) -> None:
        self._inner = inner
        self._budget = budget

    def write(self, data: bytes, /) -> int:
        self._budget.charge(len(data))
        return self._inner.write(data)


class _CountingReader:
    def __init__(self, inner: BinaryIO, budget: UnpackBudget) -> None:
        self._inner = inner
        self._budget = budget

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(size)
        self._budget.charge(len(data))
        return data
