"""SIGKILL in the middle of an import: the next start finds either the whole image or nothing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from berth.drivers.graph import new_driver
from berth.graph import Graph

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from berth.drivers.graph import new_driver
    from berth.graph import Graph

    root, tar = Path(sys.argv[1]), Path(sys.argv[2])

    class Slow:
        def __init__(self, f):
            self.f = f
        def read(self, n=-1):
            time.sleep(0.002)
            return self.f.read(min(n, 4096) if n and n > 0 else 4096)

    graph = Graph(root, root / "berth.db", new_driver(sys.argv[3], root))
    with open(tar, "rb") as f:
        graph.import_stream(Slow(f), "slow:1", [], "")
    print("done", flush=True)
    """
)


@pytest.mark.parametrize("driver", ["overlay2", "vfs"])
def test_sigkill_mid_import_leaves_nothing_after_restart(driver: str, busybox_tar: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix=f"berth-crash-{uuid.uuid4().hex[:8]}-", dir="/var/tmp"))
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(root), str(busybox_tar), driver])
    try:
        layer_root = root / ("overlay2" if driver == "overlay2" else "vfs/dir")
        deadline = time.monotonic() + 30
        # wait until the layer is being written and part of the blob is on disk
        while time.monotonic() < deadline:
            temp_blobs = list((root / "blobs" / "sha256").glob(".tmp-*")) if (root / "blobs").exists() else []
            if temp_blobs and temp_blobs[0].stat().st_size > 200_000:
                break
            time.sleep(0.01)
        else:
            pytest.fail("the import never got going")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert [p for p in layer_root.iterdir() if p.name != "l"]  # something was half written
        graph = Graph(root, root / "berth.db", new_driver(driver, root))
        try:
            assert graph.images.rows() == [] and graph.layers.rows() == []
            assert graph.driver.layers() == []
            assert list(graph.content.dir.iterdir()) == []
            image_id = graph.import_tar(busybox_tar, "slow:1", [], "")  # and the graph still works
            assert graph.resolve("slow:1") == image_id
        finally:
            graph.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)
