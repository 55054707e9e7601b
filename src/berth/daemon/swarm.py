"""Swarm and plugin jobs, as a dockerd that is in no swarm and has no plugins answers them.

berth has no swarm mode: every swarm, node, service, task, secret and config route answers
dockerd's 503 for a node outside a swarm (``swarm.unavailable``); ``POST /swarm/leave`` has its
own text, and ``init``/``join`` are a 501 (dockerd would make or join a swarm). Plugins: the
list is empty and any named plugin is not found.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from berth.daemon.networks import NOT_A_MANAGER
from berth.engine import Job
from berth.errors import InvalidParameter, NotFound, Unavailable, Unimplemented

if TYPE_CHECKING:
    from berth.daemon.daemon import Daemon

NOT_IN_A_SWARM = "This node is not part of a swarm"
PLUGIN_FILTERS = ("capability", "enable")


async def unavailable(d: Daemon, job: Job) -> None:
    """Every swarm-manager operation outside a swarm (dockerd's ``errNoManager``)."""
    action = job.args.get("action") or ""
    if action == "leave":
        raise Unavailable(NOT_IN_A_SWARM)
    version = job.args.get("version") or ""
    if action == "update" and not version.isdigit():  # dockerd parses ?version= first
        raise InvalidParameter(f'invalid swarm version \'{version}\': strconv.ParseUint: parsing "{version}": invalid syntax')
    if action in ("init", "join"):
        raise Unimplemented(f"swarm {action}: berth does not support swarm mode")
    raise Unavailable(NOT_A_MANAGER)


async def plugin_list(d: Daemon, job: Job) -> list[Any]:
    for key in job.args.get("filters") or {}:
        if key not in PLUGIN_FILTERS:
            raise InvalidParameter(f"Invalid filter '{key}'")
    return []


async def plugin_find(d: Daemon, job: Job) -> None:
    raise NotFound(f'plugin "{job.args["name"]}" not found')


HANDLERS = {
    "swarm.unavailable": unavailable,
    "plugin.list": plugin_list,
    "plugin.find": plugin_find,
}
