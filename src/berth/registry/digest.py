"""Content digests as the OCI image spec defines them: ``ALGORITHM:ENCODED``.

Only the registered algorithms are accepted (sha256 with 64 lowercase hex characters,
sha512 with 128); anything else is refused before it reaches a path or a query::

    d = Digest.parse("sha256:" + "ab" * 32)
    d.algorithm, d.encoded             # ('sha256', 'abab...')
    h = d.hasher(); h.update(b"..."); Digest.of(h) == d
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

from berth.errors import InvalidParameter

# the registered algorithms and the length of their hex encoding
ALGORITHMS = {"sha256": 64, "sha512": 128}
CANONICAL = "sha256"
_ENCODED = re.compile(r"^[a-f0-9]+$")


class Hasher(Protocol):
    @property
    def name(self) -> str: ...

    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...

    def hexdigest(self) -> str: ...


@dataclass(frozen=True, order=True)
class Digest:
    algorithm: str
    encoded: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        """The digest ``text`` names, or InvalidParameter naming what is wrong with it."""
        algorithm, sep, encoded = text.partition(":")
        if not sep:
            raise InvalidParameter(f"invalid digest {text[:200]!r}: want ALGORITHM:HEX")
        want = ALGORITHMS.get(algorithm)
        if want is None:
            raise InvalidParameter(f"invalid digest {text[:200]!r}: unsupported algorithm {algorithm[:40]!r}")
        if len(encoded) != want or not _ENCODED.match(encoded):
            raise InvalidParameter(f"invalid digest {text[:200]!r}: want {want} lowercase hex characters")
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, hasher: Hasher) -> Digest:
        return cls(hasher.name, hasher.hexdigest())

    @classmethod
    def from_bytes(cls, data: bytes, algorithm: str = CANONICAL) -> Digest:
        h = new_hasher(algorithm)
        h.update(data)
        return cls.of(h)

    def hasher(self) -> Hasher:
        return new_hasher(self.algorithm)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"


def new_hasher(algorithm: str) -> Hasher:
    if algorithm not in ALGORITHMS:
        raise InvalidParameter(f"unsupported digest algorithm {algorithm[:40]!r}")
    return hashlib.new(algorithm)


def is_digest(text: str) -> bool:
    try:
        Digest.parse(text)
    except InvalidParameter:
        return False
    return True
