"""``POST /containers/create`` bodies: validation and merging with the image's config (pure).

The body is Docker's ContainerConfig with ``HostConfig`` and ``NetworkingConfig`` inside. Each
field is type-checked as Go's decoder does (``createschema``: a wrong shape is a 400 with Go's
text), its settings checked as dockerd does (``createchecks``), then merged with the image's
config the way dockerd does: the image's Env is overridden key by key, Labels are merged, an
Entrypoint given at create time drops the image's Cmd, WorkingDir/User fall back to the image's.
"""

from __future__ import annotations

import re
from typing import Any

from berth.daemon import createschema, runtimes
from berth.errors import InvalidParameter
from berth.libcontainer.spec import MASKED_PATHS, READONLY_PATHS

NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

# dockerd's built-in logging drivers; any other name is looked up as a plugin
DOCKER_LOG_DRIVERS = ("json-file", "local", "none", "syslog", "journald", "gelf", "fluentd", "awslogs", "splunk",
                      "etwlogs", "gcplogs", "logentries")

HOST_CONFIG_DEFAULTS: dict[str, Any] = {
    "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
    "NetworkMode": "default", "PortBindings": {}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
    "AutoRemove": False, "VolumeDriver": "", "VolumesFrom": None, "CapAdd": None, "CapDrop": None,
    "CgroupnsMode": "host", "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": None, "GroupAdd": None,
    "IpcMode": "private", "Cgroup": "", "Links": None, "OomScoreAdj": 0, "PidMode": "", "Privileged": False,
    "PublishAllPorts": False, "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "", "UsernsMode": "",
    "ShmSize": 67108864, "Runtime": "", "ConsoleSize": [0, 0], "Isolation": "", "CpuShares": 0,
    "Memory": 0, "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0, "CpuPeriod": 0, "CpuQuota": 0,
    "CpusetCpus": "", "CpusetMems": "", "Devices": [], "MemoryReservation": 0, "MemorySwap": 0,
    "MemorySwappiness": None, "OomKillDisable": False, "PidsLimit": None, "Ulimits": [], "Init": None,
}


def validate(body: dict[str, Any]) -> None:
    createschema.check(body)  # Go's decoding errors, for the whole body
    if not body.get("Image"):
        raise InvalidParameter("Config.Image: no image was given")


def validate_name(name: str) -> str:
    if name and not NAME_RE.match(name):
        raise InvalidParameter(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.lstrip("/")


def _as_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return ["/bin/sh", "-c", value]
    return [str(v) for v in value]


def merge_env(image_env: list[str], env: list[str]) -> list[str]:
    out: dict[str, str] = {}
    for item in [*image_env, *env]:
        key = item.split("=", 1)[0]
        out[key] = item
    return list(out.values())


def merge_healthcheck(mine: dict[str, Any] | None, image: dict[str, Any] | None) -> dict[str, Any] | None:
    """dockerd's merge: the container's check, its unset fields taken from the image's."""
    if not mine:
        return dict(image) if image else None
    out = dict(mine)
    for key in ("Test", "Interval", "Timeout", "StartPeriod", "Retries"):
        if not out.get(key) and image and image.get(key):
            out[key] = image[key]
    return out


def merge(
    body: dict[str, Any], image: dict[str, Any], log_default: tuple[str, dict[str, str]] = ("json-file", {}),
    runtime_table: runtimes.Runtimes = runtimes.DEFAULTS,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Config, HostConfig) as the container record keeps them; raises for no command.
    ``log_default`` is the daemon's logging driver and options (dockerd's merge: a container
    without a driver gets the daemon's, and the daemon's options it does not set itself);
    ``runtime_table`` the daemon's runtimes (an empty ``Runtime`` becomes its default)."""
    entrypoint = _as_list(body.get("Entrypoint"))
    cmd = _as_list(body.get("Cmd"))
    if entrypoint is not None and entrypoint == [""]:
        entrypoint = []  # --entrypoint "" clears the image's entrypoint
    if entrypoint is None:
        entrypoint = image.get("Entrypoint") or None
        if cmd is None or cmd == []:
            cmd = image.get("Cmd") or None
    if not (entrypoint or cmd):
        raise InvalidParameter("No command specified")
    labels = dict(image.get("Labels") or {})
    labels.update(body.get("Labels") or {})
    config: dict[str, Any] = {
        "Hostname": body.get("Hostname") or "",
        "Domainname": body.get("Domainname") or "",
        "User": body.get("User") or image.get("User") or "",
        "AttachStdin": bool(body.get("AttachStdin")),
        "AttachStdout": bool(body.get("AttachStdout")),
        "AttachStderr": bool(body.get("AttachStderr")),
        "ExposedPorts": {**(image.get("ExposedPorts") or {}), **(body.get("ExposedPorts") or {})} or None,
        "Tty": bool(body.get("Tty")),
        "OpenStdin": bool(body.get("OpenStdin")),
        "StdinOnce": bool(body.get("StdinOnce")),
        "Env": merge_env(list(image.get("Env") or []), list(body.get("Env") or [])),
        "Cmd": cmd,
        "Image": body["Image"],
        "Volumes": {**(image.get("Volumes") or {}), **(body.get("Volumes") or {})} or None,
        "WorkingDir": body.get("WorkingDir") or image.get("WorkingDir") or "",
        "Entrypoint": entrypoint,
        "OnBuild": None,
        "Labels": labels,
    }
    for key in ("StopSignal", "StopTimeout"):
        if body.get(key) is not None:
            config[key] = body[key]
    if not config.get("StopSignal") and image.get("StopSignal"):
        config["StopSignal"] = image["StopSignal"]
    health = merge_healthcheck(body.get("Healthcheck"), image.get("Healthcheck"))
    if health is not None:
        config["Healthcheck"] = health
    host = dict(HOST_CONFIG_DEFAULTS)
    host.update({k: v for k, v in (body.get("HostConfig") or {}).items() if v is not None})
    for key in ("IpcMode", "ShmSize", "NetworkMode"):
        if not host.get(key):  # empty or zero: the daemon's default, as dockerd records it
            host[key] = HOST_CONFIG_DEFAULTS[key]
    if not host.get("CgroupnsMode"):  # dockerd's default: private on a cgroup v2 host, else host
        from berth.libcontainer.cgroups import is_unified

        host["CgroupnsMode"] = "private" if is_unified() else "host"
    given = ((body.get("HostConfig") or {}).get("LogConfig") or {})
    log_type = given.get("Type") or log_default[0]
    if log_type not in DOCKER_LOG_DRIVERS:  # dockerd then looks for a logging plugin of that name
        raise InvalidParameter(f'error looking up logging plugin {log_type}: plugin "{log_type}" not found')
    if log_type not in ("json-file", "local", "none"):
        raise InvalidParameter(
            f"logging driver {log_type!r} is not supported: berth writes json-file or local logs, or none"
        )
    options = dict(given.get("Config") or {})
    if log_type == log_default[0]:
        options = {**log_default[1], **options}
    host["LogConfig"] = {"Type": log_type, "Config": options}
    if log_type != "none":
        from berth.container.logs import log_settings

        log_settings(log_type, options)  # dockerd checks --log-opt at create
    host["NetworkMode"] = host.get("NetworkMode") or "default"  # the network itself is checked by the daemon
    host["Runtime"] = runtime_table.check(host.get("Runtime"))
    if not host.get("Privileged"):  # Docker records its defaults; privileged gets none at start
        host.setdefault("MaskedPaths", list(MASKED_PATHS))
        host.setdefault("ReadonlyPaths", list(READONLY_PATHS))
    if host.get("PidsLimit") is not None and host["PidsLimit"] <= 0:
        host["PidsLimit"] = None  # 0 and -1 mean unlimited
    if host.get("Memory") and 0 < host["Memory"] < 6 * 1024 * 1024:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    if host.get("Memory", 0) > 0 and not host.get("MemorySwap"):
        # dockerd's default: as much swap as memory, in Go's int64 (which wraps: 2**63-1 -> -2)
        host["MemorySwap"] = (2 * host["Memory"] + 2**63) % 2**64 - 2**63
    return config, host
