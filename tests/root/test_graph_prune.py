"""docker image prune on a real graph (vfs: the behaviour is driver-independent)."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.drivers.graph import new_driver
from berth.errors import InvalidParameter
from berth.graph import Graph


@pytest.fixture
def graph() -> Iterator[Graph]:
    root = Path(tempfile.mkdtemp(prefix=f"berth-gp-{uuid.uuid4().hex[:8]}-", dir="/var/tmp"))
    g = Graph(root, root / "berth.db", new_driver("vfs", root))
    yield g
    g.close()
    shutil.rmtree(root, ignore_errors=True)


def test_prune_dangling_labels_until_and_users(graph: Graph, busybox_tar: Path) -> None:
    tagged = graph.import_tar(busybox_tar, "keep", ["LABEL spyprune=1"], "")
    dangling = graph.import_tar(busybox_tar, None, ["LABEL spyprune=1"], "")
    other = graph.import_tar(busybox_tar, None, ["LABEL spyprune=2"], "")
    used = graph.import_tar(busybox_tar, None, ["LABEL spyprune=1", "ENV U=1"], "")
    users = lambda i: ["c" * 64] if i == used else []  # noqa: E731
    assert graph.prune({"label": ["spyprune=1"], "until": ["1"]}, users) == {
        "ImagesDeleted": None,
        "SpaceReclaimed": 0,
    }
    report = graph.prune({"dangling": {"true": True}, "label": {"spyprune=1": True}}, users)
    assert report == {"ImagesDeleted": [{"Deleted": dangling}], "SpaceReclaimed": 0}  # the layer is shared
    assert graph.prune({"label!": ["spyprune=2"]}, users)["ImagesDeleted"] is None
    # -a: tagged images go too; the last image frees the shared layer
    report = graph.prune({"dangling": ["false"]}, users)
    deleted = report["ImagesDeleted"]
    assert (
        {"Untagged": "keep:latest"} in deleted
        and {"Deleted": tagged} in deleted
        and {"Deleted": other} in deleted
    )
    assert report["SpaceReclaimed"] == 0  # `used` still holds the layer
    assert [r.id for r in graph.images.rows()] == [used]
    with pytest.raises(InvalidParameter):
        graph.prune({"reference": ["x"]}, users)
    size = graph.inspect(used)["Size"]
    last = graph.prune({"dangling": ["false"]}, lambda i: [])
    assert last["ImagesDeleted"][0] == {"Deleted": used} and len(last["ImagesDeleted"]) == 2
    assert last["SpaceReclaimed"] == size > 0
    assert graph.layers.rows() == [] and graph.driver.layers() == []
