"""Exec drivers: run a container's OCI spec. ``native`` = berth.libcontainer via a monitor per container.

    from berth.drivers.exec import NativeDriver, CreateRequest, build_spec, SpecInput
"""

from berth.drivers.exec.handle import ExecHandle, Handle
from berth.drivers.exec.model import CreateRequest, ExitStatus
from berth.drivers.exec.native import NativeDriver
from berth.drivers.exec.spec import SpecInput, build_spec

__all__ = ["CreateRequest", "ExecHandle", "ExitStatus", "Handle", "NativeDriver", "SpecInput", "build_spec"]
