"""One conformance suite, run on every graph driver (overlay2 and vfs).

Each test builds layers from tars, asks the driver for a container's mount plan and
performs it in a private mount namespace (tests/root/test_graph_support.py), then looks at
the merged tree: files, links, devices, metadata, whiteouts, and where writes land.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.drivers.graph import GraphDriver, OverlayDriver, VfsDriver, new_driver, overlay_supported
from berth.errors import Conflict, InvalidParameter, NotFound

from .test_graph_support import entry, host_mounts_under, make_tar, run_mounted

DRIVERS = ["overlay2", "vfs"]


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest) -> Iterator[GraphDriver]:
    root = Path(tempfile.mkdtemp(prefix=f"berth-gd-{uuid.uuid4().hex[:8]}-", dir="/var/tmp"))
    try:
        if request.param == "overlay2" and not overlay_supported(root / "overlay2"):
            pytest.skip(f"overlayfs does not work under {root} on this kernel")
        yield new_driver(request.param, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def layer(driver: GraphDriver, data: bytes, parent: str | None = None) -> str:
    layer_id = uuid.uuid4().hex * 2
    driver.create_layer(layer_id, parent)
    driver.apply_diff(layer_id, io.BytesIO(data))
    return layer_id


BASE = make_tar(
    entry("bin/", tarfile.DIRTYPE, mode=0o755),
    entry("bin/tool", data=b"#!/bin/sh\necho tool\n", mode=0o755),
    entry("bin/alias", tarfile.SYMTYPE, link="tool"),
    entry("bin/hard", tarfile.LNKTYPE, link="bin/tool"),
    entry("etc/", tarfile.DIRTYPE, mode=0o755),
    entry("etc/secret", data=b"s", mode=0o600, uid=1000, gid=1000),
    entry("dev/", tarfile.DIRTYPE, mode=0o755),
    entry("dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3),
    entry("run/fifo", tarfile.FIFOTYPE, mode=0o644),
    entry("gone", data=b"deleted later"),
    entry("opaque/", tarfile.DIRTYPE, mode=0o755),
    entry("opaque/old", data=b"hidden later"),
    entry("tmp/", tarfile.DIRTYPE, mode=0o1777),
)
CHILD = make_tar(
    entry(".wh.gone"),
    entry("opaque/", tarfile.DIRTYPE, mode=0o755),
    entry("opaque/.wh..wh..opq"),
    entry("opaque/new", data=b"fresh"),
    entry("etc/added", data=b"child"),
)


def test_driver_name_and_class(driver: GraphDriver) -> None:
    assert isinstance(driver, OverlayDriver if driver.name == "overlay2" else VfsDriver)


def test_layers_stack_with_whiteouts_and_keep_metadata(driver: GraphDriver) -> None:
    base = layer(driver, BASE)
    child = layer(driver, CHILD, base)
    cid = uuid.uuid4().hex * 2
    driver.prepare_rw(cid, child)
    target = Path(tempfile.mkdtemp(prefix="berth-rootfs-", dir="/var/tmp"))
    try:
        mounts = driver.mounts(cid, str(target))
        script = f"""
        cd {target}
        ls -A1 . | sort | tr '\\n' ' '; echo
        ls -A1 opaque | tr '\\n' ' '; echo
        cat bin/tool; readlink bin/alias
        stat -c '%a %u %g %F' etc/secret dev/null run/fifo tmp
        stat -c '%i' bin/tool bin/hard | uniq | wc -l
        cat etc/added
        echo written > new-file; mkdir -p made/dir; rm bin/alias
        """
        result = run_mounted(mounts, script)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0].split() == ["bin", "dev", "etc", "opaque", "run", "tmp"]
        assert lines[1].split() == ["new"]
        assert lines[2:4] == ["#!/bin/sh", "echo tool"]
        assert lines[4] == "tool"
        assert lines[5:9] == [
            "600 1000 1000 regular file",
            "666 0 0 character special file",
            "644 0 0 fifo",
            "1777 0 0 directory",
        ]
        assert lines[9] == "1"  # the hard link shares the inode
        assert lines[10] == "child"
        # nothing leaked into the host's mount table
        assert host_mounts_under(str(target)) == []
        # writes landed in the container's own layer, the image layers are untouched
        rw = driver.diff_dir(cid)
        assert (rw / "new-file").read_text() == "written\n" and (rw / "made" / "dir").is_dir()
        assert os.path.islink(driver.diff_dir(base) / "bin" / "alias")
        assert driver.size(cid) >= len("written\n")
    finally:
        driver.remove_rw(cid)
        target.rmdir()
    assert not driver.exists(cid)


def test_whiteouts_are_stored_in_the_drivers_format(driver: GraphDriver) -> None:
    base = layer(driver, BASE)
    child = layer(driver, CHILD, base)
    diff = driver.diff_dir(child)
    if driver.whiteouts == "overlay":
        info = os.lstat(diff / "gone")
        assert stat.S_ISCHR(info.st_mode) and info.st_rdev == os.makedev(0, 0)
        assert os.getxattr(diff / "opaque", "trusted.overlay.opaque") == b"y"
        assert not (diff / "bin").exists()  # an overlay layer holds only its own changes
    else:
        assert not os.path.lexists(diff / "gone") and not (diff / "opaque" / "old").exists()
        assert (diff / "bin" / "tool").exists()  # a vfs layer is the whole tree


def test_empty_image_gets_a_mountable_rootfs(driver: GraphDriver) -> None:
    cid = uuid.uuid4().hex * 2
    driver.prepare_rw(cid, None)
    target = Path(tempfile.mkdtemp(prefix="berth-rootfs-", dir="/var/tmp"))
    try:
        result = run_mounted(driver.mounts(cid, str(target)), f"touch {target}/x && ls -A {target}")
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["x"]
    finally:
        driver.remove_rw(cid)
        target.rmdir()


def test_remove_and_list_layers(driver: GraphDriver) -> None:
    base = layer(driver, BASE)
    child = layer(driver, CHILD, base)
    assert set(driver.layers()) >= {base, child}
    driver.remove_layer(child)
    driver.remove_layer(child)  # removing twice is fine
    assert not driver.exists(child) and child not in driver.layers()
    if isinstance(driver, OverlayDriver):
        links = list((driver.root / "l").iterdir())
        assert len(links) == 1 and links[0].resolve() == driver.diff_dir(base)


def test_errors(driver: GraphDriver) -> None:
    base = layer(driver, BASE)
    with pytest.raises(Conflict):
        driver.create_layer(base, None)
    with pytest.raises(NotFound):
        driver.create_layer(uuid.uuid4().hex, "no-such-parent")
    with pytest.raises(NotFound):
        driver.mounts("no-such-container", "/x")
    bad = uuid.uuid4().hex
    driver.create_layer(bad, None)
    with pytest.raises(InvalidParameter):
        driver.apply_diff(bad, io.BytesIO(BASE[:700]))


def test_metadata(driver: GraphDriver) -> None:
    base = layer(driver, BASE)
    child = layer(driver, CHILD, base)
    data = driver.metadata(child)
    if driver.name == "overlay2":
        assert data["UpperDir"] == str(driver.diff_dir(child))
        assert data["LowerDir"] == str(driver.diff_dir(base))
        assert set(data) == {"LowerDir", "MergedDir", "UpperDir", "WorkDir"}
    else:
        assert data == {}
