"""The suite every cgroup manager passes, on fake trees: hybrid and pure v1, and v2.

The same scenario as tests/root/test_cgroup_managers.py (which runs it on the kernel): a caller
holding a ``Cgroup`` never needs to know the version.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from berth.libcontainer.cgroups import (
    Cgroup,
    Resources,
    ResourceUpdate,
    Stats,
    V1Cgroup,
    V2Cgroup,
    open_cgroup,
)
from berth.libcontainer.cgroups.faketree import fake_v1, fake_v2

TREES: dict[str, tuple[Callable[[Path], Path], type, int]] = {
    "hybrid": (fake_v1, V1Cgroup, 9),
    "v1": (lambda root: fake_v1(root, hybrid=False), V1Cgroup, 8),
    "v2": (fake_v2, V2Cgroup, 1),
}


@pytest.fixture(params=sorted(TREES))
def tree(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, type, int]:
    make, kind, dirs = TREES[request.param]
    return make(tmp_path / "cgroup"), kind, dirs


def test_the_root_decides_the_manager(tree: tuple[Path, type, int]) -> None:
    root, kind, dirs = tree
    cg = open_cgroup("berth-t/c1", root)
    assert type(cg) is kind and cg.version == (2 if kind is V2Cgroup else 1)
    assert len(cg.paths()) == dirs and all(p.name == "c1" for p in cg.paths())


def test_lifecycle(tree: tuple[Path, type, int]) -> None:
    root, _, _ = tree
    cg: Cgroup = open_cgroup("berth-t/c1", root)
    assert not cg.exists() and cg.pids() == []
    cg.create(Resources(memory=64 << 20, pids_limit=10))
    assert cg.exists() and all(p.is_dir() for p in cg.paths())
    cg.add(4242)  # a fake tree keeps the last write, as the kernel lists the member
    assert cg.pids() == [4242]
    assert not cg.frozen()
    cg.freeze()
    assert cg.frozen()
    cg.thaw()
    assert not cg.frozen()
    assert not cg.oom_killed()
    assert isinstance(cg.stats(), Stats)
    cg.update(ResourceUpdate())  # nothing given: nothing written, nothing refused
    assert not cg.remove_if_empty()  # a member left: kept
    for p in cg.paths():
        (p / "cgroup.procs").write_text("")
    # a fake directory holds files rmdir refuses: remove them as the kernel would
    for p in cg.paths():
        for f in p.iterdir():
            f.unlink()
    assert cg.remove_if_empty() and not cg.exists()
    cg.destroy()  # idempotent
    parent = open_cgroup("berth-t", root)
    assert parent.exists() and parent.pids() == []


def test_bad_names_are_refused(tree: tuple[Path, type, int]) -> None:
    root, _, _ = tree
    for name in ("", "/", "a/../b", "../x"):
        with pytest.raises(ValueError):
            open_cgroup(name, root)
