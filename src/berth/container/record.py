"""The Container record and its state machine.

A container is ``created`` → ``running`` ⇄ ``paused`` → ``exited`` (→ ``running`` again on
start/restart) and finally removed. The record is what the daemon stores (one JSON document
per container in SQLite) and what ``inspect`` and ``ps`` show, in Docker's shapes.

    c = Container.new(id=..., name="web", image="busybox", image_id="sha256:…", ...)
    c.state.to_running(pid=1234)      # ok from created/exited
    c.state.to_exited(0)              # ok from running/paused
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from berth.errors import Conflict
from berth.humanize import human_duration

ZERO_TIME = "0001-01-01T00:00:00Z"


def now_rfc3339() -> str:
    ns = time.time_ns()
    secs, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{nanos:09d}".rstrip("0").rstrip(".") + "Z"


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch for our own RFC3339Nano strings (0.0 for the zero time)."""
    if not text or text.startswith("0001-"):
        return 0.0
    import calendar

    main, _, frac = text.rstrip("Z").partition(".")
    secs = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
    return secs + (float("0." + frac) if frac else 0.0)


@dataclass
class State:
    status: str = "created"  # created | running | paused | restarting | removing | exited | dead
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    oom_killed: bool = False
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    health: dict[str, Any] | None = None  # with a health check: Status, FailingStreak, Log

    @property
    def running(self) -> bool:
        return self.status in ("running", "paused")

    def to_running(self, pid: int) -> None:
        if self.status not in ("created", "exited", "restarting"):
            raise Conflict(f"cannot start a container that is {self.status}")
        self.status, self.pid, self.exit_code, self.error, self.oom_killed = "running", pid, 0, "", False
        self.started_at = now_rfc3339()

    def to_exited(self, exit_code: int, oom_killed: bool = False, finished_at: str = "", error: str = "") -> None:
        self.status, self.pid = "exited", 0
        self.exit_code, self.oom_killed, self.error = exit_code, oom_killed, error
        self.finished_at = finished_at or now_rfc3339()

    def to_restarting(self) -> None:
        """Exited, with a restart policy's start to come (dockerd's ``SetRestarting``)."""
        if self.status != "exited":
            raise Conflict(f"cannot restart a container that is {self.status}")
        self.status = "restarting"

    def start_failed(self, exit_code: int, error: str) -> None:
        # Docker leaves a container whose start failed in "created" (or "exited" if it ran
        # before) with the exit code and error recorded.
        self.exit_code, self.error, self.pid = exit_code, error, 0
        self.finished_at = now_rfc3339()

    def to_paused(self) -> None:
        if self.status != "running":
            raise Conflict("Container is not running" if self.status != "paused" else "Container is already paused")
        self.status = "paused"

    def to_unpaused(self) -> None:
        if self.status != "paused":
            raise Conflict("Container is not paused")
        self.status = "running"

    def to_docker(self) -> dict[str, Any]:
        return {
            "Status": self.status,
            "Running": self.status in ("running", "paused", "restarting"),  # dockerd's: restarting runs
            "Paused": self.status == "paused",
            "Restarting": self.status == "restarting",
            "OOMKilled": self.oom_killed,
            "Dead": self.status == "dead",
            "Pid": self.pid,
            "ExitCode": self.exit_code,
            "Error": self.error,
            "StartedAt": self.started_at,
            "FinishedAt": self.finished_at,
            **({"Health": self.health} if self.health is not None else {}),
        }

    def human(self, now: float | None = None) -> str:
        """ps's Status column: ``Up 2 seconds``, ``Exited (0) 3 seconds ago``, ``Created``."""
        now = time.time() if now is None else now
        if self.status in ("running", "paused"):
            text = "Up " + human_duration(now - parse_rfc3339(self.started_at))
            if self.status == "paused":
                return text + " (Paused)"
            if self.health is not None:
                status = self.health.get("Status") or "starting"
                return text + (" (health: starting)" if status == "starting" else f" ({status})")
            return text
        if self.status == "restarting":
            return f"Restarting ({self.exit_code}) {human_duration(now - parse_rfc3339(self.finished_at))} ago"
        if self.status == "exited":
            if self.finished_at == ZERO_TIME:
                return f"Exited ({self.exit_code})"
            return f"Exited ({self.exit_code}) {human_duration(now - parse_rfc3339(self.finished_at))} ago"
        return self.status.capitalize()


@dataclass
class Container:
    id: str
    name: str  # without the leading "/"
    created: str
    image: str  # as the user named it
    image_id: str
    path: str
    args: list[str]
    config: dict[str, Any]  # Docker's Config (merged with the image's)
    host_config: dict[str, Any]
    driver: str
    dir: str  # <data_root>/containers/<id>
    state: State = field(default_factory=State)
    restart_count: int = 0
    manually_stopped: bool = False  # stopped or killed by a user: unless-stopped stays down
    exec_ids: list[str] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)  # Docker's Mounts[] (inspect, ps)
    # network name -> the EndpointSettings asked for (aliases, IPAMConfig, MacAddress, NetworkID)
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    # its user namespace's maps, fixed at create: {"uid": [[container, host, size]...], "gid": [...]};
    # None: the host's (berth.daemon.remap)
    userns: dict[str, list[list[int]]] | None = None

    @property
    def tty(self) -> bool:
        return bool(self.config.get("Tty"))

    @property
    def log_path(self) -> str:
        """json-file's ``<id>-json.log``; the local driver's ``local-logs/container.log``."""
        if (self.host_config.get("LogConfig") or {}).get("Type") == "local":
            return f"{self.dir}/local-logs/container.log"
        return f"{self.dir}/{self.id}-json.log"

    @property
    def log_driver(self) -> str:
        return str((self.host_config.get("LogConfig") or {}).get("Type") or "json-file")

    @property
    def logs_kept(self) -> bool:
        """False with ``--log-driver none``: no log file is written or read."""
        return bool((self.host_config.get("LogConfig") or {}).get("Type", "json-file") != "none")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Container:
        data = dict(data)
        data["state"] = State(**data.get("state", {}))
        return cls(**data)

    def labels(self) -> dict[str, str]:
        return dict(self.config.get("Labels") or {})

    def inspect(self) -> dict[str, Any]:
        network_mode = self.host_config.get("NetworkMode") or "default"
        return {
            "Id": self.id,
            "Created": self.created,
            "Path": self.path,
            "Args": self.args,
            "State": self.state.to_docker(),
            "Image": self.image_id,
            "ResolvConfPath": f"{self.dir}/resolv.conf",
            "HostnamePath": f"{self.dir}/hostname",
            "HostsPath": f"{self.dir}/hosts",
            "LogPath": self.log_path if self.logs_kept and self.log_driver == "json-file" else "",
            "Name": "/" + self.name,
            "RestartCount": self.restart_count,
            "Driver": self.driver,
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": list(self.exec_ids) or None,
            "HostConfig": self.host_config,
            "GraphDriver": {"Data": None, "Name": self.driver},
            "Mounts": [dict(m) for m in self.mounts],
            "Config": self.config,
            "NetworkSettings": self._network_settings(network_mode),
        }

    def _network_settings(self, mode: str) -> dict[str, Any]:
        networks: dict[str, Any] = {}
        name = {"default": "bridge"}.get(mode, mode)
        if not name.startswith("container:"):
            networks[name] = {
                "IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "", "NetworkID": name,
                "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
                "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DriverOpts": None, "DNSNames": None,
            }
        return {
            "Bridge": "", "SandboxID": "", "SandboxKey": "", "Ports": {}, "HairpinMode": False,
            "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None, "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
            "Networks": networks,
        }

    def summary(self, image_display: str) -> dict[str, Any]:
        """One row of ``GET /containers/json``."""
        command = " ".join([self.path, *self.args]).strip()
        return {
            "Id": self.id,
            "Names": ["/" + self.name],
            "Image": image_display,
            "ImageID": self.image_id,
            "Command": command,
            "Created": int(parse_rfc3339(self.created)),
            "Ports": [],
            "Labels": self.labels(),
            "State": self.state.status,
            "Status": self.state.human(),
            "HostConfig": {"NetworkMode": self.host_config.get("NetworkMode") or "default"},
            "NetworkSettings": {"Networks": self._network_settings(self.host_config.get("NetworkMode") or "default")["Networks"]},
            "Mounts": [dict(m) for m in self.mounts],
        }
