"""OCI linux.resources -> Resources: the one conversion the daemon and berth-runtime share."""

from __future__ import annotations

import doctest
import importlib
from typing import Any

import pytest

from berth.daemon.specconv import resources as docker_resources
from berth.drivers.exec.spec import SpecInput, build_spec
from berth.errors import InvalidParameter
from berth.libcontainer import record
from berth.libcontainer.cgroups import (
    ALLOW_ALL_DEVICES,
    DEFAULT_DEVICE_RULES,
    Resources,
    open_cgroup,
    resources_from_oci,
)
from berth.libcontainer.cgroups.faketree import fake_v1, fake_v2


@pytest.mark.parametrize(
    "name", ["berth.libcontainer.cgroups.ocispec", "berth.libcontainer.cgroups.files", "berth.libcontainer.cgroups.v2"]
)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


def test_nothing_given_is_no_limit_and_dockers_devices() -> None:
    assert resources_from_oci(None) == Resources() == resources_from_oci({})
    assert Resources().device_rules == DEFAULT_DEVICE_RULES


def test_every_field() -> None:
    r = resources_from_oci({
        "memory": {"limit": 64 << 20, "swap": 128 << 20, "reservation": 32 << 20},
        "cpu": {"shares": 512, "quota": 25000, "period": 50000, "cpus": "0-1", "mems": "0"},
        "pids": {"limit": 50},
        "blockIO": {"weight": 300},
    })
    assert r == Resources(memory=64 << 20, memory_swap=128 << 20, memory_reservation=32 << 20, cpu_shares=512,
                          cpu_quota=25000, cpu_period=50000, cpuset_cpus="0-1", cpuset_mems="0", pids_limit=50,
                          blkio_weight=300)


def test_zero_is_unset_and_minus_one_unlimited_as_in_runc() -> None:
    r = resources_from_oci({"memory": {"limit": 0, "swap": 0}, "cpu": {"shares": 0, "quota": 0, "cpus": ""},
                            "pids": {"limit": 0}})
    assert r == Resources()
    r = resources_from_oci({"memory": {"limit": -1, "swap": -1}, "cpu": {"quota": -1}, "pids": {"limit": -1}})
    assert (r.memory, r.memory_swap, r.cpu_quota, r.pids_limit) == (None, -1, -1, -1)


@pytest.mark.parametrize("bad, field", [
    ({"memory": {"limit": "64m"}}, "memory.limit"),
    ({"memory": {"limit": True}}, "memory.limit"),
    ({"cpu": {"shares": -5}}, "cpu.shares"),
    ({"cpu": {"cpus": 3}}, "cpu.cpus"),
    ({"pids": 5}, "pids"),
    ({"devices": {"allow": True}}, "devices"),
    ({"devices": [{"allow": True, "type": "x"}]}, "devices[0].type"),
    ({"devices": [{"allow": True, "type": "c", "major": "1"}]}, "devices[0].major"),
    ({"devices": [{"allow": True, "type": "c", "access": "rwx"}]}, "devices[0].access"),
    ([1], "linux.resources"),
])
def test_hostile_values_are_refused_by_name(bad: Any, field: str) -> None:
    with pytest.raises(InvalidParameter, match=field.replace("[", r"\[").replace("]", r"\]")):
        resources_from_oci(bad)


def test_device_rules_in_order_with_runcs_defaults_appended() -> None:
    deny_all = {"allow": False, "access": "rwm"}
    fuse = {"type": "c", "major": 10, "minor": 229, "access": "rwm"}
    r = resources_from_oci({"devices": [deny_all, {"allow": True, **fuse}]})
    # the spec's own first, in order (devices.list shows them so: runtime-tools checks it)
    assert r.device_rules == ("c 10:229 rwm", *DEFAULT_DEVICE_RULES)
    tun = {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"}
    r = resources_from_oci({"devices": [deny_all, {"allow": True, **fuse}, tun]})
    assert r.device_rules == ("c 10:229 rwm", "c 10:200 rwm", *(d for d in DEFAULT_DEVICE_RULES if d != "c 10:200 rwm"))
    # a later deny takes back an earlier allow; a deny of a default does not (runc appends them last)
    r = resources_from_oci({"devices": [deny_all, {"allow": True, **fuse}, {"allow": False, **fuse},
                                        {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]})
    assert r.device_rules == DEFAULT_DEVICE_RULES
    # a deny all clears; allow all (the privileged spec) is allow all
    assert resources_from_oci({"devices": [{"allow": True, **fuse}, deny_all]}).device_rules == DEFAULT_DEVICE_RULES
    assert resources_from_oci({"devices": [{"allow": True, "access": "rwm"}]}).device_rules == ALLOW_ALL_DEVICES
    # wildcards, access order
    r = resources_from_oci({"devices": [{"allow": True, "type": "b", "major": 8, "access": "wr"}]})
    assert r.device_rules[0] == "b 8:* rw"
    with pytest.raises(InvalidParameter, match="after allowing every device"):
        resources_from_oci({"devices": [{"allow": True, "access": "rwm"}, {"allow": False, **fuse}]})


@pytest.mark.parametrize("host", [
    {},
    {"Memory": 64 << 20},
    {"Memory": 64 << 20, "MemorySwap": -1, "MemoryReservation": 16 << 20},
    {"Memory": 64 << 20, "MemorySwap": 96 << 20, "PidsLimit": -1, "CpuShares": 512, "BlkioWeight": 300},
    {"CpuQuota": 50000, "CpuPeriod": 100000, "CpusetCpus": "0", "CpusetMems": "0"},
    {"PidsLimit": 20, "Privileged": True},
])
def test_the_daemons_spec_gives_the_cgroup_it_gave_before(host: dict[str, Any]) -> None:
    """What the daemon decides from a HostConfig survives the trip through config.json."""
    wanted = docker_resources(host)
    spec = build_spec(SpecInput(args=("sh",), rootfs="/r", resources=wanted, privileged=bool(host.get("Privileged"))))
    got = resources_from_oci(spec["linux"]["resources"])
    # allow rules are a set (the spec's come first in the files, in the spec's order)
    assert sorted(got.device_rules) == sorted(wanted.device_rules)
    assert record.replace(got, device_rules=wanted.device_rules) == wanted


@pytest.mark.parametrize("make", [fake_v1, fake_v2])
def test_nano_cpus_become_the_same_cfs_files(tmp_path: Any, make: Any) -> None:
    """--cpus reaches the spec as quota/period (as in moby); the files written are the same."""
    root = make(tmp_path / "cg")
    spec = build_spec(SpecInput(args=("sh",), rootfs="/r", resources=Resources(nano_cpus=1_500_000_000)))
    via_spec, direct = open_cgroup("a", root), open_cgroup("b", root)
    via_spec.create(resources_from_oci(spec["linux"]["resources"]))
    direct.create(Resources(nano_cpus=1_500_000_000))
    for a, b in zip(via_spec.paths(), direct.paths(), strict=True):
        names = {p.name for p in b.iterdir()}
        assert names == {p.name for p in a.iterdir()}
        assert all((a / n).read_text() == (b / n).read_text() for n in names)
