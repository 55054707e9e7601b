"""The test harness's own pure parts: the busybox tar, mountinfo parsing, ELF checks."""

from __future__ import annotations

import hashlib
import sys
import tarfile
from pathlib import Path

import pytest

import harness

needs_busybox = pytest.mark.skipif(
    not (harness.BUSYBOX.exists() and harness.is_static_elf(harness.BUSYBOX)),
    reason=f"{harness.BUSYBOX} missing or not static (bash scripts/setup.sh installs busybox-static)",
)


@needs_busybox
def test_busybox_tar_is_deterministic_and_complete(tmp_path: Path) -> None:
    a = harness.build_busybox_tar(tmp_path / "a.tar")
    b = harness.build_busybox_tar(tmp_path / "b.tar")
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    with tarfile.open(a) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin/busybox"].isfile() and members["bin/busybox"].mode == 0o755
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "/bin/busybox"
    assert members["tmp"].mode == 0o1777
    assert all(m.uid == 0 and m.gid == 0 for m in members.values())
    with tarfile.open(a) as tar:
        passwd = tar.extractfile("etc/passwd")
        assert passwd is not None and passwd.read().startswith(b"root:x:0:0:")
    # every entry's parent directory is in the tar too
    for name in members:
        if "/" in name:
            assert members[name.rsplit("/", 1)[0]].isdir(), name


def test_static_elf_detection() -> None:
    assert not harness.is_static_elf(Path(sys.executable).resolve())  # CPython is dynamically linked
    assert not harness.is_static_elf(Path(__file__))  # not ELF at all


def test_mountinfo_unescape() -> None:
    assert harness._unescape_mountinfo(r"/tmp/a\040b\011c\134d") == "/tmp/a b\tc\\d"


def test_mounts_under_matches_whole_path_components(tmp_path: Path) -> None:
    # /proc itself is mounted; a sibling with the same prefix is not "under" it
    assert harness.mounts_under(Path("/proc"))[-1] == "/proc"
    assert harness.mounts_under(Path("/pro")) == []
    assert harness.mounts_under(tmp_path) == []


def test_socket_path_limit_is_checked(tmp_path: Path) -> None:
    d = harness.Berthd(root=tmp_path / ("x" * 120))
    with pytest.raises(harness.DaemonError, match="socket path too long"):
        d.prepare()
