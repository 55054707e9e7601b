"""Seccomp: an OCI ``linux.seccomp`` profile compiled once with libseccomp, loaded with prctl.

The model: ``compile_profile(profile) -> bytes`` runs in the *parent* (libseccomp through ctypes,
cached per profile), producing the classic-BPF program; the forked child only calls
``load(program)`` -- one prctl, no library work on the container's critical path (runc pays
~9 ms per container for Docker's profile).

Semantics follow runc: unknown syscall names are skipped (the profile may name syscalls this
libseccomp or kernel does not know), a rule whose action equals the default is skipped, and a
rule that compares the same argument twice becomes one rule per comparison.

``DEFAULT_PROFILE`` is berth's own default: everything allowed except what a container has no
business doing (kernel modules, kexec, mounts, namespaces, keyrings, bpf, perf, clock setting,
io_uring, ...), which fails with EPERM; ``clone3`` answers ENOSYS so libc falls back to ``clone``,
whose namespace flags are then refused. It is a deny list, not Docker's allow list.

    bpf = compile_profile(DEFAULT_PROFILE)   # in the parent
    load(bpf)                                # in the child, last thing before exec
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
from typing import Any

from berth.libcontainer import kernel

PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

_ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000,
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
}
_ERRNO = 0x00050000
_TRACE = 0x7FF00000
_OPS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

_NS_FLAGS = (
    kernel.CLONE_NEWNS,
    kernel.CLONE_NEWUTS,
    kernel.CLONE_NEWIPC,
    kernel.CLONE_NEWUSER,
    kernel.CLONE_NEWPID,
    kernel.CLONE_NEWNET,
    kernel.CLONE_NEWCGROUP,
)
_DENIED = (
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module",
    "fanotify_init", "finit_module", "fsconfig", "fsmount", "fsopen", "fspick", "get_kernel_syms",
    "init_module", "io_uring_enter", "io_uring_register", "io_uring_setup", "ioperm", "iopl", "kcmp",
    "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mount", "mount_setattr", "move_mount",
    "name_to_handle_at", "nfsservctl", "open_by_handle_at", "open_tree", "perf_event_open", "pivot_root",
    "process_vm_readv", "process_vm_writev", "query_module", "quotactl", "quotactl_fd", "reboot",
    "request_key", "setns", "settimeofday", "stime", "swapoff", "swapon", "syslog", "sysfs", "_sysctl",
    "umount", "umount2", "unshare", "uselib", "userfaultfd", "ustat", "vhangup", "vm86", "vm86old",
)  # fmt: skip

DEFAULT_PROFILE: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": [
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_ARM",
    ],
    "syscalls": [
        {"names": list(_DENIED), "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS},
        *(
            {
                "names": ["clone"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": errno.EPERM,
                "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}],
            }
            for flag in _NS_FLAGS
        ),
    ],
}


class SeccompError(Exception):
    """A profile libseccomp cannot compile (message says which part)."""


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_lib: Any = None
_cache: dict[str, bytes] = {}


def _libseccomp() -> Any:
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        except OSError as exc:
            raise SeccompError(f"load libseccomp.so.2: {exc} (apt-get install libseccomp2)") from exc
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [
            ctypes.c_void_p,
            ctypes.c_uint32,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.POINTER(_ArgCmp),
        ]
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        _lib = lib
    return _lib


def action(name: str, errno_ret: int | None, default_errno: int = errno.EPERM) -> int:
    if name in _ACTIONS:
        return _ACTIONS[name]
    if name == "SCMP_ACT_ERRNO":
        return _ERRNO | ((default_errno if errno_ret is None else errno_ret) & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        return _TRACE | ((default_errno if errno_ret is None else errno_ret) & 0xFFFF)
    raise SeccompError(f"unsupported seccomp action {name!r}")


def compile_profile(profile: dict[str, Any]) -> bytes:
    """The BPF program (``struct sock_filter`` array) for an OCI seccomp profile."""
    key = json.dumps(profile, sort_keys=True)
    if key in _cache:
        return _cache[key]
    lib = _libseccomp()
    default_errno = int(profile.get("defaultErrnoRet") or errno.EPERM)
    default = action(str(profile.get("defaultAction", "")), default_errno, default_errno)
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise SeccompError(f"seccomp_init with default action {profile.get('defaultAction')!r} failed")
    try:
        for arch in profile.get("architectures") or ():
            token = lib.seccomp_arch_resolve_name(arch.lower().removeprefix("scmp_arch_").encode())
            if token == 0:
                raise SeccompError(f"unknown seccomp architecture {arch!r}")
            rc = lib.seccomp_arch_add(ctx, token)
            if rc < 0 and rc != -errno.EEXIST:
                raise SeccompError(f"add seccomp architecture {arch!r}: {os.strerror(-rc)}")
        for rule in profile.get("syscalls") or ():
            act = action(str(rule.get("action", "")), rule.get("errnoRet"), default_errno)
            if act == default:
                continue  # libseccomp refuses a rule that repeats the default
            for conds in _split_args(rule.get("args") or []):
                for name in rule.get("names") or ():
                    nr = lib.seccomp_syscall_resolve_name(name.encode())
                    if nr < 0:
                        continue  # a syscall this libseccomp does not know: skip, as runc does
                    arr = (_ArgCmp * max(len(conds), 1))(*conds)
                    rc = lib.seccomp_rule_add_array(ctx, act, nr, len(conds), arr)
                    if rc < 0:
                        raise SeccompError(f"add seccomp rule for {name!r}: {os.strerror(-rc)}")
        rfd, wfd = os.pipe()
        try:
            # a filter is at most 4096 instructions of 8 bytes: it fits a pipe's buffer
            rc = lib.seccomp_export_bpf(ctx, wfd)
            os.close(wfd)
            wfd = -1
            if rc < 0:
                raise SeccompError(f"export seccomp filter: {os.strerror(-rc)}")
            chunks = []
            while chunk := os.read(rfd, 65536):
                chunks.append(chunk)
        finally:
            os.close(rfd)
            if wfd >= 0:
                os.close(wfd)
    finally:
        lib.seccomp_release(ctx)
    program = b"".join(chunks)
    _cache[key] = program
    return program


def _split_args(args: list[dict[str, Any]]) -> list[list[_ArgCmp]]:
    """runc: one rule with every condition, unless an argument index repeats -- then one each."""
    conds = []
    for a in args:
        op = _OPS.get(str(a.get("op")))
        if op is None:
            raise SeccompError(f"unsupported seccomp comparison {a.get('op')!r}")
        conds.append(_ArgCmp(int(a["index"]), op, int(a.get("value", 0)), int(a.get("valueTwo", 0))))
    indexes = [c.arg for c in conds]
    if len(set(indexes)) != len(indexes):
        return [[c] for c in conds]
    return [conds]


def load(program: bytes) -> None:
    """Install the filter on the calling thread (needs no_new_privs or CAP_SYS_ADMIN)."""
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    kernel.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog))
