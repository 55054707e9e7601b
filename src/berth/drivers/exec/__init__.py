"""Exec drivers: run a container's OCI spec. ``native`` = berth.libcontainer via a monitor per container.

    from berth.drivers.exec import NativeDriver, CreateRequest, build_spec, SpecInput
"""

from berth.drivers.exec.driver import ContainerHandle, ExecDriver, ExecProcess, Handle, Output
from berth.drivers.exec.handle import ExecHandle, MonitorHandle
from berth.drivers.exec.model import CreateRequest, ExitStatus
from berth.drivers.exec.native import NativeDriver
from berth.drivers.exec.spec import SpecInput, build_spec

__all__ = [
    "ContainerHandle", "CreateRequest", "ExecDriver", "ExecHandle", "ExecProcess", "ExitStatus", "Handle",
    "MonitorHandle", "NativeDriver", "Output", "SpecInput", "build_spec",
]
