"""Device access for cgroup v2: Docker's device rules compiled to an eBPF program (runc's devicefilter).

cgroup v1 has the ``devices`` controller (``devices.deny``/``devices.allow`` files); v2 has none:
the kernel asks a ``BPF_PROG_TYPE_CGROUP_DEVICE`` program attached to the cgroup instead. The
program gets ``struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor;}`` (type in the
low 16 bits, access mknod=1/read=2/write=4 in the high ones) and returns 1 to allow, 0 to deny.

    >>> parse_rule("c 136:* rwm")
    ('c', 136, -1, 7)
    >>> len(compile_rules(("c 1:3 rwm",))) // 8
    13

The rules are v1 allow lines applied after "deny everything", as ``Resources.device_rules``.
"""

from __future__ import annotations

import os
import struct

from berth.libcontainer import cabi, kernel

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2

_DEV_BLOCK, _DEV_CHAR = 1, 2
_ACCESS = {"m": 1, "r": 2, "w": 4}

# eBPF opcodes used here
_LDX_W = 0x61  # dst = *(u32 *)(src + off)
_AND32_K = 0x54
_RSH32_K = 0x74
_MOV32_X = 0xBC
_MOV64_K = 0xB7
_JNE_K = 0x55  # if dst != imm: pc += off
_EXIT = 0x95


def parse_rule(rule: str) -> tuple[str, int, int, int]:
    """``"c 1:3 rwm"`` -> (type, major, minor, access mask); ``*`` is -1."""
    try:
        kind, numbers, access = rule.split()
        major_s, minor_s = numbers.split(":")
        major = -1 if major_s == "*" else int(major_s)
        minor = -1 if minor_s == "*" else int(minor_s)
        mask = 0
        for ch in access:
            mask |= _ACCESS[ch]
    except (ValueError, KeyError) as exc:
        raise ValueError(f"bad device rule {rule!r}") from exc
    if kind not in ("a", "b", "c"):
        raise ValueError(f"bad device rule {rule!r}: type must be a, b or c")
    return kind, major, minor, mask


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def compile_rules(rules: tuple[str, ...]) -> bytes:
    """The program: allow when any rule matches, else deny."""
    prog = [
        _insn(_LDX_W, 2, 1, 0),  # r2 = access_type
        _insn(_AND32_K, 2, imm=0xFFFF),  # r2 = type
        _insn(_LDX_W, 3, 1, 0),
        _insn(_RSH32_K, 3, imm=16),  # r3 = access
        _insn(_LDX_W, 4, 1, 4),  # r4 = major
        _insn(_LDX_W, 5, 1, 8),  # r5 = minor
    ]
    for rule in rules:
        kind, major, minor, mask = parse_rule(rule)
        checks: list[list[bytes]] = []
        if kind != "a":
            checks.append([_insn(_JNE_K, 2, imm=_DEV_BLOCK if kind == "b" else _DEV_CHAR)])
        if mask != 7:  # any access bit outside the rule's -> not this rule
            checks.append([_insn(_MOV32_X, 1, 3), _insn(_AND32_K, 1, imm=~mask & 7), _insn(_JNE_K, 1, imm=0)])
        if major >= 0:
            checks.append([_insn(_JNE_K, 4, imm=major)])
        if minor >= 0:
            checks.append([_insn(_JNE_K, 5, imm=minor)])
        body = [i for group in checks for i in group]
        accept = [_insn(_MOV64_K, 0, imm=1), _insn(_EXIT)]
        # each jump skips to the end of this rule's block: patch the offsets now that sizes are known
        patched = []
        for n, ins in enumerate(body):
            code = ins[0]
            if code == _JNE_K:
                remaining = len(body) - n - 1 + len(accept)
                ins = ins[:2] + struct.pack("<h", remaining) + ins[4:]
            patched.append(ins)
        prog += patched + accept
    prog += [_insn(_MOV64_K, 0, imm=0), _insn(_EXIT)]
    return b"".join(prog)


def _load(program: bytes, with_log: bool) -> int:
    insns = cabi.create_string_buffer(program, len(program))
    license_ = cabi.create_string_buffer(b"Apache-2.0")
    log = cabi.create_string_buffer(1 << 16 if with_log else 1)
    attr = cabi.create_string_buffer(128)
    struct.pack_into(
        "<IIQQIIQ",
        attr,
        0,
        BPF_PROG_TYPE_CGROUP_DEVICE,
        len(program) // 8,
        cabi.addressof(insns),
        cabi.addressof(license_),
        1 if with_log else 0,  # log_level
        len(log) if with_log else 0,
        cabi.addressof(log) if with_log else 0,
    )
    struct.pack_into("<I", attr, 68, BPF_CGROUP_DEVICE)  # expected_attach_type
    try:
        return kernel.bpf(BPF_PROG_LOAD, attr)
    except OSError as exc:
        lines = log.value.decode(errors="replace").strip().splitlines()
        raise OSError(
            exc.errno, f"load device filter: {exc.strerror} {lines[-1] if lines else ''}".strip()
        ) from exc


def attach(cgroup_dir: str, rules: tuple[str, ...]) -> None:
    """Load the program for ``rules`` and attach it to the cgroup v2 directory."""
    program = compile_rules(rules)
    try:
        prog_fd = _load(program, with_log=False)
    except OSError:
        prog_fd = _load(program, with_log=True)  # again, only to get the verifier's reason
    try:
        cg_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            attach_attr = cabi.create_string_buffer(128)
            struct.pack_into("<IIII", attach_attr, 0, cg_fd, prog_fd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)
            kernel.bpf(BPF_PROG_ATTACH, attach_attr)
        finally:
            os.close(cg_fd)
    finally:
        os.close(prog_fd)  # the attachment keeps the program alive
