"""Devices a container is given: host device nodes (``--device``), device cgroup rules
(``--device-cgroup-rule``) and CDI devices (``--device vendor.com/class=name``, ``--gpus``).

Each part turns what the user asked for into OCI spec edits, as moby's ``WithDevices`` and its
device drivers do; the daemon applies them to the spec the exec driver built:

    nodes, rules = devices_from_path("/dev/fuse", "/dev/fuse", "rwm")   # stat of the host node
    rule = parse_cgroup_rule("c 1:11 rwm")                              # pure
    registry = cdi.Registry([Path("/etc/cdi"), Path("/var/run/cdi")])  # reads spec files
    edits = registry.resolve(["vendor.com/dev=x"])                      # raises for unknown names
    cdi.apply(spec, edits)                                              # pure, on the OCI dict

``nodes`` are OCI ``linux.devices`` entries (the node made in the container's /dev), ``rules``
OCI ``linux.resources.devices`` allow entries (the device cgroup, v1 files or v2 eBPF).
"""

from berth.drivers.device.nodes import DeviceError, devices_from_path, parse_cgroup_rule

__all__ = ["DeviceError", "devices_from_path", "parse_cgroup_rule"]
