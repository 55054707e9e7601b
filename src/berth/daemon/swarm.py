"""Swarm and plugin jobs, as a dockerd that is in no swarm and has no plugins answers them.

berth has no swarm mode: every swarm, node, service, task, secret and config route answers
dockerd's 503 for a node outside a swarm (``swarm.unavailable``); ``POST /swarm/leave`` has its
own text, and ``init``/``join`` are a 501 (dockerd would make or join a swarm). Plugins: the
list is empty and any named plugin is not found.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from berth.daemon.handlers import HandlerTable
from berth.daemon.networks import NOT_A_MANAGER
from berth.engine import Job
from berth.errors import InvalidParameter, NotFound, Unavailable, Unimplemented
from berth.jobs import system as jobs
from berth.jobs.results import JSONObject

if TYPE_CHECKING:
    from berth.daemon.daemon import Daemon

NOT_IN_A_SWARM = "This node is not part of a swarm"
PLUGIN_FILTERS = ("capability", "enable")

handlers = HandlerTable()


@handlers.on(jobs.SwarmUnavailable)
async def unavailable(d: Daemon, req: jobs.SwarmUnavailable, job: Job) -> None:
    """Every swarm-manager operation outside a swarm (dockerd's ``errNoManager``)."""
    action = req.action
    if action == "leave":
        raise Unavailable(NOT_IN_A_SWARM)
    version = req.version
    if action == "update" and not version.isdigit():  # dockerd parses ?version= first
        raise InvalidParameter(f'invalid swarm version \'{version}\': strconv.ParseUint: parsing "{version}": invalid syntax')
    if action in ("init", "join"):
        raise Unimplemented(f"swarm {action}: berth does not support swarm mode")
    raise Unavailable(NOT_A_MANAGER)


@handlers.on(jobs.PluginList)
async def plugin_list(d: Daemon, req: jobs.PluginList, job: Job) -> list[JSONObject]:
    for key in req.filters:
        if key not in PLUGIN_FILTERS:
            raise InvalidParameter(f"Invalid filter '{key}'")
    return []


@handlers.on(jobs.PluginFind)
async def plugin_find(d: Daemon, req: jobs.PluginFind, job: Job) -> None:
    raise NotFound(f'plugin "{req.name}" not found')


