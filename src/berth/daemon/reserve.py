"""Space held back on the data root, so that containers can be removed when the disk is full.

A removal deletes the container's files first and its records last, but the records live in
SQLite, whose write-ahead log needs a few new pages for any change. When something else filled
the disk, the container's own files may free too little for that. berthd therefore keeps
``RESERVE`` bytes allocated in ``<data_root>/reserved-space``: a removal whose record update
finds the disk full releases them and tries again, and the daemon takes the reserve back once
there is room again (never from a disk that is nearly full).

    reserve = Reserve(data_root / "reserved-space")
    reserve.take()        # at start-up, and after removals: True if it is held
    reserve.release()     # True if there was something to release
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("berth.daemon")

RESERVE = 1 << 20  # bytes: many removals' worth of WAL pages
ROOM_FACTOR = 4  # take the reserve back only while at least this many times its size is free


class Reserve:
    def __init__(self, path: Path, size: int = RESERVE) -> None:
        self.path = path
        self.size = size

    def held(self) -> bool:
        try:
            return self.path.stat().st_blocks * 512 >= self.size
        except FileNotFoundError:
            return False

    def take(self) -> bool:
        """Allocate the reserve if it is not held and the disk has room; True if held."""
        if self.held():
            return True
        st = os.statvfs(self.path.parent)
        if st.f_bavail * st.f_frsize < ROOM_FACTOR * self.size:
            return False  # the user's data comes first; try again later
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)  # real blocks, not a sparse file
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            log.warning("reserve %d bytes in %s: %s", self.size, self.path, exc.strerror)
            return False
        return True

    def release(self) -> bool:
        """Free the reserve; False if it was not held (nothing more to free)."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        log.warning("the data root %s is full: released its %d reserved bytes", self.path.parent, self.size)
        return True
