"""berth-runtime and the mount side of a bundle: rootfsPropagation, mount options (tmpcopyup,
recursive attributes, unknown words), each on a real bundle, with runc where it helps."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest

from berth.libcontainer import kernel

from .test_libcontainer_runtime import bundle, runtime, write_config  # noqa: F401 (fixture)

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def _mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if line.split()[4].startswith(str(path))]


def _edit(b: Path, fn) -> None:
    cfg = json.loads((b / "config.json").read_text())
    fn(cfg)
    (b / "config.json").write_text(json.dumps(cfg))


@pytest.fixture
def shared_dir(tmp_path: Path):
    """A tmpfs of the test's own, made shared on the host (as / is on a systemd host): any
    mount the container let through would show up here on the host."""
    d = tmp_path / "shared"
    d.mkdir()
    kernel.mount("tmpfs", str(d), "tmpfs", 0, "size=64m")
    try:
        kernel.mount(None, str(d), None, kernel.MS_SHARED)
        yield d
    finally:
        kernel.umount2(str(d), kernel.MNT_DETACH)


@pytest.mark.parametrize(
    ("propagation", "root_tag", "proc_tag"),
    [
        ("shared", "shared:", None),
        ("rshared", "shared:", "shared:"),
        ("runbindable", "unbindable", "unbindable"),
        ("private", None, None),
    ],
)
def test_rootfs_propagation_is_applied_and_nothing_reaches_the_host(
    tmp_path: Path, shared_dir: Path, propagation: str, root_tag: str | None, proc_tag: str | None
):
    from berth.libcontainer.testing import busybox_rootfs

    b = shared_dir / "bundle"
    busybox_rootfs(b / "rootfs")
    script = 'awk \'$5 == "/" || $5 == "/proc"\' /proc/self/mountinfo; echo ready; exec sleep 60'
    write_config(b, ["sh", "-c", script])
    _edit(b, lambda c: c["linux"].update(rootfsPropagation=propagation))
    root, cid = tmp_path / "state", "p-" + uuid.uuid4().hex[:8]
    out = tmp_path / "out"
    host_before = _mounts_under(shared_dir)
    with open(out, "w") as f:
        res = runtime(root, "create", "--bundle", str(b), cid, stdout=f, stderr=f)
    assert res.returncode == 0, out.read_text()  # was: pivot_root: Invalid argument
    try:
        assert runtime(root, "start", cid).returncode == 0
        deadline = time.monotonic() + 10
        while "ready" not in out.read_text() and time.monotonic() < deadline:
            time.sleep(0.01)
        lines = [ln for ln in out.read_text().splitlines() if len(ln.split()) > 4]
        root_line = next(ln for ln in lines if ln.split()[4] == "/")
        proc_line = next(ln for ln in lines if ln.split()[4] == "/proc")
        optional = lambda ln: ln.split(" - ")[0].split()[6:]  # noqa: E731
        assert (
            any(o.startswith(root_tag) for o in optional(root_line)) if root_tag else not optional(root_line)
        )
        if proc_tag:
            assert any(o.startswith(proc_tag) for o in optional(proc_line))
        # the container's rootfs bind, /proc, /dev ... stayed in its own namespace
        assert _mounts_under(shared_dir) == host_before
    finally:
        assert runtime(root, "delete", "--force", cid).returncode == 0
    assert _mounts_under(shared_dir) == host_before
