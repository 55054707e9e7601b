"""docker info's cgroup fields come from the cgroups package's one detection (a hybrid host is v1)."""

from __future__ import annotations

import harness
from berth.libcontainer.cgroups import is_unified


def test_info_cgroup_version_and_driver(berthd: harness.Berthd) -> None:
    r = berthd.docker("info", "--format", "{{.CgroupVersion}} {{.CgroupDriver}}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{2 if is_unified() else 1} cgroupfs"
