"""The container's /sys/fs/cgroup made ahead (berth.libcontainer.cgroup_mount.make_ahead, a
standby's twin's work before its container comes) is what the usual way makes: the same mounts,
flags, options, directories and modes, listed in the same order."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

import pytest

from berth.libcontainer import cgroup_mount, kernel
from berth.libcontainer.cgroups import is_unified
from berth.libcontainer.spec import Mount
from forked import in_child

pytestmark = pytest.mark.skipif(is_unified("/sys/fs/cgroup"), reason="the binds are made on cgroup v1 / hybrid hosts only")

OPTIONS = ("ro", "nosuid", "noexec", "nodev")  # docker run's


def _mounts_under(path: str) -> list[str]:
    """Each mount under ``path`` as mountinfo has it, in its order, without ids and devices
    (mount point relative to ``path``)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == path or fields[4].startswith(path + "/"):
                out.append(" ".join([fields[3], fields[4][len(path):] or "/", *fields[5:]]))
    return out


def _listing(path: str) -> list[tuple[str, int, int]]:
    return sorted((n, os.lstat(os.path.join(path, n)).st_mode, os.lstat(os.path.join(path, n)).st_uid)
                  for n in os.listdir(path))


def _in_own_mount_namespace(fn: Callable[[], Any]) -> Any:
    def work() -> Any:
        kernel.unshare(kernel.CLONE_NEWNS)
        kernel.mount(None, "/", None, kernel.MS_REC | kernel.MS_SLAVE, None)
        return fn()

    return in_child(work)


def test_the_mount_made_ahead_is_the_usual_one() -> None:
    with tempfile.TemporaryDirectory() as tmp:

        def both_ways() -> Any:
            os.umask(0o022)
            ahead, usual = os.path.join(tmp, "ahead"), os.path.join(tmp, "usual")
            m = Mount("cgroup", "cgroup", "/sys/fs/cgroup", OPTIONS)
            assert cgroup_mount.make_ahead(OPTIONS)
            # what mount_cgroups tries first: here it takes
            assert cgroup_mount._attach_ahead(m, ahead, new_cgroupns=False, seen=cgroup_mount.view(), in_userns=False)
            used = cgroup_mount.ahead_handoff()
            assert used >= 0
            os.close(used)
            cgroup_mount.mount_cgroups(m, usual, new_cgroupns=False, seen=cgroup_mount.view())  # nothing ahead now
            got = (_mounts_under(ahead), _listing(ahead), oct(os.stat(ahead).st_mode))
            want = (_mounts_under(usual), _listing(usual), oct(os.stat(usual).st_mode))
            return got, want

        got, want = _in_own_mount_namespace(both_ways)
        assert got[0] and got == want


def test_a_mount_that_asks_otherwise_takes_the_usual_way() -> None:
    def writable_way() -> str:
        with tempfile.TemporaryDirectory() as tmp:
            assert cgroup_mount.make_ahead(OPTIONS)
            writable = Mount("cgroup", "cgroup", "/sys/fs/cgroup", ("nosuid", "noexec", "nodev"))  # --privileged
            assert not cgroup_mount._attach_ahead(writable, tmp, new_cgroupns=False, seen=cgroup_mount.view(),
                                                  in_userns=False)
            cgroup_mount.mount_cgroups(writable, tmp, new_cgroupns=False, seen=cgroup_mount.view())
            used = cgroup_mount.ahead_handoff()
            assert used >= 0
            os.close(used)
            opts = next(line.split()[5] for line in open("/proc/self/mountinfo") if line.split()[4] == tmp)
            kernel.umount2(tmp, kernel.MNT_DETACH)
            return opts

    opts = _in_own_mount_namespace(writable_way)
    assert opts.startswith("rw,"), opts
