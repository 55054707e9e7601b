"""Network jobs: list (with Docker's filters), inspect, create, remove, prune, connect, disconnect.

Until the network driver lands there are only the pre-defined ``none``, ``host`` and ``bridge``
networks (``networkstore``). They answer as a dockerd's do: listed and inspected with Docker's
fields, refused for removal with a 403. Creating a network, or connecting a container to one,
needs a driver berth does not have yet: that is a 501 naming the driver (docs/decisions.md).
"""

from __future__ import annotations

import copy
import re
from typing import TYPE_CHECKING, Any

from berth.engine import Job
from berth.errors import Conflict, Forbidden, InvalidParameter, NotFound, Unavailable, Unimplemented

if TYPE_CHECKING:
    from berth.container.record import Container
    from berth.daemon.daemon import Daemon

FILTERS = ("driver", "type", "name", "id", "label", "scope", "dangling")
NOT_A_MANAGER = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect '
    "this node to swarm and try again."
)
_TRUE, _FALSE = ("true", "1"), ("false", "0")


def network_of(c: Container) -> str:
    """The name of the network a container's ``NetworkMode`` puts it on."""
    mode = c.host_config.get("NetworkMode") or "default"
    return "bridge" if mode == "default" else mode


def fill_ids(d: Daemon, endpoints: dict[str, Any]) -> None:
    """A container's ``NetworkSettings.Networks``: each ``NetworkID`` is the network's id."""
    for name, endpoint in endpoints.items():
        endpoint["NetworkID"] = d.networks.id_of(name)


def _containers(d: Daemon, name: str) -> dict[str, Any]:
    """Docker's ``Containers`` of a network: its running containers' endpoints."""
    out: dict[str, Any] = {}
    for c in sorted(d.containers.values(), key=lambda c: c.created):
        if c.state.running and network_of(c) == name:
            out[c.id] = {"Name": c.name, "EndpointID": "", "MacAddress": "", "IPv4Address": "", "IPv6Address": ""}
    return out


def _regex_match(pattern: str, text: str) -> bool:
    # Docker's filters.Match: a value is a regular expression searched in the field (so "os"
    # matches "host"); one that does not compile matches nothing.
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def _labels_match(labels: dict[str, str], wanted: list[str]) -> bool:
    for item in wanted:
        key, eq, value = item.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


def _filter(d: Daemon, nets: list[dict[str, Any]], filters: dict[str, list[str]]) -> list[dict[str, Any]]:
    for key in filters:
        if key not in FILTERS:
            raise InvalidParameter(f"Invalid filter '{key}'")
    for value in filters.get("type", []):
        if value not in ("builtin", "custom"):
            raise InvalidParameter(f"invalid filter: 'type'='{value}'")
    dangling: bool | None = None
    for value in filters.get("dangling", []):
        if value.lower() in _TRUE:
            dangling = True
        elif value.lower() in _FALSE:
            dangling = False
        else:
            raise InvalidParameter(
                "invalid value for filter 'dangling', must be \"true\" (or \"1\"), or \"false\" (or \"0\")"
            )
    out = []
    for n in nets:
        builtin = n["Name"] in ("none", "host", "bridge")
        checks = (
            ("name", lambda vs, n=n: any(_regex_match(v, n["Name"]) for v in vs)),
            ("id", lambda vs, n=n: any(_regex_match(v, n["Id"]) for v in vs)),
            ("driver", lambda vs, n=n: n["Driver"] in vs),
            ("scope", lambda vs, n=n: n["Scope"] in vs),
            ("type", lambda vs, b=builtin: ("builtin" if b else "custom") in vs),
            ("label", lambda vs, n=n: _labels_match(n.get("Labels") or {}, vs)),
        )
        if not all(check(filters[key]) for key, check in checks if filters.get(key)):
            continue
        if dangling is not None:
            used = builtin or bool(_containers(d, n["Name"]))
            if used == dangling:
                continue
        out.append(n)
    return out


def _view(d: Daemon, n: dict[str, Any], containers: bool) -> dict[str, Any]:
    view = copy.deepcopy(n)
    view["Containers"] = _containers(d, n["Name"]) if containers else {}
    # Docker's key order: Containers between ConfigOnly and Options.
    ordered = {k: view[k] for k in view if k not in ("Containers", "Options", "Labels")}
    ordered.update(Containers=view["Containers"], Options=view["Options"], Labels=view["Labels"])
    return ordered


async def list_(d: Daemon, job: Job) -> list[dict[str, Any]]:
    nets = _filter(d, d.networks.all(), job.args.get("filters") or {})
    return [_view(d, n, containers=False) for n in nets]


async def inspect(d: Daemon, job: Job) -> dict[str, Any]:
    ref = job.args["id"]
    n = d.networks.find(ref)
    scope = job.args.get("scope") or ""
    if scope and scope != n["Scope"]:
        raise NotFound(f"network {ref} not found")
    return _view(d, n, containers=True)


def _predefined(name: str) -> bool:
    return name in ("none", "host", "bridge")


async def create(d: Daemon, job: Job) -> dict[str, Any]:
    body = job.args["body"]
    name = body.get("Name")
    if not isinstance(name, str):
        raise InvalidParameter("json: cannot unmarshal into Go struct field NetworkCreateRequest.Name of type string")
    if _predefined(name):
        raise Forbidden(f"operation is not permitted on predefined {name} network ")
    if not name or not re.match(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$", name):
        raise InvalidParameter(f"invalid name: {name}")
    if any(n["Name"] == name for n in d.networks.all()):
        raise Conflict(f"network with name {name} already exists")
    driver = body.get("Driver") or "bridge"
    if driver in ("host", "null"):
        raise Forbidden(f'only one instance of "{driver}" network is allowed')
    if driver == "overlay":
        raise Unavailable(NOT_A_MANAGER)
    if driver in ("bridge", "macvlan", "ipvlan"):
        raise Unimplemented(
            f"create network {name}: the {driver} network driver is not available in berth yet "
            "(only the pre-defined none, host and bridge networks exist)"
        )
    raise NotFound(f'plugin "{driver}" not found')


async def remove(d: Daemon, job: Job) -> None:
    n = d.networks.find(job.args["id"])
    if _predefined(n["Name"]):
        raise Forbidden(f"{n['Name']} is a pre-defined network and cannot be removed")
    raise Unimplemented(f"remove network {n['Name']}: berth has no network driver for it")


async def prune(d: Daemon, job: Job) -> dict[str, Any]:
    # Only pre-defined networks exist, and they are never pruned.
    for key in job.args.get("filters") or {}:
        if key not in ("label", "label!", "until"):
            raise InvalidParameter(f"Invalid filter '{key}'")
    return {"NetworksDeleted": None}


async def connect(d: Daemon, job: Job) -> None:
    container = (job.args.get("body") or {}).get("Container") or ""
    c = d.find(container)
    n = d.networks.find(job.args["id"])
    verb = "connect" if job.args["connect"] else "disconnect"
    raise Unimplemented(
        f"{verb} container {c.name} {'to' if verb == 'connect' else 'from'} network {n['Name']}: "
        "berth cannot change a container's networks yet (no network driver)"
    )


HANDLERS = {
    "network.list": list_,
    "network.inspect": inspect,
    "network.create": create,
    "network.remove": remove,
    "network.prune": prune,
    "network.connect": connect,
}
