"""A bundle's ``config.json`` as the runtime reads it, and what it asks that the host cannot give.

    spec = load_bundle(bundle_path(None))   # the current directory; root.path made absolute
    cgroup_name(spec, "c1")                 # linux.cgroupsPath, or "berth-runtime/c1"
    check_host_can_apply(spec)              # CommandError naming the field, before anything is made
"""

from __future__ import annotations

import os

from berth.libcontainer import fastjson as json
from berth.runtime.errors import CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def bundle_path(option: str | os.PathLike[str] | None) -> str:
    """``--bundle`` (the current directory by default), absolute with symlinks resolved."""
    return os.path.realpath(os.fspath(option) if option else ".")


def load_bundle(bundle: str | os.PathLike[str]) -> dict[str, Any]:
    """config.json with root.path made absolute (the OCI spec makes it relative to the bundle)."""
    path = os.path.join(os.fspath(bundle), "config.json")
    try:
        with open(path) as f:
            spec = json.loads(f.read())
    except (OSError, ValueError) as exc:
        raise CommandError(f"read bundle config '{path}': {exc}") from exc
    if not isinstance(spec, dict):
        raise CommandError(f"read bundle config '{path}': not a JSON object")
    root = spec.setdefault("root", {})
    if not isinstance(root, dict) or not isinstance(root.get("path", "rootfs"), str):
        raise CommandError("root.path must be a string")
    root["path"] = os.path.realpath(os.path.join(os.fspath(bundle), root.get("path", "rootfs")))
    return spec


def cgroup_name(spec: dict[str, Any], cid: str) -> str:
    path = (spec.get("linux") or {}).get("cgroupsPath") or f"berth-runtime/{cid}"
    if not isinstance(path, str):
        raise CommandError(f"linux.cgroupsPath: {path!r} is not a string")
    if ":" in path:
        raise CommandError(f"linux.cgroupsPath {path!r}: systemd cgroup paths are not supported")
    return path.strip("/")


def spec_annotations(spec: dict[str, Any]) -> dict[str, str]:
    notes = spec.get("annotations") or {}
    if not isinstance(notes, dict) or not all(isinstance(v, str) for v in notes.values()):
        raise CommandError("annotations must be an object of strings")
    return {str(k): v for k, v in notes.items()}


def chroot_mounts(spec: dict[str, Any]) -> int | None:
    """For a spec without a mount namespace (set up in ours, :mod:`berth.libcontainer.rootfs`
    binds its root), the mounts stacked at the root now; None for every other spec."""
    namespaces = (spec.get("linux") or {}).get("namespaces") or []
    if any(isinstance(ns, dict) and ns.get("type") == "mount" for ns in namespaces):
        return None
    from berth.libcontainer import rootfs

    return rootfs.mounts_at(spec["root"]["path"])


def check_host_can_apply(spec: dict[str, Any]) -> None:
    """What the spec asks and this host (or this runtime's own privileges) cannot give is an
    error naming it, before anything is made: the OCI spec says a value that cannot be mapped
    to the kernel, or granted, MUST be an error. (berthd's own containers are lenient instead:
    ``--privileged`` gets the capabilities the daemon holds.)"""
    from berth.libcontainer import capabilities, kernel
    from berth.libcontainer.cgroups import blkio_weight_supported

    process = spec.get("process") or {}
    namespaces = (spec.get("linux") or {}).get("namespaces") or []
    own_userns = any(isinstance(ns, dict) and ns.get("type") == "user" and not ns.get("path") for ns in namespaces)
    caps = process.get("capabilities") if isinstance(process, dict) else None
    if isinstance(caps, dict) and not own_userns:  # in a user namespace of its own, init holds every one
        held = kernel.capget()[1]
        last = capabilities.last_cap()
        for kind in ("bounding", "effective", "permitted", "inheritable", "ambient"):
            for name in caps.get(kind) or ():
                try:
                    cap = capabilities.number(name)
                except ValueError as exc:
                    raise CommandError(f"process.capabilities.{kind}: {exc}") from exc
                if cap > last:
                    raise CommandError(f"process.capabilities.{kind}: {name} is unknown to this kernel")
                if not held >> cap & 1:
                    raise CommandError(
                        f"process.capabilities.{kind}: {name} cannot be granted: berth-runtime does not hold it"
                    )
    profile = process.get("apparmorProfile") if isinstance(process, dict) else None
    if profile and not apparmor_enabled():
        raise CommandError(f"process.apparmorProfile {profile!r}: AppArmor is not enabled on this host")
    block_io = ((spec.get("linux") or {}).get("resources") or {}).get("blockIO") or {}
    if isinstance(block_io, dict) and block_io.get("weight") and not blkio_weight_supported():
        raise CommandError("linux.resources.blockIO.weight: the host's block I/O controller takes no weight")


def apparmor_enabled() -> bool:
    """The kernel's AppArmor is on (runc's apparmor.IsEnabled). SELinux labels, by contrast,
    are ignored where SELinux is off, as runc and crun do (libselinux is a no-op then)."""
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip().startswith("Y")
    except OSError:
        return False
