"""The container's /sys/fs/cgroup made ahead (berth.libcontainer.cgroup_mount.make_ahead, a
standby's twin's work before its container comes) is what the usual way makes: the same mounts,
flags, options, directories and modes, listed in the same order."""

from __future__ import annotations

import os
import tempfile

import pytest

from berth.libcontainer import cgroup_mount, kernel
from berth.libcontainer.cgroups import is_unified
from berth.libcontainer.spec import Mount

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


def test_the_mount_made_ahead_is_the_usual_one() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(r)
                kernel.unshare(kernel.CLONE_NEWNS)
                kernel.mount(None, "/", None, kernel.MS_REC | kernel.MS_SLAVE, None)
                os.umask(0o022)
                ahead, usual = os.path.join(tmp, "ahead"), os.path.join(tmp, "usual")
                m = Mount("cgroup", "cgroup", "/sys/fs/cgroup", OPTIONS)
                assert cgroup_mount.make_ahead(OPTIONS)
                # what mount_cgroups tries first: here it takes
                assert cgroup_mount._attach_ahead(m, ahead, new_cgroupns=False, seen=cgroup_mount.view(),
                                                  in_userns=False)
                used = cgroup_mount.ahead_handoff()
                assert used >= 0
                os.close(used)
                cgroup_mount.mount_cgroups(m, usual, new_cgroupns=False, seen=cgroup_mount.view())  # nothing ahead now
                got = (_mounts_under(ahead), _listing(ahead), oct(os.stat(ahead).st_mode))
                want = (_mounts_under(usual), _listing(usual), oct(os.stat(usual).st_mode))
                os.write(w, repr((got, want)).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        chunks = []
        while chunk := os.read(r, 65536):
            chunks.append(chunk)
        os.close(r)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        got, want = eval(b"".join(chunks).decode())  # noqa: S307 -- our own child's repr
        assert got[0] and got == want


def test_a_mount_that_asks_otherwise_takes_the_usual_way() -> None:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            kernel.unshare(kernel.CLONE_NEWNS)
            kernel.mount(None, "/", None, kernel.MS_REC | kernel.MS_SLAVE, None)
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
                assert opts.startswith("rw,"), opts
                kernel.umount2(tmp, kernel.MNT_DETACH)
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
