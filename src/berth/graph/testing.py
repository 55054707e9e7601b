"""Test helpers that ship with the graph: a throw-away Graph and tiny root file system tars.

The model: a real Graph (SQLite, content store, vfs driver) in a temp dir is cheap and needs
no root or mounts, so other boxes' tests use the real thing rather than a mock::

    with temporary_graph() as graph:
        image_id = graph.import_stream(io.BytesIO(rootfs_tar({"bin/sh": b"#!"})), "x", [], "")
"""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from berth.drivers.graph import new_driver
from berth.graph.graph import Graph


@contextmanager
def temporary_graph(driver: str = "vfs", parent: Path | None = None) -> Iterator[Graph]:
    """A Graph on a fresh temp data root (removed afterwards); vfs needs neither root nor mounts."""
    root = Path(tempfile.mkdtemp(prefix="berth-graph-", dir=parent))
    graph = Graph(root, root / "berth.db", new_driver(driver, root))
    try:
        yield graph
    finally:
        graph.close()
        shutil.rmtree(root, ignore_errors=True)


def rootfs_tar(files: dict[str, bytes | str], mtime: int = 1_700_000_000) -> bytes:
    """A layer tar: ``{"path": bytes}`` is a file (0755 under bin/, else 0644), a ``str`` value
    a symlink target, a name ending in ``/`` a directory."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mtime = mtime
            if name.endswith("/"):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(content, str):
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, content, 0o777
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o755 if name.startswith("bin/") else 0o644
                tar.addfile(info, io.BytesIO(content))
    return out.getvalue()
