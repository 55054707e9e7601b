"""Where COPY reads from: the build context, or an image (``COPY --from``), behind one interface.

Both are trees of :class:`Node` values with symlinks resolved in scope; a file's bytes come out
as chunks (from the context's spool or from a layer file opened without following links)::

    src = ContextSource(ctx)            # or ImageSource(ImageFS(layers))
    path = src.resolve("app/../bin")    # "bin"
    node = src.node(path)               # Node(kind="dir", ...) or None
    for rel, child in src.walk(path): ...
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from berth.builder.context import BuildContext, Entry
from berth.builder.imagefs import ImageFS, Stat

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Node:
    path: str          # resolved, relative to the source's root, no leading slash
    kind: str          # file | dir | symlink | other
    mode: int
    uid: int
    gid: int
    mtime: float
    size: int
    linkname: str
    ref: Any           # the source's own handle (an Entry, a Stat)


class Source(Protocol):
    label: str

    def resolve(self, path: str, follow_last: bool = True) -> str: ...

    def node(self, path: str) -> Node | None: ...

    def walk(self, path: str) -> Iterator[tuple[str, Node]]: ...

    def paths(self) -> Iterator[str]: ...

    def digest(self, node: Node) -> str: ...

    def chunks(self, node: Node) -> Iterator[bytes]: ...

    def open(self, node: Node) -> BinaryIO: ...


class ContextSource:
    label = "build context"

    def __init__(self, ctx: BuildContext) -> None:
        self.ctx = ctx

    def resolve(self, path: str, follow_last: bool = True) -> str:
        return self.ctx.resolve(path, follow_last)

    def node(self, path: str) -> Node | None:
        entry = self.ctx.entries.get(path.strip("/"))
        return None if entry is None else _from_entry(entry)

    def walk(self, path: str) -> Iterator[tuple[str, Node]]:
        base = path.strip("/")
        for entry in self.ctx.walk(base):
            yield (entry.path[len(base) + 1 :] if base else entry.path), _from_entry(entry)

    def paths(self) -> Iterator[str]:
        return self.ctx.all_paths()

    def digest(self, node: Node) -> str:
        return self.ctx.file_digest(node.ref)

    def chunks(self, node: Node) -> Iterator[bytes]:
        return self.ctx.chunks(node.ref)

    def open(self, node: Node) -> BinaryIO:
        return _Slice(self.ctx, node.ref)  # type: ignore[return-value]


def _from_entry(entry: Entry) -> Node:
    return Node(entry.path, entry.kind, entry.mode, entry.uid, entry.gid, entry.mtime, entry.size, entry.linkname,
                entry)


class _Slice:
    """A read-only file object over one context file's bytes in the spool."""

    def __init__(self, ctx: BuildContext, entry: Entry) -> None:
        self.ctx = ctx
        self.entry = entry
        self.pos = 0

    def read(self, size: int = -1) -> bytes:
        left = self.entry.size - self.pos
        if size < 0 or size > left:
            size = left
        if size <= 0:
            return b""
        data = self.ctx._pread(self.entry.offset + self.pos, size)
        self.pos += len(data)
        return data

    def close(self) -> None:
        pass

    def __enter__(self) -> _Slice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ImageSource:
    def __init__(self, fs: ImageFS, label: str) -> None:
        self.fs = fs
        self.label = label
        self._digests: dict[str, str] = {}

    def resolve(self, path: str, follow_last: bool = True) -> str:
        return self.fs.resolve(path, follow_last).lstrip("/")

    def node(self, path: str) -> Node | None:
        info = self.fs.lstat("/" + path.strip("/"))
        return None if info is None else _from_stat(path.strip("/"), info)

    def walk(self, path: str) -> Iterator[tuple[str, Node]]:
        base = "/" + path.strip("/")
        for rel, info in self.fs.walk(base):
            yield rel, _from_stat(f"{path.strip('/')}/{rel}".lstrip("/"), info)

    def paths(self) -> Iterator[str]:
        for rel, _ in self.fs.walk("/"):
            yield rel

    def digest(self, node: Node) -> str:
        found = self._digests.get(node.path)
        if found is None:
            sha = hashlib.sha256()
            for chunk in self.chunks(node):
                sha.update(chunk)
            found = self._digests[node.path] = sha.hexdigest()
        return found

    def chunks(self, node: Node) -> Iterator[bytes]:
        with self.open(node) as f:
            while chunk := f.read(_CHUNK):
                yield chunk

    def open(self, node: Node) -> BinaryIO:
        stat: Stat = node.ref
        return os.fdopen(self.fs.open(stat), "rb")


def _from_stat(path: str, info: Stat) -> Node:
    return Node(path, info.kind, info.mode, info.uid, info.gid, info.mtime, info.size, info.linkname, info)


class FileSource:
    """One file on the daemon's disk (an ``ADD <url>`` download), named ``name``."""

    label = "remote file"

    def __init__(self, path: os.PathLike[str] | str, name: str, mtime: float) -> None:
        self.path = os.fspath(path)
        self.name = name
        self.mtime = mtime
        self._digest = ""

    def file_node(self) -> Node:
        size = os.stat(self.path).st_size
        return Node(self.name, "file", 0o600, 0, 0, self.mtime, size, "", self.path)

    def node(self, path: str) -> Node | None:
        return self.file_node() if path == self.name else None

    def resolve(self, path: str, follow_last: bool = True) -> str:
        return path

    def walk(self, path: str) -> Iterator[tuple[str, Node]]:
        return iter(())

    def paths(self) -> Iterator[str]:
        return iter((self.name,))

    def digest(self, node: Node) -> str:
        if not self._digest:
            sha = hashlib.sha256()
            for chunk in self.chunks(node):
                sha.update(chunk)
            self._digest = sha.hexdigest()
        return self._digest

    def chunks(self, node: Node) -> Iterator[bytes]:
        with self.open(node) as f:
            while chunk := f.read(_CHUNK):
                yield chunk

    def open(self, node: Node) -> BinaryIO:
        return open(self.path, "rb")
