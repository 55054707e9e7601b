"""The suite every cgroup manager passes on the kernel: v1 (or hybrid) on the host's hierarchy,
v2 on a private cgroup2 mount (here the hybrid host's unified hierarchy, mounted again; on a
pure v2 host the same). The unit twin (tests/unit/test_cgroup_managers.py) runs it on fakes."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.errors import SystemFailure
from berth.libcontainer.cgroups import (
    Cgroup,
    Resources,
    ResourceUpdate,
    V1Cgroup,
    V2Cgroup,
    is_unified,
    open_cgroup,
)

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount and create cgroups")]

HOST = Path("/sys/fs/cgroup")


@pytest.fixture(params=["v1", "v2"])
def root(request: pytest.FixtureRequest) -> Iterator[Path]:
    if request.param == "v1":
        if is_unified(HOST):
            pytest.skip("this host has no cgroup v1 hierarchies (pure cgroup v2)")
        yield HOST
        return
    mnt = Path(tempfile.mkdtemp(prefix="berth-cg2-"))
    try:
        subprocess.run(["mount", "-t", "cgroup2", "cgroup2", str(mnt)], check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        mnt.rmdir()
        pytest.skip(f"cannot mount cgroup2 here: {exc.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
        mnt.rmdir()


@pytest.fixture
def names(root: Path) -> Iterator[tuple[str, str]]:
    parent = f"berth-mgr-{uuid.uuid4().hex[:10]}"
    yield parent, f"{parent}/c"
    for name in (f"{parent}/c", parent):
        open_cgroup(name, root).destroy()


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL)


def test_the_manager_follows_the_hierarchy(root: Path, names: tuple[str, str]) -> None:
    cg = open_cgroup(names[1], root)
    assert type(cg) is (V2Cgroup if is_unified(root) else V1Cgroup)


def test_lifecycle_on_the_kernel(root: Path, names: tuple[str, str]) -> None:
    parent_name, name = names
    cg: Cgroup = open_cgroup(name, root)
    parent = open_cgroup(parent_name, root)
    assert not cg.exists()
    cg.create(Resources())  # the default device rules: v1 files, or v2's eBPF program
    assert cg.exists() and cg.pids() == []
    proc = _sleeper()
    try:
        cg.add(proc.pid)
        assert cg.pids() == [proc.pid]
        cg.freeze()
        assert cg.frozen()
        cg.thaw()
        assert not cg.frozen()
        assert not cg.oom_killed()
        cg.update(ResourceUpdate())
        assert cg.stats().pids_current in (None, 1)  # None where pids is not this hierarchy's
        assert not cg.remove_if_empty() and cg.exists()  # a member: kept
        assert not parent.remove_if_empty()  # a child cgroup: kept
        cg.freeze()
        cg.destroy()  # thaws what it froze, kills, removes
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not cg.exists()
    cg.destroy()  # idempotent
    assert parent.remove_if_empty() and not parent.exists()


def test_a_refused_limit_leaves_nothing(root: Path, names: tuple[str, str]) -> None:
    cg = open_cgroup(names[1], root)
    # no such CPU: v1's cpuset refuses it; on hybrid v2 cpuset is not even this hierarchy's
    with pytest.raises(SystemFailure, match="cpuset.cpus"):
        cg.create(Resources(cpuset_cpus="4095"))
    assert not cg.exists()


def _members(cg: Cgroup, pid: int) -> list[bool]:
    """Whether ``pid`` is in the cgroup, per directory (every hierarchy's own cgroup.procs)."""
    return [str(pid) in (d / "cgroup.procs").read_text().split() for d in cg.paths()]


@pytest.mark.parametrize("born", [False, True])
def test_a_fork_child_joins_every_hierarchy(root: Path, names: tuple[str, str], born: bool) -> None:
    """join() (a v1 hierarchy's tasks, cgroup2's cgroup.procs) puts a single-threaded child in
    every directory; forked into the cgroup2 directory (CLONE_INTO_CGROUP), it joins the rest."""
    from berth.libcontainer import kernel

    cg = open_cgroup(names[1], root)
    cg.create(Resources())
    v2 = cg.v2_dir()
    if born and v2 is None:
        pytest.skip("no cgroup2 hierarchy here: nothing to be born in")
    fd = os.open(v2, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if born and v2 is not None else -1
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    try:
        pid = kernel.fork_into_cgroup(fd) if born else os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(go_w)
                os.close(done_r)
                cg.join(v2=not born)
                os.write(done_w, b"x")
                os.read(go_r, 1)  # stay a member until the parent has looked
                code = 0
            finally:
                os._exit(code)
        os.close(done_w)
        done_w = -1
        assert os.read(done_r, 1) == b"x"
        members = _members(cg, pid)
        os.close(go_w)
        go_w = -1
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        assert members == [True] * len(cg.paths())
    finally:
        for f in (fd, go_r, go_w, done_r, done_w):
            if f >= 0:
                os.close(f)  # go_w closed: a child still waiting goes
    cg.destroy()


def test_fork_into_a_bad_directory_forks_nothing() -> None:
    from berth.libcontainer import kernel

    fd = os.open("/", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with pytest.raises(OSError):
            kernel.fork_into_cgroup(fd)  # not a cgroup2 directory: refused, and nothing forked
    finally:
        os.close(fd)
