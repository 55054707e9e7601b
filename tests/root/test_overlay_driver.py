"""overlay2 specifics: the probe, the factory's choice, short links for deep images."""

from __future__ import annotations

import io
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.drivers.graph import OverlayDriver, VfsDriver, new_driver, overlay_supported
from berth.errors import InvalidParameter

from .test_graph_support import entry, host_mounts_under, make_tar, run_mounted


@pytest.fixture
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"berth-ov-{uuid.uuid4().hex[:8]}-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_probe_mounts_nothing_on_the_host_and_cleans_up(root: Path) -> None:
    overlay_supported.cache_clear()
    assert overlay_supported(root / "overlay2") is True  # ext4 with overlay: this machine
    assert list((root / "overlay2").iterdir()) == []
    assert host_mounts_under(str(root)) == []


def test_factory_picks_overlay2_by_default_and_knows_vfs(root: Path) -> None:
    assert isinstance(new_driver(None, root), OverlayDriver)
    assert isinstance(new_driver("vfs", root), VfsDriver)
    with pytest.raises(InvalidParameter, match="unknown driver"):
        new_driver("aufs", root)


def test_deep_images_stay_within_one_page_of_mount_options(root: Path) -> None:
    driver = OverlayDriver(root / "overlay2")
    parent = None
    for i in range(60):
        layer_id = uuid.uuid4().hex * 2
        driver.create_layer(layer_id, parent)
        driver.apply_diff(layer_id, io.BytesIO(make_tar(entry(f"f{i}", data=str(i % 10).encode()))))
        parent = layer_id
    cid = uuid.uuid4().hex * 2
    driver.prepare_rw(cid, parent)
    (mount,) = driver.mounts(cid, str(root / "target"))
    assert len(",".join(mount.options)) < 4096
    assert mount.options[0].count(":") == 59 and "/l/" in mount.options[0]
    (root / "target").mkdir()
    result = run_mounted([mount], f"cat {root}/target/f0 {root}/target/f59")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "09"


def test_dangling_short_links_are_dropped_at_start(root: Path) -> None:
    driver = OverlayDriver(root / "overlay2")
    kept, lost = uuid.uuid4().hex, uuid.uuid4().hex
    driver.create_layer(kept, None)
    driver.create_layer(lost, None)
    shutil.rmtree(root / "overlay2" / lost)  # a crash after the dir went, before its link did
    OverlayDriver(root / "overlay2")
    links = list((root / "overlay2" / "l").iterdir())
    assert [link.resolve() for link in links] == [driver.diff_dir(kept)]


def test_index_off_where_the_kernel_has_the_option(root: Path) -> None:
    driver = OverlayDriver(root / "overlay2")
    cid = uuid.uuid4().hex
    driver.prepare_rw(cid, None)
    (mount,) = driver.mounts(cid, "/x")
    assert ("index=off" in mount.options) == Path("/sys/module/overlay/parameters/index").exists()
    with pytest.raises(InvalidParameter, match="cannot carry"):
        OverlayDriver(root / "a,b")
