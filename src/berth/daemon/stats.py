"""The stats job: ``GET /containers/{id}/stats`` in Docker's shape, from the container's cgroup.

One sample is the cgroup's CPU/memory/pids accounting plus the host's total CPU time
(``/proc/stat``, in nanoseconds), which the CLI needs to turn CPU time into a percentage. Like
dockerd, ``stream=0`` samples twice a second apart so that ``precpu_stats`` is filled (that
is why ``docker stats --no-stream`` takes about a second); ``stream=1`` sends one object a
second until the container stops or the client goes.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import TYPE_CHECKING, Any

from berth.container.record import Container, now_rfc3339
from berth.daemon.handlers import HandlerTable
from berth.daemon.netsettings import mode_of
from berth.daemon.system import host_memory
from berth.engine import Job
from berth.jobs import containers as jobs

if TYPE_CHECKING:
    from berth.daemon.daemon import Daemon

handlers = HandlerTable()

ZERO = "0001-01-01T00:00:00Z"
NS_PER_TICK = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def system_cpu_ns(proc_stat: str) -> int:
    """Total CPU time of the host, from the ``cpu`` line of /proc/stat (all fields but guest)."""
    for line in proc_stat.splitlines():
        if line.startswith("cpu "):
            fields = [int(x) for x in line.split()[1:8]]
            return sum(fields) * NS_PER_TICK
    return 0


def sample(stats: Any, proc_stat: str) -> dict[str, Any]:
    memory_stat = dict(stats.memory_stat) if stats is not None else {}
    return {
        "read": now_rfc3339(),
        "cpu_stats": {
            "cpu_usage": {
                "total_usage": (stats.cpu_usage_ns or 0) if stats else 0,
                "usage_in_kernelmode": 0,
                "usage_in_usermode": 0,
            },
            "system_cpu_usage": system_cpu_ns(proc_stat),
            "online_cpus": os.cpu_count() or 1,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        },
        "memory_stats": {
            "usage": (stats.memory_usage or 0) if stats else 0,
            "limit": (stats.memory_limit if stats and stats.memory_limit else host_memory()),
            "stats": memory_stat,
        }
        if stats is not None
        else {},
        "pids_stats": {
            "current": stats.pids_current or 0,
            **({"limit": stats.pids_limit} if stats.pids_limit else {}),
        }
        if stats is not None
        else {},
    }


NET_FIELDS = ("rx_bytes", "rx_packets", "rx_errors", "rx_dropped")
NET_TX_FIELDS = ("tx_bytes", "tx_packets", "tx_errors", "tx_dropped")


def network_stats(proc_net_dev: str) -> dict[str, dict[str, int]]:
    """Docker's ``networks``: per interface of the container but its loopback, the first four
    receive and transmit counters of ``/proc/PID/net/dev``."""
    out: dict[str, dict[str, int]] = {}
    for line in proc_net_dev.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        name = name.strip()
        fields = rest.split()
        if not sep or name == "lo" or len(fields) < 12:
            continue
        counters = [int(x) for x in fields]
        out[name] = {**dict(zip(NET_FIELDS, counters[0:4], strict=True)),
                     **dict(zip(NET_TX_FIELDS, counters[8:12], strict=True))}
    return out


def _empty_cpu() -> dict[str, Any]:
    return {
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    }


def document(c: Container, now: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "name": "/" + c.name,
        "id": c.id,
        "read": now["read"],
        "preread": before["read"] if before else ZERO,
        "pids_stats": now["pids_stats"],
        "blkio_stats": {
            "io_service_bytes_recursive": None,
            "io_serviced_recursive": None,
            "io_queue_recursive": None,
            "io_service_time_recursive": None,
            "io_wait_time_recursive": None,
            "io_merged_recursive": None,
            "io_time_recursive": None,
            "sectors_recursive": None,
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": now["cpu_stats"],
        "precpu_stats": before["cpu_stats"] if before else _empty_cpu(),
        "memory_stats": now["memory_stats"],
        # as dockerd: only when the container has interfaces of its own (omitempty)
        **({"networks": now["networks"]} if now.get("networks") else {}),
    }


async def _sample(d: Daemon, c: Container) -> dict[str, Any]:
    stats = await d.driver.stats(c.id)
    proc_stat = await asyncio.to_thread(_read, "/proc/stat")
    out = sample(stats, proc_stat)
    mode = mode_of(c.host_config)
    if c.state.pid and mode not in ("host", "none") and not mode.startswith("container:"):
        try:
            out["networks"] = network_stats(await asyncio.to_thread(_read, f"/proc/{c.state.pid}/net/dev"))
        except (OSError, ValueError):
            pass  # the container is going: a sample without networks
    return out


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


@handlers.on(jobs.ContainerStats)
async def container_stats(d: Daemon, req: jobs.ContainerStats, job: Job) -> None:
    c = d.find(req.id)
    out = job.sink
    if not c.state.running:
        # dockerd answers a stopped container with one zeroed document
        await out.write(json.dumps(document(c, sample(None, ""), None)).encode() + b"\n")
        return
    before = None if req.one_shot else await _sample(d, c)
    if not req.stream and before is not None:
        await asyncio.sleep(1.0)
    now = await _sample(d, c)
    await out.write(json.dumps(document(c, now, before)).encode() + b"\n")
    while req.stream and c.state.running:
        await asyncio.sleep(1.0)
        before, now = now, await _sample(d, c)
        await out.write(json.dumps(document(c, now, before)).encode() + b"\n")


