"""``HostConfig.StorageOpt``: per-container options of the graph driver, as dockerd checks them.

The only option Docker's overlay2 and vfs drivers know is ``size`` (a quota on the container's
writable layer), and they enforce it with XFS project quotas. berth's drivers enforce no quota,
so a ``size`` is refused rather than silently ignored: with dockerd's own text where dockerd
would refuse it too (no XFS with ``pquota`` under the data root), and as not implemented where
dockerd would apply it.
"""

from __future__ import annotations

import os
from pathlib import Path

from berth.errors import InvalidParameter, Unimplemented

OVERLAY_NO_QUOTA = "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"
VFS_NO_QUOTA = "Filesystem does not support, or has not enabled quotas"
_PQUOTA = {"pquota", "prjquota", "pqnoenforce"}


def _unescape(field: str) -> str:
    return field.encode().decode("unicode_escape") if "\\" in field else field


def backing_mount(path: Path, mounts: str = "/proc/self/mounts") -> tuple[str, set[str]]:
    """(filesystem type, mount options) of the mount that holds ``path``."""
    best, fstype, options = "", "", set()
    target = os.path.realpath(path)
    try:
        with open(mounts) as f:
            lines = f.read().splitlines()
    except OSError:
        return "", set()
    for line in lines:
        fields = line.split()
        if len(fields) < 4:
            continue
        point = _unescape(fields[1])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, fstype, options = point, fields[2], set(fields[3].split(","))
    return fstype, options


def check(opts: dict[str, str] | None, driver: str, data_root: Path) -> None:
    """Refuse what the graph driver cannot do (dockerd's texts)."""
    if not opts:
        return
    keys = {k.lower() for k in opts}
    if "size" in keys:
        fstype, options = backing_mount(data_root)
        quota = fstype == "xfs" and bool(options & _PQUOTA)
        if not quota:
            raise InvalidParameter(OVERLAY_NO_QUOTA if driver == "overlay2" else VFS_NO_QUOTA)
        raise Unimplemented(f"--storage-opt size: berth's {driver} driver does not set XFS project quotas yet")
    for key in sorted(keys):
        raise InvalidParameter(f"Unknown option {key}")
