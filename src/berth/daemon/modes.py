"""Who may reach what berthd keeps on disk: root, and nobody else.

The model: a container writes setuid binaries and device nodes into its layer, and its
environment (passwords) sits in its records; a host user who can walk into the data root can run
the one and open the other. So, as Docker does (0700/0710 directories, 0600 files) or stricter:

- the data root, the exec root and every directory in them that leads to a layer, a container,
  a volume, a log, a blob or a temp file is 0700;
- the database (and its ``-wal``/``-shm``), container configs and the monitors' state files are
  0600; monitor sockets 0600; the API socket 0660 (:mod:`berth.api.server`);
- what a container sees as its own (a layer's ``diff/``, a volume's ``_data``, the ``hosts``,
  ``hostname`` and ``resolv.conf`` it bind-mounts) keeps its mode: the directories above cut the
  host's path to it, and the container's view is unchanged.

With ``--userns-remap`` the container's root is an unprivileged host uid that must walk to its
rootfs, its ``hosts`` files and its volumes: as dockerd does, the directories on those paths (the
data root, ``containers/`` and each container's, ``volumes/`` and each volume's) are 0711 then,
searchable but not listable (:func:`remapped`, called once at start-up); nothing in them gets
more than it had, and a volume's ``_data`` belongs to the remapped root.

The code that creates each of these gives it its mode; :func:`secure_data_root` and
:func:`secure_exec_root` also fix roots that an older berth (or an administrator) left open,
once at start-up, before anything is opened::

    secure_data_root(Path("/var/lib/berth")); secure_exec_root(Path("/run/berth"))
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
LOG_FILE = 0o640  # Docker's json-file mode, inside a private directory

_CONTAINER_ID = re.compile(r"^[0-9a-f]{64}$")
# data-root subdirectories berthd and its drivers keep private (the drivers fix their own trees)
_DATA_DIRS = ("containers", "tmp", "volumes", "blobs", "blobs/sha256", "overlay2", "overlay2/l", "vfs", "vfs/dir")
_DATABASE = "berth.db"
# --userns-remap: the remapped root's host (uid, gid), set once at start-up (one daemon per process)
_REMAPPED: list[tuple[int, int]] = []


def remapped(root: tuple[int, int]) -> None:
    """The daemon runs containers remapped onto ``root``: see the module's docstring."""
    _REMAPPED[:] = [root]


def remapped_root() -> tuple[int, int] | None:
    return _REMAPPED[0] if _REMAPPED else None


def path_dir_mode() -> int:
    """The mode of a directory on a container's path to its files (0711 when remapped)."""
    return 0o711 if _REMAPPED else PRIVATE_DIR


def private_root(path: Path) -> None:
    """Create ``path`` (and missing parents) and make it 0700 whatever it was."""
    path.mkdir(mode=path_dir_mode(), parents=True, exist_ok=True)
    _restrict(path, path_dir_mode(), exact=True)


def secure_data_root(root: Path) -> None:
    """Make the data root private, and everything in it that an older berth left open."""
    private_root(root)
    for name in _DATA_DIRS:
        _restrict(root / name, path_dir_mode() if name in ("containers", "volumes") else PRIVATE_DIR, exact=True)
    # SQLite gives -wal and -shm the database file's mode: create it 0600 before it opens it.
    os.close(os.open(root / _DATABASE, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE))
    for suffix in ("", "-wal", "-shm", "-journal"):
        _restrict(root / (_DATABASE + suffix), PRIVATE_FILE, exact=True)
    for cdir in _children(root / "containers"):
        _restrict(cdir, path_dir_mode(), exact=True)
        _restrict(cdir / "config.json", PRIVATE_FILE)
        for log in cdir.glob(f"{cdir.name}-json.log*"):
            _restrict(log, LOG_FILE)
    for vdir in _children(root / "volumes"):
        _restrict(vdir, path_dir_mode(), exact=True)  # not its _data: that is the container's


def secure_exec_root(root: Path) -> None:
    """Make the exec root private, and the monitors' directories and files in it."""
    private_root(root)
    for cdir in _children(root):
        if not _CONTAINER_ID.match(cdir.name):
            continue
        _restrict(cdir, PRIVATE_DIR, exact=True)
        for entry in _children(cdir, dirs=False):
            _restrict(entry, LOG_FILE if entry.name == "monitor.log" else PRIVATE_FILE)


def _children(path: Path, dirs: bool = True) -> list[Path]:
    try:
        entries = list(os.scandir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False) == dirs and not e.is_symlink()]


def _restrict(path: Path, allowed: int, exact: bool = False) -> None:
    """chmod ``path`` to ``allowed`` (``exact``), or take away the bits ``allowed`` lacks;
    symlinks and missing paths are left alone."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        return
    current = stat.S_IMODE(info.st_mode)
    wanted = allowed if exact else current & allowed
    if wanted != current:
        os.chmod(path, wanted)
