"""remove_tree's reading of mountinfo: escapes undone, only what is at or below the path,
deepest first, a stacked mount before the one it covers."""

from __future__ import annotations

from pathlib import Path

from berth.libcontainer.removetree import mounts_under

MOUNTINFO = (
    b"27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
    b"40 27 0:50 / /run/berth rw - tmpfs tmpfs rw\n"
    b"41 40 0:51 / /run/berth/c1/rootfs rw - overlay overlay rw,lowerdir=/x\n"
    b"42 40 254:0 /vol/_data /run/berth/c1/idmapped/0 rw,idmapped - ext4 /dev/vda rw\n"
    b"43 41 0:52 / /run/berth/c1/rootfs/proc rw - proc proc rw\n"
    b"44 40 254:0 /a /run/berth/c1/with\\040space\\011tab\\012nl\\134bs rw - ext4 /dev/vda rw\n"
    b"45 41 254:0 /b /run/berth/c1/rootfs rw - ext4 /dev/vda rw\n"
    b"46 40 254:0 /c /run/berth/c10/rootfs rw - ext4 /dev/vda rw\n"
    b"47 40 254:0 /d /run/berth/c1 rw - ext4 /dev/vda rw\n"
)


def test_mounts_under(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_bytes(MOUNTINFO)
    assert mounts_under("/run/berth/c1/", str(info)) == [
        "/run/berth/c1/rootfs/proc",
        "/run/berth/c1/idmapped/0",
        "/run/berth/c1/rootfs",  # 45, stacked on 41: the top one first
        "/run/berth/c1/with space\ttab\nnl\\bs",
        "/run/berth/c1/rootfs",
        "/run/berth/c1",  # the path itself, last; c10 is not below c1
    ]
    assert mounts_under("/run/berth/c2", str(info)) == []
