"""Run a compiled seccomp program on one syscall, in Python: what the kernel would answer.

The kernel runs a seccomp filter (classic BPF, ``struct sock_filter`` array) over a
``struct seccomp_data`` {int nr; u32 arch; u64 instruction_pointer; u64 args[6]} and returns a
32-bit action (``SECCOMP_RET_*`` in the high 16 bits, data such as the errno in the low 16).
This evaluator lets tests check the decisions of the exact bytes libcontainer loads, without
forking a process per syscall:

    >>> prog = bytes.fromhex("0600000000000000")  # one instruction: return 0 (KILL)
    >>> evaluate(prog, nr=0)
    0
    >>> describe(0x00050001)
    'errno 1'

Only what seccomp programs use is implemented (loads from the data, ALU on A, jumps, return);
anything else raises ValueError, so a test never passes on an instruction it cannot read.
"""

from __future__ import annotations

import struct

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
AUDIT_ARCH_AARCH64 = 0xC00000B7

RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000

_M32 = 0xFFFFFFFF


def seccomp_data(nr: int, arch: int, args: tuple[int, ...] = (), ip: int = 0) -> bytes:
    full = tuple(args) + (0,) * (6 - len(args))
    return struct.pack("<iIQ6Q", nr, arch, ip, *(a & 0xFFFFFFFFFFFFFFFF for a in full[:6]))


def evaluate(program: bytes, nr: int, args: tuple[int, ...] = (), arch: int = AUDIT_ARCH_X86_64) -> int:
    """The action ``program`` returns for syscall ``nr`` with ``args`` on audit arch ``arch``."""
    data = seccomp_data(nr, arch, args)
    insns = [struct.unpack_from("<HBBI", program, off) for off in range(0, len(program), 8)]
    a = x = 0
    mem = [0] * 16
    pc = 0
    while pc < len(insns):
        code, jt, jf, k = insns[pc]
        pc += 1
        cls = code & 0x07
        if cls == 0x00:  # LD
            a = _load(code, k, data, mem, x)
        elif cls == 0x01:  # LDX
            x = _load(code, k, data, mem, x)
        elif cls == 0x02:  # ST
            mem[k] = a
        elif cls == 0x03:  # STX
            mem[k] = x
        elif cls == 0x04:  # ALU
            a = _alu(code, a, x if code & 0x08 else k)
        elif cls == 0x05:  # JMP
            op = code & 0xF0
            if op == 0x00:
                pc += k
                continue
            operand = x if code & 0x08 else k
            taken = {0x10: a == operand, 0x20: a > operand, 0x30: a >= operand, 0x40: bool(a & operand)}.get(op)
            if taken is None:
                raise ValueError(f"bpf: unsupported jump opcode {code:#x} at {pc - 1}")
            pc += jt if taken else jf
        elif cls == 0x06:  # RET
            return (a if code & 0x18 == 0x10 else k) & _M32
        elif cls == 0x07:  # MISC: TAX / TXA
            if code == 0x07:
                x = a
            elif code == 0x87:
                a = x
            else:
                raise ValueError(f"bpf: unsupported misc opcode {code:#x} at {pc - 1}")
        else:  # pragma: no cover - cls has three bits
            raise ValueError(f"bpf: unsupported opcode {code:#x}")
    raise ValueError("bpf: the program ran off its end without a return")


def _load(code: int, k: int, data: bytes, mem: list[int], x: int) -> int:
    mode, size = code & 0xE0, code & 0x18
    if mode == 0x00:  # IMM
        return k
    if mode == 0x60:  # MEM
        return mem[k]
    if mode == 0x80:  # LEN
        return len(data)
    if size != 0x00:
        raise ValueError(f"bpf: seccomp loads only 32-bit words, got opcode {code:#x}")
    if mode == 0x20:  # ABS
        off = k
    elif mode == 0x40:  # IND
        off = x + k
    else:
        raise ValueError(f"bpf: unsupported load mode {code:#x}")
    if off % 4 or off + 4 > len(data):
        raise ValueError(f"bpf: load at offset {off} outside seccomp_data")
    return int(struct.unpack_from("<I", data, off)[0])


def _alu(code: int, a: int, v: int) -> int:
    op = code & 0xF0
    ops = {
        0x00: lambda: a + v,
        0x10: lambda: a - v,
        0x20: lambda: a * v,
        0x30: lambda: a // v if v else 0,
        0x40: lambda: a | v,
        0x50: lambda: a & v,
        0x60: lambda: a << (v & 31),
        0x70: lambda: a >> (v & 31),
        0x80: lambda: -a,
        0x90: lambda: a % v if v else 0,
        0xA0: lambda: a ^ v,
    }
    if op not in ops:
        raise ValueError(f"bpf: unsupported alu opcode {code:#x}")
    return int(ops[op]()) & _M32


def describe(action: int) -> str:
    """``allow``, ``errno N``, ``kill``, ``trap``, ``trace N``, ``log`` for an action value."""
    kind, value = action & 0xFFFF0000, action & 0xFFFF
    if kind == RET_ALLOW:
        return "allow"
    if kind == RET_ERRNO:
        return f"errno {value}"
    if kind in (RET_KILL_PROCESS, RET_KILL_THREAD):
        return "kill"
    if kind == RET_TRAP:
        return "trap"
    if kind == RET_TRACE:
        return f"trace {value}"
    if kind == RET_LOG:
        return "log"
    return f"action {action:#x}"
