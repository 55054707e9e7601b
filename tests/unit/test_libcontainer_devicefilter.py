"""The cgroup v2 device program, run by a tiny interpreter of the opcodes it uses."""

from __future__ import annotations

import struct

import pytest

from berth.libcontainer.cgroups import DEFAULT_DEVICE_RULES
from berth.libcontainer.devicefilter import compile_rules, parse_rule

BLOCK, CHAR = 1, 2
M, R, W = 1, 2, 4


def run(program: bytes, dev_type: int, access: int, major: int, minor: int) -> int:
    ctx = [(access << 16) | dev_type, major, minor]
    regs = [0] * 11
    pc = 0
    insns = [struct.unpack("<BBhi", program[i : i + 8]) for i in range(0, len(program), 8)]
    for _ in range(10_000):
        code, regs_byte, off, imm = insns[pc]
        dst, src = regs_byte & 0xF, regs_byte >> 4
        pc += 1
        if code == 0x61:
            regs[dst] = ctx[off // 4]
        elif code == 0x54:
            regs[dst] = (regs[dst] & imm) & 0xFFFFFFFF
        elif code == 0x74:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif code == 0xBC:
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif code == 0xB7:
            regs[dst] = imm
        elif code == 0x55:
            if regs[dst] != imm:
                pc += off
        elif code == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
    raise AssertionError("program did not exit")


@pytest.mark.parametrize(
    ("dev", "allowed"),
    [
        ((CHAR, R | W, 1, 3), 1),  # /dev/null
        ((CHAR, R | W | M, 136, 7), 1),  # a pts
        ((CHAR, M, 10, 229), 1),  # mknod of anything is allowed ("c *:* m")
        ((BLOCK, M, 8, 0), 1),
        ((CHAR, R, 10, 229), 0),  # fuse: not in the list
        ((BLOCK, R, 8, 0), 0),  # a disk
        ((CHAR, R, 1, 1), 0),  # /dev/mem
        ((CHAR, R | W, 10, 200), 1),  # tun
    ],
)
def test_docker_default_rules(dev, allowed):
    assert run(compile_rules(DEFAULT_DEVICE_RULES), *dev) == allowed


def test_access_subset_and_wildcards():
    prog = compile_rules(("c 5:* r", "b *:3 rw"))
    assert run(prog, CHAR, R, 5, 9) == 1
    assert run(prog, CHAR, R | W, 5, 9) == 0  # w not granted
    assert run(prog, BLOCK, W, 42, 3) == 1
    assert run(prog, BLOCK, W, 42, 4) == 0
    assert run(compile_rules(()), CHAR, R, 1, 3) == 0  # nothing allowed
    assert run(compile_rules(("a *:* rwm",)), BLOCK, R | W | M, 8, 0) == 1


def test_bad_rules_are_refused():
    assert parse_rule("a *:* rwm") == ("a", -1, -1, 7)
    for bad in ("c 1:3", "x 1:3 r", "c one:3 r", "c 1:3 rwx"):
        with pytest.raises(ValueError):
            parse_rule(bad)


@pytest.mark.parametrize(
    ("dev", "allowed"),
    [
        ((CHAR, R, 10, 237), 1),  # --device /dev/loop-control:/dev/lc:r
        ((CHAR, W, 10, 237), 0),  # ... not for writing
        ((CHAR, R | W, 1, 11), 1),  # --device-cgroup-rule 'c 1:11 rw'
        ((CHAR, M, 1, 11), 1),  # mknod stays allowed by the defaults
        ((BLOCK, R | W, 7, 3), 1),  # --device-cgroup-rule 'b 7:* rwm'
        ((BLOCK, R, 8, 0), 0),  # another block device: no
        ((CHAR, R, 1, 3), 1),  # the defaults still hold
    ],
)
def test_device_flags_on_cgroup_v2(dev, allowed):
    """What `--device` and `--device-cgroup-rule` ask for, through the spec as the daemon builds
    it and the conversion the monitor makes, compiled to the v2 program (cgroup v1 gets the same
    lines in devices.allow; test_isolation_conformance compares those with dockerd)."""
    from berth.daemon.devices import apply
    from berth.drivers.exec.spec import SpecInput, build_spec
    from berth.libcontainer.cgroups import resources_from_oci

    host = {"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/n2", "CgroupPermissions": "r"}],
            "DeviceCgroupRules": ["c 10:237 r", "c 1:11 rw", "b 7:* rwm"]}
    spec = apply(host, build_spec(SpecInput(args=("sh",), rootfs="/r")))
    rules = resources_from_oci(spec["linux"]["resources"]).device_rules
    assert run(compile_rules(rules), *dev) == allowed
