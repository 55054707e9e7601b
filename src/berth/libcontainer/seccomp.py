"""Seccomp: an OCI ``linux.seccomp`` profile compiled once with libseccomp, loaded with prctl.

The model: ``compile_profile(profile) -> bytes`` runs in the *parent* (libseccomp through
:mod:`.cabi`, cached per profile), producing the classic-BPF program; the forked child only calls
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

import errno
import os
import stat

from berth.libcontainer import cabi, kernel
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


class _ArgCmp(cabi.Structure):
    _fields_ = [
        ("arg", cabi.c_uint),
        ("op", cabi.c_int),
        ("datum_a", cabi.c_uint64),
        ("datum_b", cabi.c_uint64),
    ]


class _SockFprog(cabi.Structure):
    _fields_ = [("len", cabi.c_ushort), ("filter", cabi.c_void_p)]


class _LibSeccomp:
    """The libseccomp functions used here."""

    def __init__(self) -> None:
        lib = cabi.Library("libseccomp.so.2")
        c = cabi
        self.seccomp_init = lib.function("seccomp_init", (c.c_uint32,), c.c_void_p)
        self.seccomp_release = lib.function("seccomp_release", (c.c_void_p,), None)
        self.seccomp_arch_add = lib.function("seccomp_arch_add", (c.c_void_p, c.c_uint32))
        self.seccomp_arch_resolve_name = lib.function("seccomp_arch_resolve_name", (c.c_char_p,), c.c_uint32)
        self.seccomp_syscall_resolve_name = lib.function("seccomp_syscall_resolve_name", (c.c_char_p,))
        self.seccomp_syscall_resolve_name_arch = lib.function(
            "seccomp_syscall_resolve_name_arch", (c.c_uint32, c.c_char_p)
        )
        self.seccomp_rule_add_array = lib.function(
            "seccomp_rule_add_array", (c.c_void_p, c.c_uint32, c.c_int, c.c_uint, c.POINTER(_ArgCmp))
        )
        self.seccomp_export_bpf = lib.function("seccomp_export_bpf", (c.c_void_p, c.c_int))
        self.seccomp_version = lib.function("seccomp_version", (), c.POINTER(c.c_uint * 3))
        self.seccomp_attr_set = lib.function("seccomp_attr_set", (c.c_void_p, c.c_int, c.c_uint32))


_lib: _LibSeccomp | None = None
_cache: dict[str, bytes] = {}  # canonical profile JSON -> program, this process's
_cache_dir: str | None = None  # where programs persist across processes (set_cache_dir)
MAX_PROGRAM = 4096 * 8  # BPF_MAXINSNS instructions of 8 bytes
# libseccomp's SCMP_FLTATR_CTL_OPTIMIZE (2.5+): 2 lays each architecture's syscalls out as a
# binary tree instead of a list. The decisions are the same; loading is what changes: the kernel
# runs the filter once per syscall number and architecture when it attaches it (the cache of
# syscalls it always allows, seccomp_cache_prepare), so for Docker's profile a list costs ~1 ms
# of every container's start and the tree ~0.45 ms (measured here, 985 against 1216 instructions).
_FLTATR_CTL_OPTIMIZE = 8
_OPTIMIZE_TREE = 2
# in the cache's key: a program compiled another way is compiled again, not read back
_LAYOUT = "tree"


def _libseccomp() -> _LibSeccomp:
    global _lib
    if _lib is None:
        try:
            _lib = _LibSeccomp()
        except OSError as exc:
            raise SeccompError(f"load libseccomp.so.2: {exc} (apt-get install libseccomp2)") from exc
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
    """Keep compiled programs in ``path`` too (a root-only directory: the daemon's exec root,
    berth-runtime's ``--root``).

    Each container's monitor is a fresh fork, and each ``berth-runtime create`` a fresh process,
    so the in-memory cache alone would compile Docker's default profile (~10 ms of libseccomp)
    on every start. A file is named by the SHA-256 of libseccomp's version, the machine and the
    canonical profile; it holds a header, the program's own SHA-256 and the program, and is read
    back only if it is a regular file of ours that no one else may read or write (0600) and its
    contents check out -- anything else is compiled again and replaced.
    """
    global _cache_dir
    _cache_dir = path


def compile_profile(profile: dict[str, Any] | str) -> bytes:
    """The BPF program (``struct sock_filter`` array) for an OCI seccomp profile -- a dict, or
    its canonical JSON (``json.dumps(profile, sort_keys=True)``, as the parsed spec keeps it) --
    compiled once per profile (this process's cache, then the cache directory, then libseccomp)."""
    key = profile if isinstance(profile, str) else json.dumps(profile, sort_keys=True)
    program = _cache.get(key)
    if program is not None:
        return program
    path = None
    if _cache_dir is not None:
        ident = f"{_version()}\n{_LAYOUT}\n{os.uname().machine}\n{key}"
        path = os.path.join(_cache_dir, _sha256(ident.encode()).hex() + ".bpf")
        program = _read_cached(path)
    if program is None:
        program = _compile(json.loads(key) if isinstance(profile, str) else profile)
        if path is not None:
            _write_cached(path, program)
    _cache[key] = program
    return program


def _sha256(data: bytes) -> bytes:
    try:
        from _sha256 import sha256  # type: ignore[import-not-found,unused-ignore]  # hashlib loads OpenSSL
    except ImportError:  # a Python built without it
        from hashlib import sha256
    return bytes(sha256(data).digest())


def _version() -> str:
    v = _libseccomp().seccomp_version().contents
    return f"libseccomp {v[0]}.{v[1]}.{v[2]}"


_MAGIC = b"berth seccomp bpf 1\n"
_HEADER = len(_MAGIC) + 32  # the magic, then the program's SHA-256


def _read_cached(path: str) -> bytes | None:
    """The program kept at ``path``, or None: missing, not a regular file owned by us with mode
    0600 (or stricter), or not what :func:`_write_cached` wrote (magic, length, digest)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None  # not cached (or a symlink, or unreadable): compile it
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
            return None  # someone else's file, or one others may change: never trusted
        data = os.read(fd, _HEADER + MAX_PROGRAM + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    program = data[_HEADER:]
    if (
        not data.startswith(_MAGIC)
        or not program
        or len(program) % 8
        or len(program) > MAX_PROGRAM
        or _sha256(program) != data[len(_MAGIC) : _HEADER]
    ):
        return None  # truncated, damaged or not ours: compile again and replace it
    return program


def _write_cached(path: str, program: bytes) -> None:
    directory = os.path.dirname(path)
    # unique on the host: a process in a pid namespace of its own (a standby's twin) is pid 1 there
    tmp = f"{path}.{os.getpid()}-{os.urandom(4).hex()}.tmp"
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        st = os.lstat(directory)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return  # a directory others may write to is no place for programs we will load
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, _MAGIC + _sha256(program) + program)
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
        # a libseccomp without the attribute (before 2.5) answers an error: the list it makes is right too
        lib.seccomp_attr_set(ctx, _FLTATR_CTL_OPTIMIZE, _OPTIMIZE_TREE)
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
    from berth.libcontainer import enosysstub  # with a compile only

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
        from berth.libcontainer import enosysstub

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
    buf = cabi.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, cabi.addressof(buf))
    kernel.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, cabi.addressof(prog))


def syscall_number(name: str) -> int:
    """The native architecture's number for syscall ``name`` (libseccomp's table); -1 if unknown."""
    return int(_libseccomp().seccomp_syscall_resolve_name(name.encode()))
