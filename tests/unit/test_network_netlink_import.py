"""berth's netlink import takes pyroute2's route socket, not the whole package."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
from berth.drivers.network.links import HostLinks
from berth.drivers.network.netlink import AsyncIPRoute, NetlinkError
print(json.dumps({
    "loaded": sorted(m for m in sys.modules if m.startswith("pyroute2")),
    "route": AsyncIPRoute.__module__,
    "error": NetlinkError.__module__,
}))
"""


def test_only_the_route_socket_of_pyroute2_is_imported() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    seen = json.loads(out)
    assert seen["route"] == "pyroute2.iproute.linux"
    assert seen["error"] == "pyroute2.netlink.exceptions"
    loaded = set(seen["loaded"])
    # what the package's __init__ would have imported, and the route socket never needs
    for family in ("pyroute2.ndb.main", "pyroute2.ipdb", "pyroute2.netlink.nfnetlink.nftsocket",
                   "pyroute2.netlink.generic.wireguard", "pyroute2.ipvs", "pyroute2.conntrack"):
        assert family not in loaded, family
