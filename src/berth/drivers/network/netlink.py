"""pyroute2's route socket, imported without the rest of pyroute2.

pyroute2's package ``__init__`` imports every netlink family and tool it has (nftables, NDB,
wireguard, ipvs, taskstats, ...: ~65 modules, ~3 MB of the daemon's memory and ~25 ms of its
start-up) where berth uses the route socket alone. The package is registered unexecuted (its
spec, its path), so its submodules import as usual and pull in only what they need themselves.
Nothing in berth imports ``pyroute2`` itself; a process that imported the whole package before
keeps it.
"""

from __future__ import annotations

import importlib.util
import sys

if "pyroute2" not in sys.modules:
    _spec = importlib.util.find_spec("pyroute2")
    if _spec is not None and _spec.submodule_search_locations is not None:
        sys.modules["pyroute2"] = importlib.util.module_from_spec(_spec)

from pyroute2.iproute.linux import AsyncIPRoute  # type: ignore[import-untyped]  # noqa: E402
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]  # noqa: E402

__all__ = ["AsyncIPRoute", "NetlinkError"]
