"""The cgroup placeholder a standby helper makes and joins ahead, renamed to the container's
(berth.libcontainer.cgroups.placeholder), on the host's cgroup v1 hierarchies."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from berth.libcontainer.cgroups import Resources, V1Cgroup, is_unified
from berth.libcontainer.cgroups.placeholder import PREFIX, Placeholder, sweep
from berth.libcontainer.cgroups.resources import ALLOW_ALL_DEVICES, DEFAULT_DEVICE_RULES
from berth.libcontainer.record import replace
from forked import in_child

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create and join cgroups"),
    pytest.mark.skipif(is_unified("/sys/fs/cgroup"), reason="placeholders are for cgroup v1 hosts (renames)"),
]


@pytest.fixture
def parent() -> Iterator[str]:
    name = f"berth-test-ph-{uuid.uuid4().hex[:8]}"
    yield name
    for base in V1Cgroup(name).hierarchies().values():
        top = Path(base) / name
        if top.is_dir():
            for child in top.iterdir():
                if child.is_dir():
                    child.rmdir()
            top.rmdir()


def own_cgroups() -> list[str]:
    return [line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().splitlines()]


def test_adopted_placeholder_is_the_containers_cgroup_and_children_are_born_in_it(parent: str) -> None:
    name = f"{parent}/{uuid.uuid4().hex}"

    def work() -> dict[str, Any]:
        spot = Placeholder.make(parent)
        assert spot is not None
        before = own_cgroups()
        assert spot.fits(name, Resources())
        assert spot.adopt(name)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the "init": born inside, nothing joined
            os.write(w, json.dumps(own_cgroups()).encode())
            os._exit(0)
        os.close(w)
        child = json.loads(os.read(r, 65536))
        os.waitpid(pid, 0)
        return {"before": before, "after": own_cgroups(), "child": child, "pid": os.getpid()}

    got = in_child(work)
    standby = f"/{parent}/{PREFIX}{got['pid']}"
    assert all(path == standby for path in got["before"] if path.startswith(f"/{parent}")), got
    assert sum(path == standby for path in got["before"]) >= 2  # every hierarchy, not one
    assert got["after"] == got["child"]
    assert all(path == f"/{name}" for path in got["child"] if path.startswith(f"/{parent}"))
    assert sum(path == f"/{name}" for path in got["child"]) == sum(path == standby for path in got["before"])
    for base in V1Cgroup(parent).hierarchies().values():  # renamed (or, in cgroup2, removed)
        assert not (Path(base) / parent / f"{PREFIX}{got['pid']}").exists()
        assert (Path(base) / name).is_dir()
    V1Cgroup(name).destroy()


def test_limits_that_would_count_the_helper_take_the_usual_way(parent: str) -> None:
    spot = Placeholder(parent, "/sys/fs/cgroup", 1)  # not made: fits() only compares
    name = f"{parent}/{uuid.uuid4().hex}"
    assert spot.fits(name, Resources(cpu_shares=512))
    assert not spot.fits(name, Resources(memory=64 << 20))
    assert not spot.fits(name, Resources(pids_limit=1))
    assert not spot.fits(name, Resources(device_rules=ALLOW_ALL_DEVICES))  # --privileged
    assert not spot.fits(f"elsewhere/{uuid.uuid4().hex}", Resources())  # --cgroup-parent
    assert spot.fits(name, Resources(pids_limit=0))  # unlimited
    # the default device rules are written ahead; any other list is written whole at adopt
    # (nothing at all is left for Docker's defaults, in whatever order the spec lists them)
    assert Placeholder.remaining(Resources()) is None
    shuffled = Resources(device_rules=tuple(reversed(DEFAULT_DEVICE_RULES)))
    assert Placeholder.remaining(shuffled) is None
    rest = Placeholder.remaining(replace(shuffled, cpu_shares=512))
    assert rest is not None and rest.device_rules == ALLOW_ALL_DEVICES and rest.cpu_shares == 512
    assert Placeholder.remaining(Resources(device_rules=("c 1:3 rwm",))).device_rules == ("c 1:3 rwm",)  # type: ignore[union-attr]
    more = (*DEFAULT_DEVICE_RULES, "c 10:229 rwm")  # --device-cgroup-rule: the whole list again
    assert Placeholder.remaining(Resources(device_rules=more)).device_rules == more  # type: ignore[union-attr]


def test_adopt_onto_an_existing_cgroup_renames_nothing_and_leaves_no_placeholder(parent: str) -> None:
    name = f"{parent}/{uuid.uuid4().hex}"
    taken = V1Cgroup(name)
    taken.create(Resources())

    def work() -> dict[str, Any]:
        spot = Placeholder.make(parent)
        assert spot is not None
        return {"adopted": spot.adopt(name), "pid": os.getpid(), "now": own_cgroups()}

    got = in_child(work)
    assert got["adopted"] is False
    assert not any(PREFIX in path for path in got["now"])  # it left for the parent
    for base in V1Cgroup(parent).hierarchies().values():
        assert not (Path(base) / parent / f"{PREFIX}{got['pid']}").exists()
    assert taken.exists() and taken.pids() == []
    taken.destroy()


def test_discard_and_sweep_leave_nothing(parent: str) -> None:
    def work() -> int:
        spot = Placeholder.make(parent)
        assert spot is not None
        spot.discard()
        return os.getpid()

    pid = in_child(work)
    left = Placeholder(parent, "/sys/fs/cgroup", pid).cgroup
    assert not left.exists()
    # one whose process was killed before it could discard: swept at the daemon's shutdown
    V1Cgroup(f"{parent}/{PREFIX}999999").create(Resources())
    sweep(parent)
    assert not any(Path(b, parent, f"{PREFIX}999999").exists() for b in V1Cgroup(parent).hierarchies().values())
