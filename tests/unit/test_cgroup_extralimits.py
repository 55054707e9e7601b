"""The OCI-only cgroup limits (berth-runtime's bundles): converted from linux.resources, written
where the host's cgroups take them, refused by name where they cannot be applied."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from berth.errors import InvalidParameter, SystemFailure
from berth.libcontainer.cgroups import open_cgroup, resources_from_oci
from berth.libcontainer.cgroups.faketree import fake_v1, fake_v2

OCI = {
    "memory": {"limit": 64 << 20, "swappiness": 10, "disableOOMKiller": True, "kernelTCP": 32 << 20, "kernel": 1 << 20},
    "blockIO": {
        "weightDevice": [{"major": 8, "minor": 0, "weight": 300}],
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 102400}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 50}],
    },
    "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}],
}


def test_linux_resources_become_the_extra_fields() -> None:
    r = resources_from_oci(OCI)
    assert (r.memory_swappiness, r.oom_kill_disable, r.kernel_tcp) == (10, True, 32 << 20)
    assert r.blkio_weight_device == (("8:0", 300),)
    assert r.blkio_throttle == (("read_bps", "8:0", 102400), ("write_iops", "8:0", 50))
    assert r.hugetlb == (("2MB", 4 << 20),)
    assert r.has_extras and not resources_from_oci({"memory": {"limit": 1 << 20}}).has_extras


@pytest.mark.parametrize(
    ("res", "field"),
    [
        ({"memory": {"swappiness": 101}}, "linux.resources.memory.swappiness"),
        ({"memory": {"disableOOMKiller": "yes"}}, "linux.resources.memory.disableOOMKiller"),
        ({"blockIO": {"leafWeight": 10}}, "linux.resources.blockIO.leafWeight"),
        ({"blockIO": {"throttleReadBpsDevice": [{"major": -1, "minor": 0, "rate": 1}]}}, "throttleReadBpsDevice[0].major"),
        ({"hugepageLimits": [{"pageSize": "../x", "limit": 1}]}, "linux.resources.hugepageLimits[0].pageSize"),
        ({"network": {"priorities": [{"name": "eth0 x", "priority": 1}]}}, "linux.resources.network.priorities[0].name"),
        ({"rdma": {"mlx": {"hcaHandles": 1}}}, "linux.resources.rdma"),
        ({"unified": {"memory.high": 5}}, "linux.resources.unified"),
    ],
)
def test_bad_values_are_refused_by_field(res: dict, field: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        resources_from_oci(res)
    assert field in str(info.value)


def _leaf_files(base: Path, names: tuple[str, ...]) -> None:
    base.mkdir(parents=True, exist_ok=True)
    for name in names:
        (base / name).write_text("")


def test_v1_writes_each_file_and_hugetlb_goes_to_the_hybrid_unified_hierarchy(tmp_path: Path) -> None:
    root = fake_v1(tmp_path)
    (root / "unified" / "cgroup.controllers").write_text("hugetlb\n")
    (root / "unified" / "cgroup.subtree_control").write_text("")
    leaf = "t/c"
    _leaf_files(root / "memory" / leaf, ("memory.swappiness", "memory.oom_control", "memory.kmem.tcp.limit_in_bytes"))
    _leaf_files(root / "blkio" / leaf, ("blkio.weight_device", "blkio.throttle.read_bps_device", "blkio.throttle.write_iops_device"))
    _leaf_files(root / "unified" / leaf, ("hugetlb.2MB.max",))
    (root / "unified" / "t" / "cgroup.subtree_control").write_text("")
    open_cgroup(leaf, root=root).create(resources_from_oci(OCI))
    read = lambda p: (root / p).read_text()  # noqa: E731
    assert read(f"memory/{leaf}/memory.swappiness") == "10"
    assert read(f"memory/{leaf}/memory.oom_control") == "1"
    assert read(f"memory/{leaf}/memory.kmem.tcp.limit_in_bytes") == str(32 << 20)
    assert read(f"blkio/{leaf}/blkio.weight_device") == "8:0 300"
    assert read(f"blkio/{leaf}/blkio.throttle.write_iops_device") == "8:0 50"
    assert read(f"unified/{leaf}/hugetlb.2MB.max") == str(4 << 20)
    assert read("unified/t/cgroup.subtree_control") == "+hugetlb"  # enabled on the way down


def test_v1_without_the_file_or_the_hierarchy_fails_and_leaves_nothing(tmp_path: Path) -> None:
    root = fake_v1(tmp_path)
    shutil.rmtree(root / "cpuset")  # a fake keeps the cpus/mems copied down, and rmdir would fail
    cg = open_cgroup("t/c", root=root)
    every = [{"allow": True, "access": "rwm"}]  # no device files written: a fake dir can be removed
    with pytest.raises(SystemFailure, match="memory.swappiness: the host's cgroups offer no such file"):
        cg.create(resources_from_oci({"memory": {"swappiness": 10}, "devices": every}))
    assert not cg.exists()
    with pytest.raises(SystemFailure, match="linux.resources.network.classID: the host has no net_cls"):
        cg.create(resources_from_oci({"network": {"classID": 7}, "devices": every}))
    assert not cg.exists()


def test_v2_io_max_per_device_and_v1_only_limits_refused(tmp_path: Path) -> None:
    root = fake_v2(tmp_path, controllers=("io", "memory", "pids", "hugetlb"))
    leaf = root / "t" / "c"
    _leaf_files(leaf, ("io.max", "io.weight", "hugetlb.2MB.max"))
    (root / "t" / "cgroup.subtree_control").write_text("")
    res = {k: v for k, v in OCI.items() if k != "memory"}
    open_cgroup("t/c", root=root).create(resources_from_oci(res))
    assert (leaf / "io.max").read_text() == "8:0 rbps=102400 wiops=50"
    assert (leaf / "io.weight").read_text() == "8:0 300"
    assert (leaf / "hugetlb.2MB.max").read_text() == str(4 << 20)
    assert set((root / "cgroup.subtree_control").read_text().split()) >= {"+io", "+hugetlb"}
    with pytest.raises(SystemFailure, match="memory.swappiness is not supported with cgroup v2"):
        open_cgroup("t/d", root=root).create(resources_from_oci({"memory": {"swappiness": 10}}))
