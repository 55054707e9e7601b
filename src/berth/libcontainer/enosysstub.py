"""The -ENOSYS prologue runc puts before a seccomp filter (pure: numbers in, BPF bytes out).

A profile lists the syscalls it knows; with a deny-by-default action, a syscall newer than the
profile would get EPERM, which tells a C library "this exists, and you may not", so it does not
fall back to the older call it would use on an older kernel. runc therefore prepends a stub: per
architecture of the filter, a syscall number above the highest one the profile names answers
``ENOSYS`` (what an older kernel says), and everything else goes on to libseccomp's program.
berth does the same, so a container sees what it sees under Docker.

x86_64 and x32 share one audit architecture; an x32 syscall number has bit 30 set, so that
architecture's check branches on that bit first.

    >>> from berth.libcontainer import bpfeval
    >>> prog = build({bpfeval.AUDIT_ARCH_X86_64: {"native": 450}}) + bytes.fromhex("0600000000000000")
    >>> bpfeval.describe(bpfeval.evaluate(prog, 451)), bpfeval.evaluate(prog, 450)
    ('errno 38', 0)
"""

from __future__ import annotations

import errno
import struct

X86_64 = 0xC000003E  # AUDIT_ARCH_X86_64, shared by x32
X32_SYSCALL_BIT = 0x40000000
RET_ERRNO_ENOSYS = 0x00050000 | errno.ENOSYS

_LD_W_ABS = 0x20
_JA = 0x05
_JEQ_K = 0x15
_JGT_K = 0x25
_JSET_K = 0x45
_RET_K = 0x06


Target = str | int  # a label, or a literal jump offset


def build(last: dict[int, dict[str, int]]) -> bytes:
    """The stub for ``last``: audit arch -> {"native": highest nr} and, on x86_64's audit arch,
    "x32": the highest x32 nr (bit 30 set) when x32 is in the filter. Falls through to the
    program appended after it."""
    # (op, k, jt, jf) with labels; "filter" is the first instruction after the stub
    code: list[tuple[int, Target, Target, Target]] = []
    labels: dict[str, int] = {}
    for n, (arch, maxes) in enumerate(sorted(last.items())):
        native, x32 = maxes.get("native"), maxes.get("x32")
        code += [(_LD_W_ABS, 4, 0, 0), (_JEQ_K, arch, 0, f"next{n}"), (_LD_W_ABS, 0, 0, 0)]
        if arch == X86_64:  # bit 30 set: an x32 syscall; checked against x32's highest, or not at all
            code.append((_JSET_K, X32_SYSCALL_BIT, f"x32_{n}" if x32 is not None else "filter", 0))
        if native is not None:
            code.append((_JGT_K, native, "enosys", "filter"))
        else:
            code.append((_JA, "filter", 0, 0))
        if x32 is not None:
            labels[f"x32_{n}"] = len(code)
            code.append((_JGT_K, x32, "enosys", "filter"))
        labels[f"next{n}"] = len(code)
    code.append((_JA, "filter", 0, 0))  # an architecture without a section
    labels["enosys"] = len(code)
    code.append((_RET_K, RET_ERRNO_ENOSYS, 0, 0))
    labels["filter"] = len(code)

    def rel(pc: int, target: Target) -> int:
        if isinstance(target, int):
            return target
        return labels[target] - pc - 1

    out = bytearray()
    for pc, (op, k, jt, jf) in enumerate(code):
        if op == _JA:
            out += struct.pack("=HBBI", op, 0, 0, rel(pc, k))
            continue
        jt_off, jf_off = rel(pc, jt), rel(pc, jf)
        if not (0 <= jt_off <= 255 and 0 <= jf_off <= 255):
            raise ValueError(f"enosys stub: a jump at {pc} does not fit in 8 bits")
        assert isinstance(k, int)
        out += struct.pack("=HBBI", op, jt_off, jf_off, k)
    return bytes(out)
