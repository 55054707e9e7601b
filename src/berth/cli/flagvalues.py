"""Values of docker's run/create flags, parsed as the docker CLI parses them.

Each function takes one flag value and returns the API's shape, or raises InvalidParameter
with docker's text: ``-p`` (nat.ParsePortSpec, ranges included), ``--mount``, ``--restart``,
``--ulimit``, ``--device``, ``--cpus``, ``-e``/``--env-file``, ``-l``/``--label-file``.

    >>> parse_publish("127.0.0.1:8080:80")
    [('80/tcp', {'HostIp': '127.0.0.1', 'HostPort': '8080'})]
    >>> parse_restart("on-failure:3")
    {'Name': 'on-failure', 'MaximumRetryCount': 3}
"""

from __future__ import annotations

from berth.cli.units import bytes_size
from berth.errors import InvalidParameter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def read_kv_file(path: str, what: str) -> list[str]:
    """An --env-file / --label-file: KEY=VALUE lines, ``#`` comments and blank lines skipped."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise InvalidParameter(f"open {what} {path}: {exc.strerror}") from exc
    out = []
    for line in lines:
        text = line.lstrip()
        if not text or text.startswith("#"):
            continue
        out.append(text)
    return out


def resolve_env(items: list[str], environ: dict[str, str]) -> list[str]:
    """``KEY=VALUE`` as is; a bare ``KEY`` takes our environment's value, or is dropped."""
    out = []
    for item in items:
        key, sep, _ = item.partition("=")
        if not key:
            raise InvalidParameter(f"invalid environment variable: {item}")
        if sep:
            out.append(item)
        elif key in environ:
            out.append(f"{key}={environ[key]}")
    return out


def parse_labels(items: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise InvalidParameter(f"invalid label: {item}")
        labels[key] = value
    return labels


def port_range(text: str) -> tuple[int, int]:
    start, sep, end = text.partition("-")
    try:
        lo = int(start)
        hi = int(end) if sep else lo
    except ValueError:
        raise InvalidParameter(f"invalid containerPort: {text}") from None
    if not (0 <= lo <= 65535 and 0 <= hi <= 65535) or hi < lo:
        raise InvalidParameter(f"invalid port range: {text}")
    return lo, hi


def parse_publish(spec: str) -> list[tuple[str, dict[str, str]]]:
    """nat.ParsePortSpec: ``[ip:][hostPort:]containerPort[/proto]`` with ranges.

    Returns ``[("80/tcp", {"HostIp": ..., "HostPort": ...}), ...]``.
    """
    rest, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidParameter(f"invalid proto: {proto}")
    ip = ""
    if rest.startswith("["):
        close = rest.find("]")
        if close < 0:
            raise InvalidParameter(f"invalid IP address in {spec}")
        ip, rest = rest[1:close], rest[close + 2 :]
        host_port, _, container = rest.rpartition(":")
    else:
        parts = rest.split(":")
        if len(parts) == 1:
            host_port, container = "", parts[0]
        elif len(parts) == 2:
            host_port, container = parts
        elif len(parts) == 3:
            ip, host_port, container = parts
        else:
            raise InvalidParameter(f"invalid port format: {spec}")
    if not container:
        raise InvalidParameter(f"no port specified: {spec}<empty>")
    clo, chi = port_range(container)
    hlo = hhi = 0
    if host_port:
        hlo, hhi = port_range(host_port)
        if hhi - hlo != chi - clo and clo != chi:
            raise InvalidParameter(
                f"invalid ranges specified for container and host Ports: {container} and {host_port}"
            )
    out = []
    for i, port in enumerate(range(clo, chi + 1)):
        if not host_port:
            hp = ""
        elif hhi - hlo == chi - clo:
            hp = str(hlo + i)
        else:
            hp = host_port  # one container port, a host range: the daemon picks from it
        out.append((f"{port}/{proto}", {"HostIp": ip, "HostPort": hp}))
    return out


def parse_mount(spec: str) -> dict[str, Any]:
    """``--mount type=bind,source=/a,target=/b,readonly``."""
    mount: dict[str, Any] = {"Type": "volume"}
    for field in spec.split(","):
        key, sep, value = field.partition("=")
        key = key.strip().lower()
        if key in ("type",):
            mount["Type"] = value
        elif key in ("source", "src"):
            mount["Source"] = value
        elif key in ("target", "destination", "dst"):
            mount["Target"] = value
        elif key in ("readonly", "ro"):
            mount["ReadOnly"] = (not sep) or value.lower() in ("1", "true")
        elif key == "bind-propagation":
            mount.setdefault("BindOptions", {})["Propagation"] = value
        elif key == "tmpfs-size":
            mount.setdefault("TmpfsOptions", {})["SizeBytes"] = bytes_size(value)
        elif key == "tmpfs-mode":
            mount.setdefault("TmpfsOptions", {})["Mode"] = int(value, 8)
        elif key == "volume-nocopy":
            mount.setdefault("VolumeOptions", {})["NoCopy"] = True
        else:
            raise InvalidParameter(
                f"invalid argument \"{spec}\" for \"--mount\" flag: unexpected key '{key}' in '{field}'"
            )
    if not mount.get("Target"):
        raise InvalidParameter(f'invalid argument "{spec}" for "--mount" flag: target is required')
    return mount


def parse_restart(text: str) -> dict[str, Any]:
    name, _, count = text.partition(":")
    if name not in ("", "no", "always", "unless-stopped", "on-failure"):
        raise InvalidParameter(f"invalid restart policy '{name}'")
    if count and name != "on-failure":
        raise InvalidParameter(f"maximum retry count cannot be used with restart policy '{name}'")
    try:
        retries = int(count) if count else 0
    except ValueError:
        raise InvalidParameter(f"maximum retry count must be an integer: {count}") from None
    return {"Name": name or "no", "MaximumRetryCount": retries}


def parse_ulimit(text: str) -> dict[str, Any]:
    name, sep, values = text.partition("=")
    if not sep:
        raise InvalidParameter(f"invalid ulimit argument: {text}")
    soft, _, hard = values.partition(":")
    try:
        return {"Name": name, "Soft": int(soft), "Hard": int(hard or soft)}
    except ValueError:
        raise InvalidParameter(f"invalid ulimit argument: {text}") from None


def parse_device(text: str) -> dict[str, str]:
    parts = text.split(":")
    host = parts[0]
    container = parts[1] if len(parts) > 1 and parts[1] else host
    perms = parts[2] if len(parts) > 2 else "rwm"
    return {"PathOnHost": host, "PathInContainer": container, "CgroupPermissions": perms}


def nano_cpus(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise InvalidParameter(
            f'invalid argument "{text}" for "--cpus" flag: failed to parse {text} as a rational number'
        ) from None
    return int(round(value * 1e9))
