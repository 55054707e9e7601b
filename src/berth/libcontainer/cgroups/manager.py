"""The one interface both cgroup managers (v1/hybrid and v2) offer, and what they share.

A manager is one container's cgroup: a name (``"berth-<tag>/<container id>"``) under a root.
Callers hold a :class:`Cgroup` and never ask which version it is; what differs (the files, the
freezer, the device filter, the accounting) lives in :mod:`.v1` and :mod:`.v2`, and what does
not (joining, listing, killing and removing) in :class:`CgroupBase` over the manager's
``paths()``.
"""

from __future__ import annotations

import errno
import os
import time

from berth.errors import SystemFailure
from berth.libcontainer.cgroups import files
from berth.libcontainer.cgroups.files import P
from berth.libcontainer.cgroups.resources import Resources, ResourceUpdate, Stats

# typing costs an OCI runtime's every command: the protocol is for type checkers only (at run
# time the name is the shared base class)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import ClassVar, Protocol
else:
    Protocol = object

SIGKILL = 9


class Cgroup(Protocol):
    """One container's cgroup, in every hierarchy the host mounts under ``root``."""

    name: str
    root: P
    version: ClassVar[int]  # 1 (v1 or hybrid) or 2 (unified)

    def paths(self) -> list[Path]:
        """The cgroup's directory in each hierarchy (one on v2)."""
        ...

    def dirs(self) -> list[P]:
        """:meth:`paths` as strings (what the managers use themselves: no pathlib)."""
        ...

    def create(self, resources: Resources) -> None:
        """Make the directories and write the limits; a failed write removes what was made."""
        ...

    def update(self, update: ResourceUpdate) -> None:
        """Write the given fields into the live cgroup; SystemFailure says which write failed."""
        ...

    def add(self, pid: int) -> None:
        """Move ``pid`` (0 = the calling process) into the cgroup in every hierarchy."""
        ...

    def join(self, v2: bool = True) -> None:
        """Move the calling process, which must be single-threaded (a fork child), into the
        cgroup in every hierarchy: :meth:`add` (0), without the kernel's global migration lock
        where a hierarchy allows (a v1 ``tasks`` file; :mod:`.warm` says why it matters).
        ``v2=False``: not the cgroup2 directory (:meth:`v2_dir`), where it was born."""
        ...

    def v2_dir(self) -> P | None:
        """The cgroup's directory in the cgroup2 hierarchy (a hybrid host's ``unified``, a v2
        host's only one), None without: where a child can be born with clone3's
        CLONE_INTO_CGROUP (:func:`berth.libcontainer.kernel.fork_into_cgroup`)."""
        ...

    def exists(self) -> bool: ...

    def pids(self) -> list[int]: ...

    def freeze(self) -> None:
        """Freeze every task; returns once the kernel says all are frozen."""
        ...

    def thaw(self) -> None: ...

    def frozen(self) -> bool:
        """Whether the cgroup is frozen (one without a freezer file, e.g. gone, is not)."""
        ...

    def oom_killed(self) -> bool:
        """True when the kernel OOM-killed a process in this cgroup since it was made."""
        ...

    def stats(self) -> Stats: ...

    def destroy(self, timeout: float = 5.0) -> None:
        """Kill what is left inside, then remove the directories (idempotent)."""
        ...

    def remove_if_empty(self) -> bool:
        """Remove the directories if no process and no child cgroup is left; never kills."""
        ...


class CgroupBase:
    """What both managers do alike over ``paths()``; subclasses write the version's files."""

    version: ClassVar[int]

    def __init__(self, name: str, root: str | os.PathLike[str]) -> None:
        self.name = name.strip("/")
        if not self.name or ".." in self.name.split("/"):
            raise ValueError(f"bad cgroup name {name!r}")
        self.root = P(os.fspath(root))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, root={str(self.root)!r})"

    def paths(self) -> list[Path]:
        from pathlib import Path

        return [Path(d) for d in self.dirs()]

    # ---- the version's part -------------------------------------------------------------
    def dirs(self) -> list[P]:
        raise NotImplementedError

    def _create(self, resources: Resources) -> None:
        raise NotImplementedError

    def frozen(self) -> bool:
        raise NotImplementedError

    def _request_frozen(self, frozen: bool) -> tuple[P, str] | None:
        """Ask the kernel to (un)freeze; the file to poll and the line that says it is done
        (None: nothing to wait for)."""
        raise NotImplementedError

    # ---- shared -------------------------------------------------------------------------
    def create(self, resources: Resources) -> None:
        try:
            self._create(resources)
        except BaseException:
            self._rmdirs()
            raise

    def add(self, pid: int) -> None:
        for path in self.dirs():
            files.write(path / "cgroup.procs", pid)

    def join(self, v2: bool = True) -> None:
        if v2:
            self.add(0)

    def v2_dir(self) -> P | None:
        return None

    def exists(self) -> bool:
        return any(p.is_dir() for p in self.dirs())

    def pids(self) -> list[int]:
        found: set[int] = set()
        for path in self.dirs():
            try:
                found.update(int(line) for line in files.read(path / "cgroup.procs").split())
            except OSError as exc:
                if exc.errno not in files.GONE:
                    raise
                continue  # removed (ENODEV: removed between open and read, by its monitor)
        return sorted(found)

    def freeze(self) -> None:
        self._set_frozen(True)

    def thaw(self) -> None:
        self._set_frozen(False)

    def _set_frozen(self, frozen: bool, timeout: float = 5.0) -> None:
        poll = self._request_frozen(frozen)
        if poll is None:
            return
        path, want = poll
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while want not in files.read(path).splitlines():
            if time.monotonic() > deadline:
                raise SystemFailure(f"{'freeze' if frozen else 'thaw'} cgroup {self.name!r}: timed out")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def destroy(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, SIGKILL)
                except ProcessLookupError:
                    pass  # already gone: that is what we want
            if self.exists() and self._is_frozen_quietly():
                self.thaw()  # a frozen task cannot die until thawed
            if time.monotonic() > deadline:
                raise SystemFailure(f"destroy cgroup {self.name!r}: processes {pids} did not exit")
            time.sleep(0.002)
        self._rmdirs(deadline)

    def remove_if_empty(self) -> bool:
        """True if none is left. For a shared parent (``berth-<tag>``) whose containers may
        outlive the daemon. rmdir itself refuses a busy cgroup (EBUSY), so a container that
        moves in meanwhile keeps its parent."""
        paths = [p for p in self.dirs() if p.is_dir()]
        for path in paths:
            if files.read_quiet(path / "cgroup.procs").strip() or any(c.is_dir() for c in path.iterdir()):
                return False
        for path in paths:
            try:
                os.rmdir(path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                if exc.errno in (errno.EBUSY, errno.ENOTEMPTY):
                    return False
                raise SystemFailure(f"remove cgroup '{path}': {exc.strerror}") from exc
        return True

    def _is_frozen_quietly(self) -> bool:
        try:
            return self.frozen()
        except OSError as exc:
            if exc.errno not in files.GONE:
                raise
            return False

    def _rmdirs(self, deadline: float | None = None) -> None:
        for path in self.dirs():
            while True:
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    # EBUSY right after the last task exits: the kernel is still releasing it
                    if exc.errno == errno.EBUSY and deadline is not None and time.monotonic() < deadline:
                        time.sleep(0.002)
                        continue
                    raise SystemFailure(f"remove cgroup '{path}': {exc.strerror}") from exc
