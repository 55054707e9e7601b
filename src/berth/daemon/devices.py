"""A container's devices: ``HostConfig.Devices``, ``DeviceCgroupRules``, ``DeviceRequests``.

``check(host)`` at create refuses what is wrong in itself (400, nothing created): a relative
container path, permissions other than r/w/m, a cgroup rule not in ``TYPE MAJOR:MINOR ACCESS``
form, a CDI request with a count or a malformed name. ``apply(host, spec, cdi_dirs)`` at start
adds them to the OCI spec the exec driver built, as moby's ``WithDevices`` and device drivers
do: host nodes (a missing one or a non-device fails the start with dockerd's text), the cgroup
rules, then the CDI devices the requests name (``--device vendor.com/class=name``, ``--gpus``).
A privileged container already has every host device and an allow-all device cgroup; its CDI
requests still apply.

    spec = apply(c.host_config, build_spec(inp), cdi_dirs=["/etc/cdi", "/var/run/cdi"])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from berth.drivers.device import cdi, requests
from berth.drivers.device.nodes import DeviceError, check_mapping, devices_from_path, parse_cgroup_rule

DEFAULT_CDI_DIRS = ("/etc/cdi", "/var/run/cdi")
# --device-read-bps ... -> OCI linux.resources.blockIO keys (moby's getBlkioThrottleDevices)
THROTTLES = (
    ("BlkioDeviceReadBps", "throttleReadBpsDevice"),
    ("BlkioDeviceWriteBps", "throttleWriteBpsDevice"),
    ("BlkioDeviceReadIOps", "throttleReadIOPSDevice"),
    ("BlkioDeviceWriteIOps", "throttleWriteIOPSDevice"),
)


def check(host: dict[str, Any]) -> None:
    for mapping in host.get("Devices") or ():
        check_mapping(mapping)
    for rule in host.get("DeviceCgroupRules") or ():
        parse_cgroup_rule(str(rule))
    requests.check(host.get("DeviceRequests"))


def reads_host(host: dict[str, Any]) -> bool:
    """Whether :func:`apply` reads the host for this HostConfig (device nodes, block devices,
    CDI specs): then it belongs in a thread; else it only fills in the spec."""
    fields = ("Devices", "DeviceRequests", "BlkioWeightDevice", *(f for f, _ in THROTTLES))
    return any(host.get(f) for f in fields)


def apply(host: dict[str, Any], spec: dict[str, Any], cdi_dirs: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Add the container's devices to ``spec`` (in place; also returned). Reads the host."""
    linux = spec.setdefault("linux", {})
    resources = linux.setdefault("resources", {})
    if not host.get("Privileged"):
        nodes: list[dict[str, Any]] = []
        rules: list[dict[str, Any]] = []
        for mapping in host.get("Devices") or ():
            found, allowed = devices_from_path(*check_mapping(mapping))
            nodes += found
            rules += allowed
        rules += [parse_cgroup_rule(str(r)) for r in host.get("DeviceCgroupRules") or ()]
        if nodes:
            paths = {n["path"] for n in nodes}
            linux["devices"] = [d for d in linux.get("devices") or [] if d.get("path") not in paths] + nodes
        if rules:
            resources["devices"] = [*(resources.get("devices") or []), *rules]
    throttles = block_io_throttles(host)
    if throttles:
        resources.setdefault("blockIO", {}).update(throttles)
    wanted = host.get("DeviceRequests") or ()
    if wanted:
        registry = cdi.Registry([Path(d) for d in (cdi_dirs or DEFAULT_CDI_DIRS)])
        names = requests.cdi_names(wanted, registry.names())
        if names:
            # the devices' hooks join the spec's, each phase run at its moment by whichever exec
            # driver runs the container (berth.shim.native, or an OCI runtime binary)
            cdi.apply(spec, registry.resolve(names))
    return spec



def block_io_throttles(host: dict[str, Any]) -> dict[str, list[dict[str, int]]]:
    """``--device-read-bps`` and kin (and ``--blkio-weight-device``) as OCI ``blockIO`` lists: each path's device numbers
    from a stat of the host path, as moby does (a missing path fails the start with its text;
    a node the block I/O controller does not know fails when the cgroup is written)."""
    out: dict[str, list[dict[str, int]]] = {}
    for field, key in THROTTLES:
        for entry in host.get(field) or ():
            path, rate = str(entry.get("Path") or ""), int(entry.get("Rate") or 0)
            try:
                rdev = os.stat(path).st_rdev
            except OSError as exc:
                raise DeviceError(f"stat {path}: {(exc.strerror or str(exc)).lower()}") from exc
            out.setdefault(key, []).append({"major": os.major(rdev), "minor": os.minor(rdev), "rate": rate})
    for entry in host.get("BlkioWeightDevice") or ():  # (the create checks drop it where unsupported)
        path, weight = str(entry.get("Path") or ""), int(entry.get("Weight") or 0)
        try:
            rdev = os.stat(path).st_rdev
        except OSError as exc:
            raise DeviceError(f"stat {path}: {(exc.strerror or str(exc)).lower()}") from exc
        out.setdefault("weightDevice", []).append({"major": os.major(rdev), "minor": os.minor(rdev), "weight": weight})
    return out
