"""``HostConfig.Runtime``: the runtimes a container may ask for, and how each runs.

``native`` is berth's own libcontainer behind the monitor (the default: the fastest, and what
every other part of berth is measured with). Every other name is an OCI runtime binary the
monitor drives (the ``oci`` exec driver, :mod:`berth.shim.oci`): ``runc`` is known by default
(Debian's ``/usr/sbin/runc``), and so is ``io.containerd.runc.v2``, the name dockerd 25+ lists
and accepts for the same runc; more come from ``--add-runtime NAME=PATH`` and daemon.json
``"runtimes": {"NAME": {"path": "...", "runtimeArgs": [...]}}``. ``--default-runtime`` (daemon.json
``default-runtime``) names what an empty ``HostConfig.Runtime`` becomes. Any other name is Docker's
400 ``unknown or invalid runtime name: NAME`` at create, before anything is made.

    >>> table = Runtimes({"crun": {"path": "/usr/bin/crun"}})
    >>> table.check(""), table.check("crun"), table.binary("crun").path
    ('native', 'crun', '/usr/bin/crun')
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from typing import Any

from berth.errors import InvalidParameter

NATIVE = "native"
RUNC = "runc"
RUNC_V2 = "io.containerd.runc.v2"  # dockerd 25+: the containerd shim's name, runc underneath
DEFAULT_RUNTIME = NATIVE
RESERVED = (NATIVE, RUNC, RUNC_V2)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class OciBinary:
    """An OCI runtime binary: its name (also its state directory's), path and global options."""

    name: str
    path: str
    args: tuple[str, ...] = ()


def _runc_path() -> str:
    return shutil.which("runc") or "/usr/sbin/runc"


class Runtimes:
    """The daemon's table of runtimes: ``added`` as daemon.json's ``runtimes`` object."""

    def __init__(self, added: dict[str, Any] | None = None, default: str = "") -> None:
        runc = OciBinary(RUNC, _runc_path())
        self.binaries: dict[str, OciBinary] = {RUNC: runc, RUNC_V2: OciBinary(RUNC, runc.path)}
        for name, entry in (added or {}).items():
            if name in RESERVED:
                raise InvalidParameter(f"runtime name '{name}' is reserved")
            if not _NAME.match(name):
                raise InvalidParameter(f"invalid runtime name {name!r}: letters, digits, '_', '.', '-'")
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not entry["path"]:
                raise InvalidParameter(f"runtime {name}: a path is required")
            args = entry.get("runtimeArgs") or []
            if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
                raise InvalidParameter(f"runtime {name}: runtimeArgs must be a list of strings")
            path = entry["path"] if "/" in entry["path"] else (shutil.which(entry["path"]) or entry["path"])
            self.binaries[name] = OciBinary(name, path, tuple(args))
        self.default = default or DEFAULT_RUNTIME
        if self.default != NATIVE and self.default not in self.binaries:
            raise InvalidParameter(f"specified default runtime '{self.default}' does not exist")

    def check(self, name: str | None) -> str:
        """The runtime name to record for a create request; InvalidParameter for an unknown one."""
        if not name:
            return self.default
        if name != NATIVE and name not in self.binaries:
            raise InvalidParameter(f"unknown or invalid runtime name: {name}")
        return name

    def binary(self, name: str | None) -> OciBinary | None:
        """The binary a container's recorded runtime runs on; None for berth's native runtime.
        A name no longer configured (a restart with other flags) is an InvalidParameter."""
        name = self.check(name)
        return None if name == NATIVE else self.binaries[name]

    def info(self) -> dict[str, dict[str, Any]]:
        """``/info`` ``Runtimes``: each name with its path (and runtimeArgs, as dockerd shows them)."""
        out: dict[str, dict[str, Any]] = {NATIVE: {"path": "berth-native"}}
        for name, b in sorted(self.binaries.items()):
            out[name] = {"path": b.path, **({"runtimeArgs": list(b.args)} if b.args else {})}
        return out


def parse_add_runtime(items: list[str]) -> dict[str, dict[str, Any]]:
    """``--add-runtime NAME=PATH`` flags as daemon.json ``runtimes`` entries."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise InvalidParameter(f"invalid --add-runtime {item!r}: expected NAME=PATH")
        out[name] = {"path": path}
    return out


DEFAULTS = Runtimes()


def check(name: str | None) -> str:
    """:meth:`Runtimes.check` of the default table (no runtimes added)."""
    return DEFAULTS.check(name)
