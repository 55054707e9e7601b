"""Seccomp: an OCI ``linux.seccomp`` profile compiled once with libseccomp, loaded with prctl.

The model: ``compile_profile(profile) -> bytes`` runs in the *parent* (libseccomp through ctypes,
cached per profile), producing the classic-BPF program; the forked child only calls
``load(program)`` -- one prctl, no library work on the container's critical path (runc pays
~9 ms per container for Docker's profile).

Semantics follow runc: unknown syscall names are skipped (the profile may name syscalls this
libseccomp or kernel does not know), a rule whose action equals the default is skipped, a
rule that compares the same argument twice becomes one rule per comparison, and unless the
default action lets syscalls through, a syscall newer than every one the profile names answers
ENOSYS, not the default's EPERM (runc's stub, ``enosysstub``).

The profile here is already the OCI form: Docker's format (``includes``/``excludes`` by
capability, ``archMap``) and berth's default profile are resolved per container by the exec
driver (``berth.libcontainer.seccompprofile``) before a spec reaches libcontainer.

    bpf = compile_profile(spec["linux"]["seccomp"])   # in the parent
    load(bpf)                                         # in the child, last thing before exec
"""

from __future__ import annotations

import ctypes
import errno
import os

from berth.libcontainer import enosysstub, kernel
from berth.libcontainer import fastjson as json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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

# what a profile may name (the runtime's `features` lists them)
ACTION_NAMES = (*_ACTIONS, "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
OPERATOR_NAMES = tuple(_OPS)
ARCHITECTURES = tuple(
    "SCMP_ARCH_" + a
    for a in ("X86", "X86_64", "X32", "ARM", "AARCH64", "MIPS", "MIPS64", "MIPS64N32", "MIPSEL", "MIPSEL64",
              "MIPSEL64N32", "PPC", "PPC64", "PPC64LE", "RISCV64", "S390", "S390X")
)


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
_cache: dict[str, bytes] = {}  # canonical profile JSON -> program, this process's
_cache_dir: str | None = None  # where programs persist across processes (set_cache_dir)
MAX_PROGRAM = 4096 * 8  # BPF_MAXINSNS instructions of 8 bytes


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
        lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [
            ctypes.c_void_p,
            ctypes.c_uint32,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.POINTER(_ArgCmp),
        ]
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.seccomp_version.restype = ctypes.c_void_p
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


def set_cache_dir(path: str | None) -> None:
    """Keep compiled programs in ``path`` too (a root-only directory, e.g. under the exec root).

    Each container's monitor is a fresh fork, so the in-memory cache alone would compile every
    profile but the one compiled before the fork (~10 ms for Docker's default) on every start.
    Files are named by the SHA-256 of the canonical profile and libseccomp's version.
    """
    global _cache_dir
    _cache_dir = path


def compile_profile(profile: dict[str, Any]) -> bytes:
    """The BPF program (``struct sock_filter`` array) for an OCI seccomp profile, compiled once
    per profile (this process's cache, then the cache directory, then libseccomp)."""
    key = json.dumps(profile, sort_keys=True)
    program = _cache.get(key)
    if program is not None:
        return program
    path = None
    if _cache_dir is not None:
        import hashlib  # only with a cache directory

        digest = hashlib.sha256(f"{_version()}\n{key}".encode()).hexdigest()
        path = os.path.join(_cache_dir, digest + ".bpf")
        program = _read_cached(path)
    if program is None:
        program = _compile(profile)
        if path is not None:
            _write_cached(path, program)
    _cache[key] = program
    return program


def _version() -> str:
    lib = _libseccomp()
    v = ctypes.cast(lib.seccomp_version(), ctypes.POINTER(ctypes.c_uint * 3)).contents
    return f"libseccomp {v[0]}.{v[1]}.{v[2]}"


def _read_cached(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PROGRAM + 1)
    except OSError:
        return None  # not cached (or unreadable): compile it
    if not data or len(data) % 8 or len(data) > MAX_PROGRAM:
        return None  # not a program we wrote (truncated?): compile again and replace it
    return data


def _write_cached(path: str, program: bytes) -> None:
    directory = os.path.dirname(path)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, program)
        finally:
            os.close(fd)
        os.rename(tmp, path)  # atomic: a concurrent reader sees the whole program or none
    except OSError:
        # The cache only saves time: the program in hand is right whether or not it was kept,
        # and the next start compiles again. Not worth failing a container for.
        try:
            os.unlink(tmp)
        except OSError:
            pass  # never created, or already renamed


def _compile(profile: dict[str, Any]) -> bytes:
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
                    if rc == -errno.EEXIST:
                        # the same rule again (podman's profile lists `socket` with arg 2 != 9
                        # twice): libseccomp keeps the first, as runc does
                        continue
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
    if default in (_ACTIONS["SCMP_ACT_ALLOW"], _ACTIONS["SCMP_ACT_LOG"]) or default >> 16 == _TRACE >> 16:
        return program  # permissive: a syscall the profile does not know already goes through
    stub = enosysstub.build(_last_syscalls(profile))
    if len(stub) + len(program) > MAX_PROGRAM:
        raise SeccompError(f"seccomp filter of {(len(stub) + len(program)) // 8} instructions is too long")
    return stub + program


def _last_syscalls(profile: dict[str, Any]) -> dict[int, dict[str, int]]:
    """Per audit architecture of the profile, the highest syscall number it names (runc's
    findLastSyscalls): what the ENOSYS stub compares against."""
    lib = _libseccomp()
    names = {n.encode() for rule in profile.get("syscalls") or () for n in rule.get("names") or ()}
    x32 = lib.seccomp_arch_resolve_name(b"x32")
    out: dict[int, dict[str, int]] = {}
    for arch in profile.get("architectures") or ():
        token = lib.seccomp_arch_resolve_name(arch.lower().removeprefix("scmp_arch_").encode())
        highest = max((lib.seccomp_syscall_resolve_name_arch(token, n) for n in names), default=-1)
        if highest < 0:
            continue  # the profile names nothing on this architecture
        audit, mode = (enosysstub.X86_64, "x32") if token == x32 else (token, "native")
        out.setdefault(audit, {})[mode] = highest
    return out


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


def syscall_number(name: str) -> int:
    """The native architecture's number for syscall ``name`` (libseccomp's table); -1 if unknown."""
    return int(_libseccomp().seccomp_syscall_resolve_name(name.encode()))
