"""Network jobs: list (with Docker's filters), inspect, create, remove, prune, connect, disconnect.

The network driver (``d.network``, :mod:`berth.drivers.network.driver`) owns the networks and
the running containers' endpoints; these handlers check requests as dockerd does, keep each
container record's ``Networks`` (what it asked for) in step, and publish the network events.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from berth.daemon.faults import crash_point
from berth.daemon.handlers import HandlerTable
from berth.daemon.netsettings import endpoint_links
from berth.drivers.network.config import EndpointRequest
from berth.drivers.network.model import Network
from berth.engine import Job
from berth.errors import Conflict, Forbidden, InvalidParameter, NotFound, Unavailable, Unimplemented
from berth.jobs import networks as jobs
from berth.jobs.results import JSONList, JSONObject

if TYPE_CHECKING:
    from berth.container.record import Container
    from berth.daemon.daemon import Daemon

FILTERS = ("driver", "type", "name", "id", "label", "scope", "dangling")
PREDEFINED = ("none", "host", "bridge")
NOT_A_MANAGER = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect '
    "this node to swarm and try again."
)
_TRUE, _FALSE = ("true", "1"), ("false", "0")

handlers = HandlerTable()


def network_of(c: Container) -> str:
    """The name of the network a container's ``NetworkMode`` puts it on."""
    mode = c.host_config.get("NetworkMode") or "default"
    return "bridge" if mode == "default" else mode


def _containers(d: Daemon, net: Network) -> dict[str, Any]:
    """Docker's ``Containers`` of a network: the endpoints of its running containers."""
    out: dict[str, Any] = {}
    if net.is_bridge:
        for ep in sorted(d.network.endpoints_of(net.id), key=lambda e: e.container_name):
            out[ep.container_id] = {
                "Name": ep.container_name, "EndpointID": ep.id, "MacAddress": ep.mac,
                "IPv4Address": f"{ep.ip}/{net.prefixlen}" if ep.ip else "",
                "IPv6Address": f"{ep.ip6}/{net.prefixlen6}" if ep.ip6 else "",
            }  # fmt: skip
        return out
    for c in sorted(d.live.records(), key=lambda c: c.created):
        if c.state.running and network_of(c) == net.name:
            out[c.id] = {"Name": c.name, "EndpointID": "", "MacAddress": "", "IPv4Address": "", "IPv6Address": ""}
    return out


def view(d: Daemon, net: Network, containers: bool) -> dict[str, Any]:
    """Docker's network object (``Containers`` only filled by inspect, as dockerd's list)."""
    # as dockerd: IPAM.Options as the create request gave it, null when it gave none (the CLI
    # sends {}, docker-py nothing)
    ipam_options = dict(net.ipam_options) if net.user_defined and net.ipam_options is not None else None
    return {
        "Name": net.name, "Id": net.id, "Created": net.created, "Scope": "local", "Driver": net.driver,
        "EnableIPv6": net.enable_ipv6,
        "IPAM": {"Driver": "default", "Options": ipam_options, "Config": net.ipam_config()},
        "Internal": net.internal, "Attachable": net.attachable, "Ingress": False,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
        "Containers": _containers(d, net) if containers else {},
        "Options": net.docker_options(), "Labels": dict(net.labels),
    }  # fmt: skip


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


def _in_use(d: Daemon, net: Network) -> bool:
    return bool(d.network.endpoints_of(net.id)) or any(
        net.name in c.networks or network_of(c) == net.name for c in d.live.records()
    )


def _dangling(values: list[str]) -> bool | None:
    out: bool | None = None
    for value in values:
        if value.lower() in _TRUE:
            out = True
        elif value.lower() in _FALSE:
            out = False
        else:
            raise InvalidParameter(
                "invalid value for filter 'dangling', must be \"true\" (or \"1\"), or \"false\" (or \"0\")"
            )
    return out


_NETWORK_FILTERS = ("name", "id", "driver", "scope", "type", "label")


def _network_matches(n: Network, builtin: bool, key: str, values: list[str]) -> bool:
    if key == "name":
        return any(_regex_match(v, n.name) for v in values)
    if key == "id":
        return any(_regex_match(v, n.id) for v in values)
    if key == "driver":
        return n.driver in values
    if key == "scope":
        return "local" in values
    if key == "type":
        return ("builtin" if builtin else "custom") in values
    return _labels_match(n.labels, values)


def _filter(d: Daemon, nets: list[Network], filters: dict[str, list[str]]) -> list[Network]:
    for key in filters:
        if key not in FILTERS:
            raise InvalidParameter(f"Invalid filter '{key}'")
    for value in filters.get("type", []):
        if value not in ("builtin", "custom"):
            raise InvalidParameter(f"invalid filter: 'type'='{value}'")
    dangling = _dangling(filters.get("dangling", []))
    out = []
    for n in nets:
        builtin = n.name in PREDEFINED
        if not all(_network_matches(n, builtin, key, filters[key]) for key in _NETWORK_FILTERS if filters.get(key)):
            continue
        if dangling is not None and (builtin or _in_use(d, n)) == dangling:
            continue
        out.append(n)
    return out


@handlers.on(jobs.NetworkList)
async def list_(d: Daemon, req: jobs.NetworkList, job: Job) -> JSONList:
    nets = _filter(d, list(d.network.networks.values()), req.filters)
    return [view(d, n, containers=False) for n in nets]


@handlers.on(jobs.NetworkInspect)
async def inspect(d: Daemon, req: jobs.NetworkInspect, job: Job) -> JSONObject:
    ref = req.id
    n = d.network.find(ref)
    scope = req.scope
    if scope and scope != "local":
        raise NotFound(f"network {ref} not found")
    return view(d, n, containers=True)


def _publish(d: Daemon, net: Network, action: str, extra: dict[str, str] | None = None) -> None:
    d.engine.events.publish("network", action, net.id, {"name": net.name, "type": net.driver, **(extra or {})})


@handlers.on(jobs.NetworkCreate)
async def create(d: Daemon, req: jobs.NetworkCreate, job: Job) -> JSONObject:
    body = req.body
    name = body.get("Name")
    if not isinstance(name, str):
        raise InvalidParameter("json: cannot unmarshal into Go struct field NetworkCreateRequest.Name of type string")
    if name in PREDEFINED:
        raise Forbidden(f"operation is not permitted on predefined {name} network ")
    if not name:  # dockerd 20.10 takes any other name ("test 01", "x!", " x")
        raise InvalidParameter(f"invalid name: {name}")
    if any(n.name == name for n in d.network.networks.values()):
        raise Conflict(f"network with name {name} already exists")
    driver = body.get("Driver") or "bridge"
    if driver in ("host", "null"):
        raise Forbidden(f'only one instance of "{driver}" network is allowed')
    if driver == "overlay":
        raise Unavailable(NOT_A_MANAGER)
    if driver in ("macvlan", "ipvlan"):
        raise Unimplemented(f"create network {name}: the {driver} network driver is not available in berth")
    if driver != "bridge":
        raise NotFound(f'plugin "{driver}" not found')
    ipam = body.get("IPAM") or {}
    if (ipam.get("Driver") or "default") != "default":
        raise NotFound(f'plugin "{ipam["Driver"]}" not found')
    net = await d.network.create_network(
        name=name,
        options={str(k): str(v) for k, v in (body.get("Options") or {}).items()},
        labels={str(k): str(v) for k, v in (body.get("Labels") or {}).items()},
        internal=bool(body.get("Internal")),
        attachable=bool(body.get("Attachable")),
        ipam_configs=list(ipam.get("Config") or []),
        ipam_options=None if ipam.get("Options") is None
        else {str(k): str(v) for k, v in (ipam.get("Options") or {}).items()},
        enable_ipv6=bool(body.get("EnableIPv6")),
    )
    _publish(d, net, "create")
    return {"Id": net.id, "Warning": ""}


@handlers.on(jobs.NetworkRemove)
async def remove(d: Daemon, req: jobs.NetworkRemove, job: Job) -> None:
    n = d.network.find(req.id)
    if n.name in PREDEFINED:
        raise Forbidden(f"{n.name} is a pre-defined network and cannot be removed")
    if d.network.endpoints_of(n.id):
        raise Forbidden(f"error while removing network: network {n.name} id {n.id} has active endpoints")
    await d.network.remove_network(n.id)
    _publish(d, n, "destroy")


@handlers.on(jobs.NetworkPrune)
async def prune(d: Daemon, req: jobs.NetworkPrune, job: Job) -> JSONObject:
    filters = req.filters
    for key in filters:
        if key not in ("label", "label!", "until"):
            raise InvalidParameter(f"Invalid filter '{key}'")
    deleted = []
    for n in list(d.network.networks.values()):
        if n.name in PREDEFINED or _in_use(d, n):
            continue
        if filters.get("label") and not _labels_match(n.labels, filters["label"]):
            continue
        if filters.get("label!") and _labels_match(n.labels, filters["label!"]):
            continue
        if filters.get("until") and not _before(n.created, filters["until"]):
            continue
        await d.network.remove_network(n.id)
        _publish(d, n, "destroy")
        deleted.append(n.name)
    return {"NetworksDeleted": deleted or None}


def _before(created: str, values: list[str]) -> bool:
    from berth.container.record import parse_rfc3339

    t = parse_rfc3339(created)
    for v in values:
        try:
            limit = float(v)
        except ValueError:
            limit = parse_rfc3339(v)
        if t >= limit:
            return False
    return True


def _endpoint_settings(cfg: dict[str, Any], net: Network) -> dict[str, Any]:
    ipam = cfg.get("IPAMConfig") or None
    if ipam is not None:
        ipam = {k: v for k, v in ipam.items() if k in ("IPv4Address", "IPv6Address", "LinkLocalIPs") and v} or None
    return {
        "IPAMConfig": ipam, "Links": cfg.get("Links") or None, "Aliases": list(cfg.get("Aliases") or []) or None,
        "MacAddress": cfg.get("MacAddress") or "", "DriverOpts": cfg.get("DriverOpts") or None, "NetworkID": net.id,
    }  # fmt: skip


@handlers.on(jobs.NetworkConnect)
async def connect(d: Daemon, req: jobs.NetworkConnect, job: Job) -> None:
    body = req.body
    c = d.find(body.get("Container") or "")
    if not req.connect:
        try:
            gone = d.network.find(req.id)
        except NotFound:
            if c.state.running or req.id in c.networks:
                raise
            # dockerd looks at a stopped container's own networks first
            raise Forbidden(f"container {c.id} is not connected to the network {req.id}") from None
        await _disconnect(d, c, gone, bool(body.get("Force")))
        return
    net = d.network.find(req.id)
    _check_mode(network_of(c), net)
    if net.name in c.networks:
        raise Forbidden(f"endpoint with name {c.name} already exists in network {net.name}")
    cfg = _endpoint_settings(body.get("EndpointConfig") or {}, net)
    want = (cfg.get("IPAMConfig") or {}).get("IPv4Address") or ""
    if want and not net.user_defined:
        raise InvalidParameter("user specified IP address is supported on user defined networks only")
    if cfg.get("Aliases") and not net.user_defined:
        raise InvalidParameter("network-scoped alias is supported only for containers in user defined networks")
    if c.state.running:
        want6 = (cfg.get("IPAMConfig") or {}).get("IPv6Address") or ""
        await d.network.connect(
            c.id, net, EndpointRequest(net.id, tuple(cfg.get("Aliases") or ()), want, want6, cfg.get("MacAddress") or "",
                                       endpoint_links(cfg))
        )
        crash_point("connect.after-driver")
    c.networks[net.name] = cfg
    await d.save(c)
    _publish(d, net, "connect", {"container": c.id})


def _check_mode(mode: str, net: Network) -> None:
    """dockerd's runconfig conflicts (400)."""
    if mode.startswith("container:"):
        raise InvalidParameter(
            "container sharing network namespace with another container or host cannot be connected to any other network"
        )
    if "host" in (mode, net.driver):
        raise InvalidParameter("container cannot be disconnected from host network or connected to host network")
    if mode == "none" or net.driver == "null":
        raise InvalidParameter(
            "container cannot be connected to multiple networks with one of the networks in private (none) mode"
        )


async def _disconnect(d: Daemon, c: Container, net: Network, force: bool) -> None:
    if "host" in (network_of(c), net.driver):
        raise InvalidParameter("container cannot be disconnected from host network or connected to host network")
    if net.name not in c.networks:
        # dockerd's two texts: a stopped container's, then a running one's
        the = "" if c.state.running else "the "
        raise Forbidden(f"container {c.id} is not connected to {the}network {net.name}")
    if c.state.running:
        await d.network.disconnect(c.id, net)
        crash_point("disconnect.after-driver")
    del c.networks[net.name]
    await d.save(c)
    _publish(d, net, "disconnect", {"container": c.id})
