"""A cgroup made and joined ahead of its container, then renamed to the container's (cgroup v1).

Two things on every start's path cost more than they do: making the container's cgroup (a
directory in each hierarchy: ten on a hybrid host, the memory controller's alone 1-2 ms) and
moving its init in (a migration takes ``cgroup_threadgroup_rwsem``, which after a quiet spell
waits out an RCU grace period; :mod:`.warm`). A process forked ahead of need -- the spare shim's
standby helper -- can do both before the container is known: it makes
``<parent>/berth-standby-<pid>`` in every hierarchy and moves itself in. When the container
comes, each v1 directory is renamed to the container's name (cgroup v1 renames within a
parent), a hybrid host's cgroup2 membership directory (cgroup2 has no rename) is made and
joined, and the init the helper forks is born inside: on the way nothing but that one
directory is made and one migration done.

    spot = Placeholder.make("berth-abc")           # ahead: None where it cannot be done
    if spot.fits("berth-abc/<id>", resources):      # same parent, no memory or pids limit
        spot.adopt("berth-abc/<id>")                # renamed; the caller is inside
        rest = spot.remaining(resources)            # the limits (the default device rules are there)
        if rest is not None:
            cgroup.create(rest)
    spot.discard()                                  # no container came: leave, remove

Only where the caller's presence cannot matter: a memory limit would count the helper's pages
and a pids limit the helper itself (``--pids-limit 1`` could not fork the init), so such a
container takes the usual way (:meth:`fits`). The helper leaves the cgroup by exiting, before
the container starts (the shim waits for it).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from berth.errors import SystemFailure
from berth.libcontainer.cgroups import files, is_unified
from berth.libcontainer.cgroups.files import P
from berth.libcontainer.cgroups.resources import ALLOW_ALL_DEVICES, DEFAULT_DEVICE_RULES, Resources
from berth.libcontainer.cgroups.v1 import V1Cgroup
from berth.libcontainer.record import replace

PREFIX = "berth-standby-"
_DEFAULT_RULES = frozenset(DEFAULT_DEVICE_RULES)
_NOTHING = Resources()  # a placeholder's own: made with Docker's default device rules
V2_MEMBERSHIP = "unified"  # a hybrid host's cgroup2 mount, which has no rename


class Placeholder:
    """``<parent>/berth-standby-<pid>``: made and joined by process ``pid``."""

    __slots__ = ("parent", "root", "pid", "cgroup", "maker")

    def __init__(self, parent: str, root: str, pid: int) -> None:
        self.parent, self.root, self.pid = parent.strip("/"), root, pid
        self.cgroup = V1Cgroup(name_for(self.parent, pid), root)
        self.maker = 0  # os.getpid() of the process that made and joined it (0: none)

    @classmethod
    def make(cls, parent: str, root: str = "/sys/fs/cgroup", pid: int = 0) -> Placeholder | None:
        """In the process that will fork an init (or become one): its placeholder made and
        joined; None on a cgroup v2 host, without a parent, or when the kernel refuses (nothing
        is left then). ``pid``: the host pid it is named after (default the caller's; a
        standby's twin, pid 1 in a pid namespace of its own, names it after its standby, which
        :func:`remove_left` is called with)."""
        if not parent.strip("/") or is_unified(root):
            return None
        spot = cls(parent, root, pid or os.getpid())
        spot.maker = os.getpid()
        try:
            spot.cgroup.create(Resources())  # Docker's default device rules: most containers'
            spot.cgroup.add(0)
        except (OSError, SystemFailure):
            spot.discard()
            return None
        return spot

    def fits(self, name: str, resources: Resources) -> bool:
        """Whether the container's cgroup ``name`` can be this one: under the same parent, and
        without a limit the caller's own presence would count against."""
        return (
            os.path.dirname(name.strip("/")) == self.parent
            and resources.memory is None
            and resources.memory_swap is None
            and (resources.pids_limit is None or resources.pids_limit <= 0)
            and not resources.has_extras
            and resources.device_rules != ALLOW_ALL_DEVICES  # (a placeholder denies the rest)
        )

    @staticmethod
    def remaining(resources: Resources) -> Resources | None:
        """What is left to write once adopted, None for nothing (the directories are there,
        made and renamed, and so are Docker's default device rules: :meth:`make`). The device
        rules are the placeholder's already when they are Docker's defaults in any order -- a
        v1 device list is deny-all and then the union of the allow lines, the same whatever
        their order (Docker's spec lists them in another than runc's) -- and a different list
        is written over them whole."""
        if frozenset(resources.device_rules) != _DEFAULT_RULES:
            return resources
        if replace(resources, device_rules=DEFAULT_DEVICE_RULES) == _NOTHING:
            return None  # what the placeholder holds already: not even a mkdir to retry
        return replace(resources, device_rules=ALLOW_ALL_DEVICES)

    def adopt(self, name: str) -> bool:
        """Rename every v1 directory to ``name`` and join ``name`` in a hybrid host's cgroup2
        membership hierarchy; the caller is then in cgroup ``name`` everywhere. False (nothing
        renamed, the placeholder discarded) when the kernel refuses, e.g. ``name`` exists."""
        done: list[tuple[P, P]] = []
        try:
            for ctrl, base in self.cgroup.hierarchies().items():
                old, new = base / self.cgroup.name, base / name.strip("/")
                if ctrl != V2_MEMBERSHIP:
                    os.rename(old, new)
                    done.append((old, new))
            unified = self.cgroup.hierarchies().get(V2_MEMBERSHIP)
            if unified is not None:  # cgroup2: made, joined, the placeholder removed
                new = unified / name.strip("/")
                files.mkdir(new)
                files.write(new / "cgroup.procs", 0)
                os.rmdir(unified / self.cgroup.name)
        except (OSError, SystemFailure):
            for old, new in reversed(done):
                _quietly(os.rename, new, old)
            self.discard()
            return False
        return True

    def discard(self) -> None:
        """Leave the placeholder for its parent (when the caller is the process inside) and
        remove it."""
        inside = self.maker == os.getpid()
        for path in self.cgroup.dirs():
            if inside:
                _quietly(files.write, P(os.path.dirname(path)) / "cgroup.procs", 0)
            _quietly(os.rmdir, path)


def name_for(parent: str, pid: int) -> str:
    return f"{parent.strip('/')}/{PREFIX}{pid}"


def remove_left(parent: str, pid: int, root: str = "/sys/fs/cgroup") -> None:
    """After process ``pid`` is gone (killed before it could discard its placeholder): remove
    what it left. A placeholder in use or gone already is left alone."""
    if parent.strip("/") and not is_unified(root):
        for path in V1Cgroup(name_for(parent, pid), root).dirs():
            _quietly(os.rmdir, path)


def sweep(parent: str, root: str = "/sys/fs/cgroup") -> None:
    """Remove every empty placeholder under ``parent`` (those of standbys killed together with
    their spare), before the parent itself is removed."""
    if not parent.strip("/") or is_unified(root):
        return
    for base in V1Cgroup(parent, root).dirs():
        try:
            names = [n for n in os.listdir(base) if n.startswith(PREFIX)]
        except OSError:
            continue  # no such parent in this hierarchy: nothing to sweep
        for n in names:
            _quietly(os.rmdir, os.path.join(base, n))


def _quietly(fn: Callable[..., object], *args: object) -> None:
    """A clean-up step: it may find its work done (ENOENT), the cgroup busy (EBUSY: a process
    still inside, whose own clean-up comes later) or the kernel refusing; none of that is worth
    failing the caller (a start, a dismissal) for, and what is left is swept at shutdown."""
    try:
        fn(*args)
    except (OSError, SystemFailure):
        return
