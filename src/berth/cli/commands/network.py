"""``berth network create|ls|inspect|rm|prune|connect|disconnect``, as the docker CLI's.

$ berth network create --subnet 10.1.0.0/24 app      ->  <id>
$ berth network ls                                   ->  NETWORK ID  NAME  DRIVER  SCOPE
$ berth network connect --alias db app c1
"""

from __future__ import annotations

import json

from berth.cli.commands.inspect import _run as inspect_run
from berth.cli.commands.prune import _confirm
from berth.cli.commands.ps import checked_filters
from berth.cli.options import Command, Flag
from berth.cli.reference import path_escape
from berth.errors import BerthError, InvalidParameter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CREATE = Command(
    "network create",
    "berth network create [OPTIONS] NETWORK",
    "Create a network",
    (
        Flag(("--attachable",), help="Enable manual container attachment"),
        Flag(("--aux-address",), "list", "Auxiliary IPv4 or IPv6 addresses used by Network driver"),
        Flag(("-d", "--driver"), "value", 'Driver to manage the Network (default "bridge")'),
        Flag(("--gateway",), "list", "IPv4 or IPv6 Gateway for the master subnet"),
        Flag(("--internal",), help="Restrict external access to the network"),
        Flag(("--ip-range",), "list", "Allocate container ip from a sub-range"),
        Flag(("--ipam-driver",), "value", 'IP Address Management Driver (default "default")'),
        Flag(("--ipam-opt",), "list", "Set IPAM driver specific options"),
        Flag(("--ipv6",), help="Enable IPv6 networking"),
        Flag(("--label",), "list", "Set metadata on a network"),
        Flag(("-o", "--opt"), "list", "Set driver specific options"),
        Flag(("--subnet",), "list", "Subnet in CIDR format that represents a network segment"),
    ),
    min_args=1,
    max_args=1,
)
LS = Command(
    "network ls",
    "berth network ls [OPTIONS]",
    "List networks",
    (
        Flag(("-f", "--filter"), "list", 'Provide filter values (e.g. "driver=bridge")'),
        Flag(("--format",), "value", "Format output using a custom template"),
        Flag(("--no-trunc",), help="Do not truncate the output"),
        Flag(("-q", "--quiet"), help="Only display network IDs"),
    ),
    max_args=0,
)
INSPECT = Command(
    "network inspect",
    "berth network inspect [OPTIONS] NETWORK [NETWORK...]",
    "Display detailed information on one or more networks",
    (
        Flag(("-f", "--format"), "value", "Format output using a custom template"),
        Flag(("-s", "--size"), help="(unused)"),
        Flag(("-v", "--verbose"), help="Verbose output for diagnostics"),
    ),
    min_args=1,
)
RM = Command("network rm", "berth network rm NETWORK [NETWORK...]", "Remove one or more networks", (), min_args=1)
PRUNE = Command(
    "network prune",
    "berth network prune [OPTIONS]",
    "Remove all unused networks",
    (
        Flag(("--filter",), "list", 'Provide filter values (e.g. "until=<timestamp>")'),
        Flag(("-f", "--force"), help="Do not prompt for confirmation"),
    ),
    max_args=0,
)
CONNECT = Command(
    "network connect",
    "berth network connect [OPTIONS] NETWORK CONTAINER",
    "Connect a container to a network",
    (
        Flag(("--alias",), "list", "Add network-scoped alias for the container"),
        Flag(("--ip",), "value", "IPv4 address (e.g., 172.30.100.104)"),
        Flag(("--ip6",), "value", "IPv6 address (e.g., 2001:db8::33)"),
        Flag(("--link",), "list", "Add link to another container"),
    ),
    min_args=2,
    max_args=2,
)
DISCONNECT = Command(
    "network disconnect",
    "berth network disconnect [OPTIONS] NETWORK CONTAINER",
    "Disconnect a container from a network",
    (Flag(("-f", "--force"), help="Force the container to disconnect from a network"),),
    min_args=2,
    max_args=2,
)
HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE"}


def _kv(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise InvalidParameter(f"invalid {what} {item!r}")
        out[key] = value if eq else ""
    return out


def create(ctx: Any, argv: list[str]) -> int:
    opts, args = ctx.parse(CREATE, argv)
    subnets, gateways, ranges = opts["subnet"], opts["gateway"], opts["ip_range"]
    if len(gateways) > len(subnets) or len(ranges) > len(subnets):
        raise InvalidParameter("every ip-range or gateway must have a corresponding subnet")
    config = []
    aux = _kv(opts["aux_address"], "auxiliary address")
    for i, subnet in enumerate(subnets):
        entry: dict[str, Any] = {"Subnet": subnet}
        if i < len(ranges):
            entry["IPRange"] = ranges[i]
        if i < len(gateways):
            entry["Gateway"] = gateways[i]
        if aux and i == 0:
            entry["AuxiliaryAddresses"] = aux
        config.append(entry)
    body = {
        "Name": args[0],
        "Driver": opts["driver"] or "bridge",
        "IPAM": {"Driver": opts["ipam_driver"] or "default", "Options": _kv(opts["ipam_opt"], "ipam option"), "Config": config},
        "Internal": bool(opts["internal"]),
        "Attachable": bool(opts["attachable"]),
        "EnableIPv6": bool(opts["ipv6"]),
        "Options": _kv(opts["opt"], "option"),
        "Labels": _kv(opts["label"], "label"),
        "CheckDuplicate": True,
    }
    result = ctx.client.call("POST", "/networks/create", json_body=body) or {}
    ctx.out(f"{result.get('Id', '')}\n")
    return 0


def ls(ctx: Any, argv: list[str]) -> int:
    from berth.cli.formatter import render

    opts, _ = ctx.parse(LS, argv)
    filters = checked_filters(ctx, LS, opts["filter"])
    query = {"filters": json.dumps(filters, separators=(",", ":"))} if filters else None
    nets = sorted(ctx.client.call("GET", "/networks", query=query) or [], key=lambda n: n.get("Name", ""))
    if opts["quiet"]:
        ctx.out("".join((n["Id"] if opts["no_trunc"] else n["Id"][:12]) + "\n" for n in nets))
        return 0
    rows = [
        {"ID": n["Id"] if opts["no_trunc"] else n["Id"][:12], "Name": n["Name"], "Driver": n["Driver"],
         "Scope": n["Scope"], "IPv6": str(n.get("EnableIPv6", False)).lower(),
         "Internal": str(n.get("Internal", False)).lower(), "Labels": ",".join(f"{k}={v}" for k, v in (n.get("Labels") or {}).items()),
         "CreatedAt": n.get("Created", "")}
        for n in nets
    ]  # fmt: skip
    fmt = opts["format"] or "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
    ctx.out(render(fmt, rows, HEADERS))
    return 0


def inspect(ctx: Any, argv: list[str]) -> int:
    opts, args = ctx.parse(INSPECT, argv)
    return int(inspect_run(ctx, {"format": opts["format"], "size": False}, args, ("network",), True))


def rm(ctx: Any, argv: list[str]) -> int:
    _, args = ctx.parse(RM, argv)
    status = 0
    for name in args:
        try:
            ctx.client.call("DELETE", f"/networks/{path_escape(name)}")
            ctx.out(f"{name}\n")
        except BerthError as exc:
            ctx.err(f"Error response from daemon: {exc.message}\n")
            status = 1
    return status


def prune(ctx: Any, argv: list[str]) -> int:
    opts, _ = ctx.parse(PRUNE, argv)
    filters = checked_filters(ctx, PRUNE, opts["filter"])
    if not opts["force"] and not _confirm(ctx, "WARNING! This will remove all custom networks not used by at least one container."):
        return 0
    query = {"filters": json.dumps(filters, separators=(",", ":"))} if filters else None
    report = ctx.client.call("POST", "/networks/prune", query=query) or {}
    deleted = report.get("NetworksDeleted") or []
    if deleted:
        ctx.out("Deleted Networks:\n" + "".join(f"{n}\n" for n in deleted) + "\n")
    return 0


def connect(ctx: Any, argv: list[str]) -> int:
    opts, (network, container) = ctx.parse(CONNECT, argv)
    ipam = {k: v for k, v in (("IPv4Address", opts["ip"]), ("IPv6Address", opts["ip6"])) if v}
    body = {"Container": container, "EndpointConfig": {"IPAMConfig": ipam or None, "Aliases": opts["alias"] or None, "Links": opts["link"] or None}}
    ctx.client.call("POST", f"/networks/{path_escape(network)}/connect", json_body=body)
    return 0


def disconnect(ctx: Any, argv: list[str]) -> int:
    opts, (network, container) = ctx.parse(DISCONNECT, argv)
    body = {"Container": container, "Force": bool(opts["force"])}
    ctx.client.call("POST", f"/networks/{path_escape(network)}/disconnect", json_body=body)
    return 0
