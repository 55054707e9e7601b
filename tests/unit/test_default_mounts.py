"""One default mount table: the daemon's spec and libcontainer's test spec take it from one place."""

from __future__ import annotations

import doctest

from berth.drivers.exec.spec import SpecInput, build_spec
from berth.libcontainer import defaultmounts
from berth.libcontainer.defaultmounts import default_mounts
from berth.libcontainer.testing import docker_like_spec


def test_docstring_examples() -> None:
    result = doctest.testmod(defaultmounts)
    assert result.attempted > 0 and result.failed == 0


def test_mobys_defaults() -> None:
    by_dest = {m["destination"]: m for m in default_mounts()}
    assert by_dest["/sys"]["options"] == ["nosuid", "noexec", "nodev", "ro"]
    assert by_dest["/sys/fs/cgroup"] == {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                                         "options": ["ro", "nosuid", "noexec", "nodev"]}
    assert by_dest["/dev/pts"]["options"] == ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]
    assert by_dest["/dev/shm"]["options"][-2:] == ["mode=1777", "size=67108864"]
    privileged = {m["destination"]: m for m in default_mounts(privileged=True)}
    assert "ro" not in privileged["/sys"]["options"] and "ro" not in privileged["/sys/fs/cgroup"]["options"]


def test_each_call_gives_fresh_objects() -> None:
    a = default_mounts()
    a[0]["options"].append("x")
    assert "x" not in default_mounts()[0]["options"]


def test_the_daemons_spec_and_the_test_spec_use_it() -> None:
    spec = build_spec(SpecInput(args=("sh",), rootfs="/r", shm_size=1 << 20, privileged=True,
                                hosts_path="/h", resolv_conf_path="/rc"))
    assert spec["mounts"][:7] == default_mounts(1 << 20, privileged=True)
    assert [m["destination"] for m in spec["mounts"][7:]] == ["/etc/resolv.conf", "/etc/hosts"]
    assert build_spec(SpecInput(args=("sh",), rootfs="/r", mount_cgroups=False))["mounts"] == default_mounts(
        cgroup=False)
    assert docker_like_spec("/r", ["sh"])["mounts"] == default_mounts(cgroup=False)
