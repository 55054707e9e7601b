"""System jobs: ping, version, info, and the serveapi job (the API server as a job)."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import platform
import socket
import time
from typing import TYPE_CHECKING, Any

from berth.daemon.handlers import HandlerTable
from berth.engine import Job
from berth.engine.events import matches
from berth.errors import BerthError
from berth.jobs import system as jobs
from berth.jobs.results import JSONObject

if TYPE_CHECKING:
    from berth.daemon.daemon import Daemon

VERSION = "0.1.0"

handlers = HandlerTable()


@handlers.on(jobs.SystemPing)
async def ping(d: Daemon, req: jobs.SystemPing, job: Job) -> str:
    return "OK"


@handlers.on(jobs.SystemVersion)
async def version(d: Daemon, req: jobs.SystemVersion, job: Job) -> JSONObject:
    uname = platform.uname()
    return {
        "Platform": {"Name": "berth"},
        "Components": [
            {"Name": "Engine", "Version": VERSION,
             "Details": {"ApiVersion": "1.45", "Arch": "amd64", "BuildTime": "", "Experimental": "false",
                         "GitCommit": "", "GoVersion": "python" + platform.python_version(),
                         "KernelVersion": uname.release, "MinAPIVersion": "1.24", "Os": "linux"}},
            {"Name": "berth-monitor", "Version": VERSION, "Details": {"GitCommit": ""}},
        ],
        "Version": VERSION,
        "GitCommit": "",
        "GoVersion": "python" + platform.python_version(),
        "Os": "linux",
        "Arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(uname.machine, uname.machine),
        "KernelVersion": uname.release,
        "BuildTime": "",
    }


def _os_name() -> str:
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def system_time(ns: int | None = None) -> str:
    """Now as Go's ``time.Now().Format(time.RFC3339Nano)``: local time with its UTC offset
    (``Z`` for UTC), nanoseconds without trailing zeros."""
    ns = time.time_ns() if ns is None else ns
    secs, nanos = divmod(ns, 1_000_000_000)
    local = time.localtime(secs)
    frac = f".{nanos:09d}".rstrip("0").rstrip(".")
    offset = local.tm_gmtoff or 0
    if offset == 0:
        zone = "Z"
    else:
        sign = "+" if offset > 0 else "-"
        hours, minutes = divmod(abs(offset) // 60, 60)
        zone = f"{sign}{hours:02d}:{minutes:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + frac + zone


def host_memory() -> int:
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _init_binary(d: Daemon) -> str:
    from berth.daemon.initbinary import init_path

    try:
        path = init_path(d.cfg.init_path)
    except BerthError:
        return ""
    return path.name if path is not None else ""


@handlers.on(jobs.SystemInfo)
async def info(d: Daemon, req: jobs.SystemInfo, job: Job) -> JSONObject:
    states = [c.state.status for c in d.live.records()]
    # as dockerd: every image, intermediate ones too (what `images -a` lists), not only the top ones
    images = await asyncio.to_thread(d.graph.images.rows)
    from berth.libcontainer.cgroups import is_unified  # the one detection (a hybrid host is v1)

    v2 = is_unified()
    uname = platform.uname()
    return {
        "ID": d.cfg.cgroup_parent, "Containers": len(states),
        "ContainersRunning": states.count("running"), "ContainersPaused": states.count("paused"),
        "ContainersStopped": len(states) - states.count("running") - states.count("paused"),
        "Images": len(images), "Driver": d.storage_driver,
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]],
        "Plugins": {"Volume": ["local"], "Network": ["host", "null"], "Authorization": None,
                    "Log": ["json-file", "local"]},
        "MemoryLimit": True, "SwapLimit": True, "CpuCfsPeriod": True, "CpuCfsQuota": True, "CPUShares": True,
        "CPUSet": True, "PidsLimit": True, "IPv4Forwarding": True, "BridgeNfIptables": False,
        "BridgeNfIp6tables": False, "Debug": d.cfg.debug, "NFd": len(os.listdir("/proc/self/fd")),
        "OomKillDisable": False, "NGoroutines": len(asyncio.all_tasks()), "SystemTime": system_time(),
        "LoggingDriver": d.cfg.log_driver, "CgroupDriver": "cgroupfs", "CgroupVersion": "2" if v2 else "1",
        "NEventsListener": len(d.engine.events.subscribers), "KernelVersion": uname.release,
        "OperatingSystem": _os_name(), "OSVersion": "", "OSType": "linux",
        "Architecture": uname.machine, "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": None, "AllowNondistributableArtifactsHostnames": None,
                           "InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {}, "Mirrors": None},
        "NCPU": os.cpu_count() or 1, "MemTotal": host_memory(), "GenericResources": None,
        "DockerRootDir": str(d.cfg.data_root), "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
        "Name": socket.gethostname(), "Labels": [], "ExperimentalBuild": False, "ServerVersion": VERSION,
        "Runtimes": d.cfg.runtime_table.info(),
        "DefaultRuntime": d.cfg.runtime_table.default,
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                  "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": _init_binary(d),
        "ContainerdCommit": {"ID": "", "Expected": ""}, "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": ["name=seccomp,profile=builtin", *(["name=userns"] if d.cfg.remap else []),
                            *(["name=cgroupns"] if v2 else [])],
        "Warnings": None,
    }


@handlers.on(jobs.SystemEvents)
async def events(d: Daemon, req: jobs.SystemEvents, job: Job) -> None:
    """Stream events: the kept ones since ``since`` (from the event log, across restarts), then
    live ones until ``until`` (if given) or until the client goes."""
    out = job.sink
    since, until = req.since, req.until
    filters = req.filters
    bus = d.engine.events
    queue = bus.subscribe()
    try:
        await out.write(b"")  # headers now: `docker events` waits for them
        replayed: set[tuple[int, str, str]] = set()
        if since is not None:
            since_ns = int(since * 1e9)
            until_ns = None if until is None else int(until * 1e9)
            if d.eventlog is not None:
                await d.eventlog.flush()  # everything published so far is in the log
                past = await asyncio.to_thread(d.eventlog.query, since_ns, until_ns)
            else:
                past = [e for e in list(bus.history)
                        if e["timeNano"] >= since_ns and (until_ns is None or e["timeNano"] <= until_ns)]
            for event in past:
                replayed.add(_key(event))
                if matches(event, filters):
                    await out.write(_encode(event))
        while until is None or time.time() < until:
            timeout = None if until is None else max(0.0, until - time.time())
            try:
                event = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                break
            if _key(event) in replayed:
                continue  # published while the past was read: sent already
            if until is not None and event["timeNano"] > until * 1e9:
                break
            if matches(event, filters):
                await out.write(_encode(event))
    finally:
        bus.unsubscribe(queue)


def _key(event: dict[str, Any]) -> tuple[int, str, str]:
    return int(event["timeNano"]), str(event["Action"]), str(event["Actor"]["ID"])


def _encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode() + b"\n"


@handlers.on(jobs.ServeAPI)
async def serveapi(d: Daemon, req: jobs.ServeAPI, job: Job) -> None:
    """Run the API server on every -H address until the stop event is set."""
    # the server's imports (aiohttp, every route) are the first the daemon does: not on the loop
    server_module = await asyncio.to_thread(importlib.import_module, "berth.api.server")
    Server, TLSOptions = server_module.Server, server_module.TLSOptions

    cfg = d.cfg
    tls = TLSOptions(cert=cfg.tlscert, key=cfg.tlskey, cacert=cfg.tlscacert, verify=cfg.tlsverify) if cfg.tls else TLSOptions()
    # building the app (every route twice) takes tens of milliseconds: not on the loop
    server = await asyncio.to_thread(Server, d.engine, cfg.hosts, tls, insecure_tcp=cfg.insecure_tcp,
                                   early=d.early_listener)
    await server.start()
    if req.ready is not None:
        req.ready.set()
    try:
        await req.stop.wait()
    finally:
        await server.stop()


