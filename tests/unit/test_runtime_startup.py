"""berth-runtime's start-up budget: what a `create`/`run` loads, checked by cause, not by clock.

An OCI runtime is started for every container operation, and each module it imports is paid
on every one of them (bench/runtime.py measures the whole; docs/runtime.md "Speed"). Loading the
modules a `run` of a minimal bundle needs (its command, the container's init, the cgroup
manager) in a fresh `python -IS` must not load what only other paths need.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")

# what a minimal bundle's run must not pay for (and why it would have)
NOT_LOADED = (
    "ctypes",  # berth.libcontainer.cabi calls through _ctypes (the package costs ~2.6 ms)
    "struct",  # init brings the loopback up with int.to_bytes
    "hashlib",  # only the seccomp cache hashes, and with _sha256
    "pathlib",
    "re",
    "enum",
    "typing",
    "dataclasses",
    "argparse",
    "subprocess",
    "socket",
    "signal",
    "json.decoder",
    "berth.libcontainer.setns",  # exec only
    "berth.libcontainer.userns",  # a user namespace only
    "berth.libcontainer.hookrun",  # in-container hooks only
    "berth.libcontainer.devicefilter",  # cgroup v2 only
    "berth.libcontainer.enosysstub",  # compiling a seccomp profile only
    "berth.libcontainer.cgroups.extralimits",  # OCI-only limits on v1
    "berth.libcontainer.seccompprofile",  # the daemon's
)

SCRIPT = """
import sys
sys.path.insert(0, {src!r})
import berth.runtime.cli, berth.runtime.create, berth.runtime.control, berth.runtime.state
import berth.runtime.bundle, berth.runtime.hooks, berth.libcontainer.cgroups.warm
import berth.libcontainer.process, berth.libcontainer.init, berth.libcontainer.rootfs
from berth.libcontainer.cgroups import open_cgroup
open_cgroup("berth-startup-test")
print(" ".join(sorted(sys.modules)))
"""


def test_a_run_loads_nothing_it_does_not_use():
    proc = subprocess.run(
        [sys.executable, "-IS", "-c", SCRIPT.format(src=SRC)], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(proc.stdout.split())
    assert "berth.libcontainer.init" in loaded and "berth.libcontainer.kernel" in loaded
    unexpected = [m for m in NOT_LOADED if m in loaded]
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():  # a v2 host's manager writes them too
        unexpected = [m for m in unexpected if m != "berth.libcontainer.cgroups.extralimits"]
    assert sorted(unexpected) == []


def test_cabi_calls_c_as_ctypes_does():
    """The _ctypes-only layer: errno saved, argument and return types, buffers, structures."""
    import ctypes
    import errno
    import os

    from berth.libcontainer import cabi

    libc = cabi.Library(None)
    getpid = libc.function("getpid", ())
    assert getpid() == os.getpid()
    close = libc.function("close", (cabi.c_int,))
    assert close(-1) == -1 and cabi.get_errno() == errno.EBADF
    strlen = libc.function("strlen", (cabi.c_char_p,), cabi.c_size_t)
    assert strlen(b"berth") == 5
    buf = cabi.create_string_buffer(b"ab\0c")
    assert bytes(buf) == bytes(ctypes.create_string_buffer(b"ab\0c")) == b"ab\0c\0"
    assert len(cabi.create_string_buffer(16)) == 16 and bytes(cabi.create_string_buffer(b"xy", 4)) == b"xy\0\0"
    memcpy = libc.function("memcpy", (cabi.c_void_p, cabi.c_void_p, cabi.c_size_t), cabi.c_void_p)
    dst = cabi.create_string_buffer(5)
    memcpy(cabi.addressof(dst), cabi.addressof(buf), 4)
    assert dst.raw == b"ab\0c\0"

    class Mine(cabi.Structure):
        _fields_ = [("a", cabi.c_ushort), ("b", cabi.c_uint64), ("c", cabi.c_char_p)]

    class Theirs(ctypes.Structure):
        _fields_ = [("a", ctypes.c_ushort), ("b", ctypes.c_uint64), ("c", ctypes.c_char_p)]

    assert cabi.sizeof(Mine) == ctypes.sizeof(Theirs) and Mine.b.offset == Theirs.b.offset
    m = Mine(3, 1 << 40, b"x")
    assert (m.a, m.b, m.c) == (3, 1 << 40, b"x")
    try:
        libc.function("no_such_function_in_libc")
    except AttributeError:
        pass
    else:
        raise AssertionError("a missing symbol must raise AttributeError")
    try:
        cabi.Library("libberth-no-such-library.so.9")
    except OSError:
        pass
    else:
        raise AssertionError("a missing library must raise OSError")
