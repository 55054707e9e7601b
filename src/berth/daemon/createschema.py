"""The JSON shape of a ``POST /containers/create`` body, checked the way Go's decoder checks it.

dockerd decodes the body into typed Go structs (``runconfig.ContainerConfigWrapper``: the
``container.Config`` fields, ``HostConfig``, ``NetworkingConfig``), so a wrong shape anywhere
(``CapAdd: [1]``, ``Ulimits: ["a"]``, a ``Memory`` beyond int64) is refused before anything
else, with Go's text; ``null`` leaves a field at its zero value. berth checks the same schema,
in document order, and raises the first error as Go would report it::

    >>> check({"Image": "busybox", "HostConfig": {"Memory": 1.5}})
    Traceback (most recent call last):
    ...
    berth.errors.InvalidParameter: json: cannot unmarshal number 1.5 into Go struct field HostConfig.HostConfig.Memory of type int64

Unknown fields are ignored, as Go ignores them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from berth.errors import InvalidParameter


@dataclass(frozen=True)
class Str:
    go: str = "string"


@dataclass(frozen=True)
class Bool:
    go: str = "bool"


@dataclass(frozen=True)
class Int:
    go: str
    lo: int
    hi: int


@dataclass(frozen=True)
class List:
    elem: Any
    go: str
    length: int = 0  # a Go array ([2]uint): extra elements are dropped, not refused


@dataclass(frozen=True)
class Map:
    value: Any
    go: str


@dataclass(frozen=True)
class StrSlice:
    """``strslice.StrSlice`` (Cmd, Entrypoint, Shell, CapAdd, CapDrop): a string or a list of
    strings; anything else is reported as that value into ``string``."""

    go: str = "string"


@dataclass(frozen=True)
class EmptyStruct:
    """``struct {}`` (the values of ExposedPorts and Volumes): any object."""

    go: str = "struct {}"


@dataclass(frozen=True)
class Struct:
    name: str  # Go's struct name in the error's prefix: "HostConfig"
    go: str  # the qualified type in "of type ...": "container.HostConfig"
    fields: dict[str, Any]


S, B = Str(), Bool()
INT = Int("int", -(2**63), 2**63 - 1)
I64 = Int("int64", -(2**63), 2**63 - 1)
U16 = Int("uint16", 0, 2**16 - 1)
U32 = Int("os.FileMode", 0, 2**32 - 1)
U64 = Int("uint64", 0, 2**64 - 1)
UINT = Int("uint", 0, 2**64 - 1)
DURATION = Int("time.Duration", -(2**63), 2**63 - 1)
STRINGS = List(S, "[]string")
STRMAP = Map(S, "map[string]string")


def _throttle() -> List:
    return List(Struct("ThrottleDevice", "blkiodev.ThrottleDevice", {"Path": S, "Rate": U64}), "[]*blkiodev.ThrottleDevice")


_RESOURCES: dict[str, Any] = {
    "CpuShares": I64, "Memory": I64, "NanoCpus": I64, "CgroupParent": S, "BlkioWeight": U16,
    "BlkioWeightDevice": List(Struct("WeightDevice", "blkiodev.WeightDevice", {"Path": S, "Weight": U16}),
                              "[]*blkiodev.WeightDevice"),
    "BlkioDeviceReadBps": _throttle(), "BlkioDeviceWriteBps": _throttle(),
    "BlkioDeviceReadIOps": _throttle(), "BlkioDeviceWriteIOps": _throttle(),
    "CpuPeriod": I64, "CpuQuota": I64, "CpuRealtimePeriod": I64, "CpuRealtimeRuntime": I64,
    "CpusetCpus": S, "CpusetMems": S,
    "Devices": List(Struct("DeviceMapping", "container.DeviceMapping",
                           {"PathOnHost": S, "PathInContainer": S, "CgroupPermissions": S}), "[]container.DeviceMapping"),
    "DeviceCgroupRules": STRINGS,
    "DeviceRequests": List(Struct("DeviceRequest", "container.DeviceRequest", {
        "Driver": S, "Count": INT, "DeviceIDs": STRINGS, "Capabilities": List(STRINGS, "[][]string"),
        "Options": STRMAP}), "[]container.DeviceRequest"),
    "KernelMemory": I64, "KernelMemoryTCP": I64, "MemoryReservation": I64, "MemorySwap": I64,
    "MemorySwappiness": I64, "OomKillDisable": B, "PidsLimit": I64,
    "Ulimits": List(Struct("Ulimit", "units.Ulimit", {"Name": S, "Hard": I64, "Soft": I64}), "[]*units.Ulimit"),
    "CpuCount": I64, "CpuPercent": I64, "IOMaximumIOps": U64, "IOMaximumBandwidth": U64,
}  # fmt: skip

_MOUNT = Struct("Mount", "mount.Mount", {
    "Type": S, "Source": S, "Target": S, "ReadOnly": B, "Consistency": S,
    "BindOptions": Struct("BindOptions", "mount.BindOptions", {"Propagation": S, "NonRecursive": B}),
    "VolumeOptions": Struct("VolumeOptions", "mount.VolumeOptions", {
        "NoCopy": B, "Labels": STRMAP,
        "DriverConfig": Struct("Driver", "mount.Driver", {"Name": S, "Options": STRMAP})}),
    "TmpfsOptions": Struct("TmpfsOptions", "mount.TmpfsOptions", {"SizeBytes": I64, "Mode": U32}),
})  # fmt: skip

HOST_CONFIG = Struct("HostConfig", "container.HostConfig", {
    "Binds": STRINGS, "ContainerIDFile": S,
    "LogConfig": Struct("LogConfig", "container.LogConfig", {"Type": S, "Config": STRMAP}),
    "NetworkMode": S,
    "PortBindings": Map(List(Struct("PortBinding", "nat.PortBinding", {"HostIp": S, "HostPort": S}),
                             "[]nat.PortBinding"), "nat.PortMap"),
    "RestartPolicy": Struct("RestartPolicy", "container.RestartPolicy", {"Name": S, "MaximumRetryCount": INT}),
    "AutoRemove": B, "VolumeDriver": S, "VolumesFrom": STRINGS, "CapAdd": StrSlice(), "CapDrop": StrSlice(),
    "CgroupnsMode": S, "Dns": STRINGS, "DnsOptions": STRINGS, "DnsSearch": STRINGS, "ExtraHosts": STRINGS,
    "GroupAdd": STRINGS, "IpcMode": S, "Cgroup": S, "Links": STRINGS, "OomScoreAdj": INT, "PidMode": S,
    "Privileged": B, "PublishAllPorts": B, "ReadonlyRootfs": B, "SecurityOpt": STRINGS, "StorageOpt": STRMAP,
    "Tmpfs": STRMAP, "UTSMode": S, "UsernsMode": S, "ShmSize": I64, "Sysctls": STRMAP, "Runtime": S,
    "ConsoleSize": List(UINT, "[2]uint", length=2), "Isolation": S,
    **_RESOURCES,
    "Mounts": List(_MOUNT, "[]mount.Mount"), "MaskedPaths": STRINGS, "ReadonlyPaths": STRINGS, "Init": B,
})  # fmt: skip

_ENDPOINT = Struct("EndpointSettings", "network.EndpointSettings", {
    "IPAMConfig": Struct("EndpointIPAMConfig", "network.EndpointIPAMConfig",
                         {"IPv4Address": S, "IPv6Address": S, "LinkLocalIPs": STRINGS}),
    "Links": STRINGS, "Aliases": STRINGS, "NetworkID": S, "EndpointID": S, "Gateway": S, "IPAddress": S,
    "IPPrefixLen": INT, "IPv6Gateway": S, "GlobalIPv6Address": S, "GlobalIPv6PrefixLen": INT,
    "MacAddress": S, "DriverOpts": STRMAP,
})  # fmt: skip

CREATE_BODY = Struct("ContainerConfigWrapper", "runconfig.ContainerConfigWrapper", {
    "Hostname": S, "Domainname": S, "User": S, "AttachStdin": B, "AttachStdout": B, "AttachStderr": B,
    "ExposedPorts": Map(EmptyStruct(), "nat.PortSet"), "Tty": B, "OpenStdin": B, "StdinOnce": B,
    "Env": STRINGS, "Cmd": StrSlice(),
    "Healthcheck": Struct("HealthConfig", "container.HealthConfig", {
        "Test": STRINGS, "Interval": DURATION, "Timeout": DURATION, "StartPeriod": DURATION, "Retries": INT}),
    "ArgsEscaped": B, "Image": S, "Volumes": Map(EmptyStruct(), "map[string]struct {}"), "WorkingDir": S,
    "Entrypoint": StrSlice(), "NetworkDisabled": B, "MacAddress": S, "OnBuild": STRINGS, "Labels": STRMAP,
    "StopSignal": S, "StopTimeout": INT, "Shell": StrSlice(),
    "HostConfig": HOST_CONFIG,
    "NetworkingConfig": Struct("NetworkingConfig", "network.NetworkingConfig",
                               {"EndpointsConfig": Map(_ENDPOINT, "map[string]*network.EndpointSettings")}),
})  # fmt: skip


class _Mismatch(Exception):
    def __init__(self, value: str, go: str, struct: str, path: str) -> None:
        self.value, self.go, self.struct, self.path = value, go, struct, path


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _number_text(value: int | float) -> str:
    # Go prints the literal as sent; Python's repr differs only in the exponent's sign (1e+30)
    return str(value) if isinstance(value, int) else repr(value).replace("e+", "e")


def _walk(schema: Any, value: Any, struct: str, path: str) -> None:
    if value is None:
        return  # Go leaves the zero value
    if isinstance(schema, Struct):
        if not isinstance(value, dict):
            raise _Mismatch(_kind(value), schema.go, struct, path)
        for key, item in value.items():
            sub = schema.fields.get(key)
            if sub is not None:
                # Fields of the top-level wrapper (and of Config, embedded in it) have no prefix.
                _walk(sub, item, schema.name, f"{path}.{key}" if path else key)
        return
    if isinstance(schema, Str | Bool):
        ok = isinstance(value, str) if isinstance(schema, Str) else isinstance(value, bool)
        if not ok:
            raise _Mismatch(_kind(value), schema.go, struct, path)
        return
    if isinstance(schema, Int):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Mismatch(_kind(value), schema.go, struct, path)
        if isinstance(value, float) or not schema.lo <= value <= schema.hi:
            raise _Mismatch("number " + _number_text(value), schema.go, struct, path)
        return
    if isinstance(schema, StrSlice):
        if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str | None) for v in value)):
            return
        raise _Mismatch(_kind(value), schema.go, struct, path)
    if isinstance(schema, EmptyStruct):
        if not isinstance(value, dict):
            raise _Mismatch(_kind(value), schema.go, struct, path)
        return
    if isinstance(schema, List):
        if not isinstance(value, list):
            raise _Mismatch(_kind(value), schema.go, struct, path)
        items = value[: schema.length] if schema.length else value
        # An element that is not a struct at all is reported against the containing field;
        # inside a struct element, against that struct (Go: "Ulimit.HostConfig.Ulimits.Soft").
        for item in items:
            _walk(schema.elem, item, struct, path)
        return
    if isinstance(schema, Map):
        if not isinstance(value, dict):
            raise _Mismatch(_kind(value), schema.go, struct, path)
        for item in value.values():
            _walk(schema.value, item, struct, path)
        return
    raise AssertionError(f"unknown schema node {schema!r}")


def check(body: Any) -> None:
    """Raise Go's ``json: cannot unmarshal ...`` as an InvalidParameter for a wrong shape."""
    if not isinstance(body, dict):
        raise InvalidParameter(f"json: cannot unmarshal {_kind(body)} into Go value of type {CREATE_BODY.go}")
    try:
        _walk(CREATE_BODY, body, CREATE_BODY.name, "")
    except _Mismatch as exc:
        raise InvalidParameter(
            f"json: cannot unmarshal {exc.value} into Go struct field {exc.struct}.{exc.path} of type {exc.go}"
        ) from None
