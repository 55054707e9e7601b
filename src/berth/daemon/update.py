"""The update job: ``POST /containers/{id}/update`` (``docker update``), as dockerd does it.

Three steps, each with dockerd's errors:

1. check the body alone (a 400: ``Minimum memory limit allowed is 6MB``, CPU ranges, cpusets the
   host has, blkio weight range, restart policy) — a blkio weight the host cannot apply is
   dropped with dockerd's warning;
2. merge it into the record's HostConfig (a 409 ``Cannot update container <id>: ...`` for a
   memory limit above the memory+swap limit already set without a new one, NanoCpus against
   CpuQuota/CpuPeriod already set and the reverse, a restart policy with ``--rm``); only the
   non-zero fields change, and the record is saved (the next start uses it);
3. for a running (or paused) container, write the body's limits into its cgroup; a failure
   (a memory limit below what it uses) puts the old HostConfig back and is a 500.

The restart policy is only recorded for now (the restart machinery is a later issue).
"""

from __future__ import annotations

import copy
import os
from typing import TYPE_CHECKING, Any

from berth.daemon.handlers import HandlerTable
from berth.daemon.lifecycle import start_lock
from berth.engine import Job
from berth.errors import BerthError, Conflict, InvalidParameter, NotFound, SystemFailure
from berth.jobs import containers as jobs
from berth.jobs.results import Warnings
from berth.libcontainer.cgroups import ResourceUpdate, blkio_weight_supported

if TYPE_CHECKING:
    from berth.daemon.daemon import Daemon

_INT_FIELDS = (
    "Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuQuota", "CpuPeriod", "CpuShares",
    "PidsLimit", "BlkioWeight", "KernelMemory", "CpuRealtimePeriod", "CpuRealtimeRuntime",
)
_STR_FIELDS = ("CpusetCpus", "CpusetMems")
MIN_MEMORY = 6 * 1024 * 1024
BLKIO_WARNING = "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."
RESTART_POLICIES = ("", "no", "always", "unless-stopped", "on-failure")

handlers = HandlerTable()


def _check_types(body: dict[str, Any]) -> None:
    for key in _INT_FIELDS:
        value = body.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise InvalidParameter(
                f"json: cannot unmarshal {type(value).__name__} into Go struct field UpdateConfig.{key} of type int64"
            )
    for key in _STR_FIELDS:
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            raise InvalidParameter(
                f"json: cannot unmarshal {type(value).__name__} into Go struct field UpdateConfig.{key} of type string"
            )
    policy = body.get("RestartPolicy")
    if policy is not None and not isinstance(policy, dict):
        raise InvalidParameter("json: cannot unmarshal into Go struct field UpdateConfig.RestartPolicy of type container.RestartPolicy")


def parse_cpuset(text: str) -> set[int]:
    """``"0-2,4"`` -> {0, 1, 2, 4}; ValueError for anything else (Go's ``parsers.ParseUintList``)."""
    out: set[int] = set()
    if not text:
        return out
    for part in text.split(","):
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise ValueError(f"invalid format: {text}")
        first, last = int(lo), int(hi) if dash else int(lo)
        if last < first:
            raise ValueError(f"invalid format: {text}")
        out.update(range(first, last + 1))
    return out


def _online(path: str) -> tuple[str, set[int]]:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return "", set()
    return text, parse_cpuset(text)


def _check_cpuset(value: str, kind: str, online_path: str) -> None:
    try:
        wanted = parse_cpuset(value)
    except ValueError as exc:
        raise InvalidParameter(f"Invalid value {value} for cpuset {kind}: {exc}") from None
    text, online = _online(online_path)
    if online and not wanted <= online:
        what = "CPUs" if kind == "cpus" else "memory nodes"
        raise InvalidParameter(f"Requested {what} are not available - requested {value}, available: {text}")


def verify(body: dict[str, Any]) -> list[str]:
    """dockerd's checks of an update body on its own; the warnings (and BlkioWeight dropped
    when the host cannot weigh block I/O)."""
    _check_types(body)
    warnings: list[str] = []
    memory, swap = body.get("Memory") or 0, body.get("MemorySwap") or 0
    reservation = body.get("MemoryReservation") or 0
    if memory and memory < MIN_MEMORY:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    if memory > 0 and swap > 0 and swap < memory:
        raise InvalidParameter("Minimum memoryswap limit should be larger than memory limit, see usage")
    if reservation and reservation < MIN_MEMORY:
        raise InvalidParameter("Minimum memory reservation allowed is 6MB")
    if memory > 0 and reservation > 0 and memory < reservation:
        raise InvalidParameter("Minimum memory limit can not be less than memory reservation limit, see usage")
    nano, quota, period = body.get("NanoCpus") or 0, body.get("CpuQuota") or 0, body.get("CpuPeriod") or 0
    if nano > 0 and period > 0:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano > 0 and quota > 0:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    ncpu = os.cpu_count() or 1
    if nano < 0 or nano > ncpu * 1_000_000_000:
        raise InvalidParameter(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
    if period and (period < 1000 or period > 1_000_000):
        raise InvalidParameter("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if quota > 0 and quota < 1000:
        raise InvalidParameter("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if body.get("CpusetCpus"):
        _check_cpuset(body["CpusetCpus"], "cpus", "/sys/devices/system/cpu/online")
    if body.get("CpusetMems"):
        _check_cpuset(body["CpusetMems"], "mems", "/sys/devices/system/node/online")
    weight = body.get("BlkioWeight") or 0
    if weight:
        if not blkio_weight_supported():
            warnings.append(BLKIO_WARNING)
            body["BlkioWeight"] = 0
        elif weight < 10 or weight > 1000:
            raise InvalidParameter("Range of blkio weight is from 10 to 1000")
    policy = body.get("RestartPolicy") or {}
    name = policy.get("Name") or ""
    if name not in RESTART_POLICIES:
        raise InvalidParameter(f"invalid restart policy '{name}'")
    retries = policy.get("MaximumRetryCount") or 0
    if not isinstance(retries, int) or isinstance(retries, bool):
        raise InvalidParameter("json: cannot unmarshal into Go struct field RestartPolicy.MaximumRetryCount of type int")
    if retries < 0:
        raise InvalidParameter("maximum retry count cannot be negative")
    if retries and name != "on-failure":
        raise InvalidParameter(f"maximum retry count cannot be used with restart policy '{name}'")
    return warnings


def merge(host: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The HostConfig after the update (a new dict); Conflict for what dockerd refuses."""
    new = copy.deepcopy(host)
    nano, quota, period = body.get("NanoCpus") or 0, body.get("CpuQuota") or 0, body.get("CpuPeriod") or 0
    if nano > 0 and (host.get("CpuPeriod") or 0) > 0:
        raise Conflict("Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set")
    if nano > 0 and (host.get("CpuQuota") or 0) > 0:
        raise Conflict("Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set")
    if period > 0 and (host.get("NanoCpus") or 0) > 0:
        raise Conflict("Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set")
    if quota > 0 and (host.get("NanoCpus") or 0) > 0:
        raise Conflict("Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set")
    memory, swap = body.get("Memory") or 0, body.get("MemorySwap") or 0
    if memory and memory > (host.get("MemorySwap") or 0) and not swap:
        raise Conflict(
            "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"
        )
    for key in ("BlkioWeight", "CpuShares", "CpuPeriod", "CpuQuota", "CpusetCpus", "CpusetMems", "Memory",
                "MemorySwap", "MemoryReservation", "NanoCpus", "KernelMemory", "CpuRealtimePeriod",
                "CpuRealtimeRuntime"):
        if body.get(key):
            new[key] = body[key]
    if body.get("PidsLimit") is not None:
        new["PidsLimit"] = max(body["PidsLimit"], 0)  # 0 and -1: unlimited, shown as 0 (dockerd)
    policy = body.get("RestartPolicy") or {}
    if policy.get("Name"):
        if host.get("AutoRemove") and policy["Name"] != "no":
            raise Conflict("Restart policy cannot be updated because AutoRemove is enabled for the container")
        new["RestartPolicy"] = {"Name": policy["Name"], "MaximumRetryCount": policy.get("MaximumRetryCount") or 0}
    return new


def resource_update(body: dict[str, Any]) -> ResourceUpdate:
    """The limits the body sets (what dockerd hands the runtime: the request's, not the merge)."""

    def given(key: str) -> Any:
        return body.get(key) or None

    return ResourceUpdate(
        memory=given("Memory"), memory_swap=given("MemorySwap"), memory_reservation=given("MemoryReservation"),
        nano_cpus=given("NanoCpus"), cpu_quota=given("CpuQuota"), cpu_period=given("CpuPeriod"),
        cpu_shares=given("CpuShares"), cpuset_cpus=given("CpusetCpus"), cpuset_mems=given("CpusetMems"),
        pids_limit=body.get("PidsLimit"), blkio_weight=given("BlkioWeight"),
    )


@handlers.on(jobs.ContainerUpdate)
async def update(d: Daemon, req: jobs.ContainerUpdate, job: Job) -> Warnings:
    body: dict[str, Any] = dict(req.config)
    c = d.find(req.id)
    warnings = verify(body)
    if c.state.status in ("removing", "dead"):
        raise Conflict(f'Cannot update container {c.id}: container is marked for removal and cannot be "update"')
    async with start_lock(d, c.id):  # not while a start reads the record and makes the cgroup
        if c.id not in d.live:
            raise NotFound(f"No such container: {req.id}")
        try:
            new = merge(c.host_config, body)
        except Conflict as exc:
            raise Conflict(f"Cannot update container {c.id}: {exc}") from None
        old = c.host_config
        c.host_config = new
        await d.save(c)
        if c.state.running:
            try:
                await d.driver.update(c.id, resource_update(body))
            except BerthError as exc:
                c.host_config = old
                await d.save(c)
                raise SystemFailure(f"Cannot update container {c.id}: {exc}") from exc
    d.publish(c, "update")
    return {"Warnings": warnings}


