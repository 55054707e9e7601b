"""libcontainer.procfs: what init writes to and masks with is opened without following symlinks
and checked to be on procfs / to be the null device (the runc CVE classes of test_runc_cves)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from berth.libcontainer import procfs


def test_proc_paths_must_be_procfs_without_symlinks(tmp_path: Path) -> None:
    os.close(procfs.open_checked("/proc/sys/kernel/hostname", os.O_RDONLY))
    os.close(procfs.open_checked(f"/proc/{os.getpid()}/oom_score_adj", os.O_RDONLY))
    with pytest.raises(OSError) as info:
        procfs.open_checked("/proc/self/oom_score_adj")  # "self" is a symlink
    assert info.value.errno == errno.ELOOP
    (tmp_path / "link").symlink_to("/proc/sys/kernel/hostname")
    with pytest.raises(OSError) as info:
        procfs.open_checked(str(tmp_path / "link"))
    assert info.value.errno == errno.ELOOP
    # a path under /sys must be on sysfs (or the tmpfs of a mask)
    os.close(procfs.open_checked("/sys/kernel"))


def test_the_null_device_and_impostors(tmp_path: Path) -> None:
    os.close(procfs.open_null())
    (tmp_path / "null").symlink_to("/proc/sys/kernel/core_pattern")
    with pytest.raises(OSError, match="is a symbolic link, not the null device"):
        procfs.open_null(str(tmp_path / "null"))
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError, match=r"is not the null device \(1:3\)"):
        procfs.open_null(str(tmp_path / "file"))
    with pytest.raises(OSError, match=r"is not the null device \(1:3\)"):
        procfs.open_null("/dev/zero")
