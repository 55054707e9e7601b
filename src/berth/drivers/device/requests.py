"""``HostConfig.DeviceRequests`` -> the CDI devices they name.

The docker CLI sends ``--device vendor.com/class=name`` as a request with ``Driver: "cdi"`` and the
names as ``DeviceIDs``, and ``--gpus`` as a request for the capability ``gpu`` (``all``: ``Count:
-1``; ``2``: ``Count: 2``; ``device=0,GPU-…``: ``DeviceIDs``). berth serves the ``gpu`` capability
through CDI, as Docker does on a host with the NVIDIA CDI spec (``nvidia-ctk cdi generate``):
``--gpus all`` is ``nvidia.com/gpu=all``, ``--gpus 2`` the devices ``nvidia.com/gpu=0`` and
``=1``, ``--gpus device=GPU-x`` ``nvidia.com/gpu=GPU-x``. Anything else is dockerd's
``could not select device driver`` error.

    >>> cdi_names([{"Driver": "cdi", "DeviceIDs": ["vendor.com/dev=x"]}], ["vendor.com/dev=x"])
    ['vendor.com/dev=x']
    >>> cdi_names([{"Count": -1, "Capabilities": [["gpu"]]}], ["nvidia.com/gpu=0", "nvidia.com/gpu=all"])
    ['nvidia.com/gpu=all']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from berth.drivers.device.cdi import is_qualified_name
from berth.drivers.device.nodes import DeviceError
from berth.errors import InvalidParameter

GPU_KIND = "nvidia.com/gpu"


def _go_caps(caps: Any) -> str:
    """Go's %v of a [][]string: ``[[gpu compute]]``."""
    return "[" + " ".join("[" + " ".join(str(c) for c in group) + "]" for group in caps or []) + "]"


def _no_driver(req: Mapping[str, Any]) -> DeviceError:
    return DeviceError(f'could not select device driver "{req.get("Driver") or ""}" with capabilities: {_go_caps(req.get("Capabilities"))}')


def check(requests: Any) -> None:
    """Create-time checks (400): what can be known wrong without the host's CDI specs."""
    for i, req in enumerate(requests or ()):
        ids = list(req.get("DeviceIDs") or ())
        if req.get("Count") and ids:
            raise InvalidParameter(f"DeviceRequests[{i}]: cannot set both Count and DeviceIDs on device request")
        if req.get("Driver") == "cdi":
            if req.get("Count"):
                raise InvalidParameter(f"DeviceRequests[{i}]: unexpected count in CDI device request")
            if req.get("Options"):
                raise InvalidParameter(f"DeviceRequests[{i}]: unexpected options in CDI device request")
            for name in ids:
                if not is_qualified_name(name):
                    raise InvalidParameter(f"DeviceRequests[{i}]: invalid CDI device name {name!r}: it is not vendor.com/class=name")


def _wants_gpu(req: Mapping[str, Any]) -> bool:
    return req.get("Driver") in ("", None, "nvidia") and any("gpu" in (group or []) for group in req.get("Capabilities") or [])


def cdi_names(requests: Any, available: Iterable[str]) -> list[str]:
    """The qualified CDI names ``requests`` ask for, given the names the host's specs define."""
    offered = list(available)
    gpus = [n.partition("=")[2] for n in offered if n.partition("=")[0] == GPU_KIND]
    out: list[str] = []
    for req in requests or ():
        ids = [str(x) for x in req.get("DeviceIDs") or ()]
        if req.get("Driver") == "cdi":
            out += ids
            continue
        if not _wants_gpu(req) or not gpus:
            raise _no_driver(req)
        count = int(req.get("Count") or 0)
        if ids:
            out += [x if is_qualified_name(x) else f"{GPU_KIND}={x}" for x in ids]
        elif count < 0:  # every GPU: the spec's "all" device, or each one it defines
            out += [f"{GPU_KIND}=all"] if "all" in gpus else [f"{GPU_KIND}={g}" for g in gpus]
        elif count > 0:
            numbered = sorted((g for g in gpus if g.isdigit()), key=int)
            if len(numbered) < count:
                raise DeviceError(
                    f"could not select {count} GPUs: the CDI specs define {len(numbered)} ({GPU_KIND}={','.join(numbered) or '-'})"
                )
            out += [f"{GPU_KIND}={g}" for g in numbered[:count]]
    return list(dict.fromkeys(out))  # each device once, in request order
