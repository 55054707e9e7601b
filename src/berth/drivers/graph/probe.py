"""Probe once whether overlayfs works under a given directory.

The model: the only reliable test is a real mount. The probe builds lower/upper/work/merged in a
temp dir under ``root`` and mounts an overlay there inside a throw-away mount namespace
(``unshare --mount``), so nothing ever appears in the daemon's mount table and nothing needs
unmounting. The answer is cached per directory::

    overlay_supported(Path("/var/lib/berth/overlay2"))   # True on ext4/xfs with overlay loaded
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path


def _filesystem_listed() -> bool:
    try:
        with open("/proc/filesystems") as f:
            return any(line.split()[-1] == "overlay" for line in f if line.strip())
    except OSError:
        return False


@cache
def overlay_supported(root: Path) -> bool:
    """Whether an overlay mount with an upper dir under ``root`` succeeds on this kernel."""
    if not _filesystem_listed():
        subprocess.run(["modprobe", "overlay"], capture_output=True, check=False)
        if not _filesystem_listed():
            return False
    root.mkdir(parents=True, exist_ok=True)
    probe = Path(tempfile.mkdtemp(prefix=".probe-", dir=root))
    try:
        for name in ("lower", "upper", "work", "merged"):
            (probe / name).mkdir()
        options = f"lowerdir={probe}/lower,upperdir={probe}/upper,workdir={probe}/work"
        result = subprocess.run(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "mount",
                "-t",
                "overlay",
                "overlay",
                "-o",
                options,
                str(probe / "merged"),
            ],
            capture_output=True,
            check=False,
        )
        return result.returncode == 0
    except FileNotFoundError:
        return False  # no unshare/mount binaries: treat as unsupported, vfs still works
    finally:
        shutil.rmtree(probe, ignore_errors=True)
