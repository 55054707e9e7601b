"""An image's file tree, read from its layer directories without mounting anything.

The builder reads images for three things: where a COPY lands (the destination's symlinks
and directories, resolved inside the image as Docker's ``FollowSymlinkInScope`` does), the
files of ``COPY --from`` (a stage or another image), and ``/etc/passwd``/``/etc/group`` for
``--chown`` names. The layers are hostile (a previous RUN wrote them): symlinks are resolved
by path arithmetic inside the view, and files are opened with ``O_NOFOLLOW`` from the layer
that holds them, so nothing outside the layers is ever read::

    fs = ImageFS(layers.dirs(images.get(image_id).top_layer))   # the graph's stores
    fs.resolve("/usr/local/bin/../lib")   # "/usr/local/lib" (symlinks followed in scope)
    fs.stat("/etc/passwd")                # Stat(kind="file", mode=0o644, ...) or None
"""

from __future__ import annotations

import os
import stat as statmod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from berth.drivers.graph.merged import lookup, subtree
from berth.errors import InvalidParameter
from berth.libcontainer import securepath

MAX_SYMLINK_HOPS = 255


@dataclass(frozen=True)
class Stat:
    kind: str  # file | dir | symlink | other
    mode: int
    uid: int
    gid: int
    mtime: float
    size: int
    linkname: str
    host: Path  # where it lives in a layer directory (for reading)
    rdev: int = 0
    raw_mode: int = 0


class ImageFS:
    def __init__(self, layers: list[Path]) -> None:
        self.layers = layers  # top first; [] for scratch

    def _host(self, path: str) -> Path | None:
        if not self.layers:
            return None
        clean = path.strip("/")
        if not clean:
            return self.layers[0]
        return lookup(self.layers, clean, follow=False)

    def lstat(self, path: str) -> Stat | None:
        host = self._host(path)
        if host is None:
            return None if path.strip("/") else Stat("dir", 0o755, 0, 0, 0.0, 0, "", Path("/nonexistent"))
        info = os.lstat(host)
        mode = info.st_mode
        if statmod.S_ISDIR(mode):
            kind = "dir"
        elif statmod.S_ISREG(mode):
            kind = "file"
        elif statmod.S_ISLNK(mode):
            kind = "symlink"
        else:
            kind = "other"
        link = os.readlink(host) if kind == "symlink" else ""
        return Stat(kind, statmod.S_IMODE(mode), info.st_uid, info.st_gid, info.st_mtime, info.st_size, link,
                    host, info.st_rdev, mode)

    def resolve(self, path: str, follow_last: bool = True) -> str:
        """``path`` with every symlink resolved inside the image; ``/``-rooted, may not exist."""
        pending = [p for p in path.split("/") if p not in ("", ".")]
        resolved: list[str] = []
        hops = 0
        while pending:
            name = pending.pop(0)
            if name == "..":
                if resolved:
                    resolved.pop()
                continue
            info = self.lstat("/".join([*resolved, name]))
            if info is not None and info.kind == "symlink" and (pending or follow_last):
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise InvalidParameter(f"resolve {path} in the image: too many links")
                if info.linkname.startswith("/"):
                    resolved = []
                pending = [p for p in info.linkname.split("/") if p not in ("", ".")] + pending
                continue
            resolved.append(name)
        return "/" + "/".join(resolved)

    def stat(self, path: str) -> Stat | None:
        return self.lstat(self.resolve(path))

    def listdir(self, path: str) -> list[str]:
        """Names in the directory ``path`` (already resolved), whiteouts applied."""
        clean = path.strip("/")
        dirs = subtree(self.layers, clean) if self.layers else []
        names: set[str] = set()
        for d in dirs:
            try:
                names.update(os.listdir(d))
            except (FileNotFoundError, NotADirectoryError):
                continue
        return sorted(n for n in names if self._host(f"{clean}/{n}" if clean else n) is not None)

    def walk(self, path: str) -> Iterator[tuple[str, Stat]]:
        """(path relative to ``path``, stat) of everything below the directory, parents first."""
        base = path.rstrip("/")
        for name in self.listdir(base):
            child = f"{base}/{name}"
            info = self.lstat(child)
            if info is None:
                continue
            rel = child[len(base) + 1 :]
            yield rel, info
            if info.kind == "dir":
                for sub, sub_info in self.walk(child):
                    yield f"{rel}/{sub}", sub_info

    def open(self, info: Stat) -> int:
        """An fd to read a regular file found by :meth:`lstat` (opened without following links)."""
        layer = next((layer for layer in self.layers if info.host.is_relative_to(layer)), None)
        if layer is None:
            raise InvalidParameter(f"read {info.host}: not in the image's layers")
        rel = str(info.host.relative_to(layer))
        return securepath.open_in_root(str(layer), rel, os.O_RDONLY | os.O_NONBLOCK, symlinks=False)

    def read_small(self, path: str, limit: int = 1 << 20) -> bytes | None:
        info = self.stat(path)
        if info is None or info.kind != "file" or info.size > limit:
            return None
        fd = self.open(info)
        try:
            return os.read(fd, limit + 1)[:limit]
        finally:
            os.close(fd)
