"""Docker's default seccomp profile: which syscalls each capability set gets, decided by the very
BPF program libcontainer loads (compiled with libseccomp, run here by berth.libcontainer.bpfeval).
"""

from __future__ import annotations

import doctest
import errno
import hashlib
import importlib
import json
import platform

import pytest

from berth.errors import InvalidParameter
from berth.libcontainer import bpfeval, seccomp
from berth.libcontainer import seccompprofile as sp
from berth.libcontainer.capabilities import DEFAULT_CAPS

DOCTEST_MODULES = [
    "berth.libcontainer.seccompprofile",
    "berth.libcontainer.bpfeval",
    "berth.libcontainer.enosysstub",
    "berth.libcontainer.hostdevices",
    "berth.daemon.securityopt",
    "berth.daemon.runtimes",
    "berth.daemon.users",
]

AF_ALG, AF_NFC, AF_VSOCK, AF_INET, AF_UNIX = 38, 39, 40, 2, 1
CLONE_NEWNS, CLONE_NEWUSER, SIGCHLD = 0x00020000, 0x10000000, 17
READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE, PER_LINUX32 = 0x0400000, 0x0040000, 8

needs_x86_64 = pytest.mark.skipif(
    platform.machine() != "x86_64", reason="the decision table names x86_64 syscalls and its audit arch"
)


@pytest.mark.parametrize("name", DOCTEST_MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


def program_for(caps: list[str] | tuple[str, ...]) -> bytes:
    oci = sp.to_oci(sp.default_profile(), list(caps))
    assert oci is not None
    try:
        return seccomp.compile_profile(oci)
    except seccomp.SeccompError as exc:
        pytest.skip(f"libseccomp is not available: {exc}")


def decide(program: bytes, name: str, *args: int) -> str:
    nr = seccomp.syscall_number(name)
    assert nr >= 0, f"libseccomp does not know {name}"
    return bpfeval.describe(bpfeval.evaluate(program, nr, args))


EPERM = f"errno {errno.EPERM}"
ENOSYS = f"errno {errno.ENOSYS}"

# (syscall, args, default caps, + the cap named) as Docker's default profile decides them
TABLE = [
    ("read", (), "allow", None),
    ("mkdir", (), "allow", None),
    ("fchmodat2", (), "allow", None),
    ("clone", (SIGCHLD,), "allow", None),  # fork
    ("clone", (CLONE_NEWUSER | SIGCHLD,), EPERM, "CAP_SYS_ADMIN"),
    ("clone", (CLONE_NEWNS,), EPERM, "CAP_SYS_ADMIN"),
    ("clone3", (), ENOSYS, "CAP_SYS_ADMIN"),  # libc falls back to clone
    ("unshare", (0,), EPERM, "CAP_SYS_ADMIN"),
    ("setns", (), EPERM, "CAP_SYS_ADMIN"),
    ("mount", (), EPERM, "CAP_SYS_ADMIN"),
    ("umount2", (), EPERM, "CAP_SYS_ADMIN"),
    ("sethostname", (), EPERM, "CAP_SYS_ADMIN"),
    ("kcmp", (), EPERM, "CAP_SYS_PTRACE"),
    ("pidfd_getfd", (), EPERM, "CAP_SYS_PTRACE"),
    ("process_madvise", (), EPERM, "CAP_SYS_PTRACE"),
    ("process_vm_readv", (), "allow", None),  # kernels from 4.8 check it after ptrace
    ("ptrace", (), "allow", None),
    ("reboot", (), EPERM, "CAP_SYS_BOOT"),
    ("init_module", (), EPERM, "CAP_SYS_MODULE"),
    ("acct", (), EPERM, "CAP_SYS_PACCT"),
    ("iopl", (), EPERM, "CAP_SYS_RAWIO"),
    ("settimeofday", (), EPERM, "CAP_SYS_TIME"),
    ("clock_settime", (), EPERM, "CAP_SYS_TIME"),
    ("vhangup", (), EPERM, "CAP_SYS_TTY_CONFIG"),
    ("mbind", (), EPERM, "CAP_SYS_NICE"),
    ("syslog", (), EPERM, "CAP_SYSLOG"),
    ("bpf", (), EPERM, "CAP_BPF"),
    ("perf_event_open", (), EPERM, "CAP_PERFMON"),
    ("open_by_handle_at", (), EPERM, "CAP_DAC_READ_SEARCH"),
    ("socket", (AF_INET, 1, 0), "allow", None),
    ("socket", (AF_UNIX, 1, 0), "allow", None),
    ("socket", (AF_NFC, 1, 0), "allow", None),
    ("socket", (AF_VSOCK, 1, 0), EPERM, None),
    ("socket", (AF_ALG, 5, 0), EPERM, None),
    ("personality", (0,), "allow", None),
    ("personality", (PER_LINUX32,), "allow", None),
    ("personality", (0xFFFFFFFF,), "allow", None),
    ("personality", (READ_IMPLIES_EXEC,), EPERM, None),
    ("personality", (ADDR_NO_RANDOMIZE,), EPERM, None),
    ("arch_prctl", (), "allow", None),
    ("modify_ldt", (), "allow", None),
    ("keyctl", (), EPERM, None),
    ("add_key", (), EPERM, None),
    ("kexec_load", (), EPERM, None),
    ("swapon", (), EPERM, None),
    ("userfaultfd", (), EPERM, None),
    ("io_uring_setup", (), EPERM, None),
    ("fanotify_init", (), EPERM, "CAP_SYS_ADMIN"),
]


@needs_x86_64
@pytest.mark.parametrize(("name", "args", "default", "cap"), TABLE, ids=[f"{t[0]}{t[1]}" for t in TABLE])
def test_default_profile_decisions(name: str, args: tuple[int, ...], default: str, cap: str | None) -> None:
    assert decide(program_for(DEFAULT_CAPS), name, *args) == default
    if cap is not None:
        assert decide(program_for([*DEFAULT_CAPS, cap]), name, *args) == "allow"
        # the capability opens only its own syscalls: the others stay as they were
        assert decide(program_for([*DEFAULT_CAPS, cap]), "kexec_load") == EPERM


@needs_x86_64
def test_syscalls_newer_than_the_profile_get_enosys_and_foreign_arches_are_killed() -> None:
    """runc's stub: above the highest syscall the profile names (per architecture) a libc sees
    ENOSYS, as on an older kernel, and falls back; below it, an unlisted one is the default's EPERM."""
    program = program_for(DEFAULT_CAPS)
    highest = max(
        seccomp.syscall_number(n) for r in sp.default_oci(list(DEFAULT_CAPS))["syscalls"] for n in r["names"]
    )
    assert bpfeval.describe(bpfeval.evaluate(program, highest + 1)) == ENOSYS
    assert bpfeval.describe(bpfeval.evaluate(program, 1023)) == ENOSYS
    assert bpfeval.describe(bpfeval.evaluate(program, seccomp.syscall_number("kexec_load"))) == EPERM
    assert bpfeval.describe(bpfeval.evaluate(program, 400)) == EPERM  # a hole in x86_64's table
    assert bpfeval.describe(bpfeval.evaluate(program, 0, arch=bpfeval.AUDIT_ARCH_AARCH64)) == "kill"
    # the 32-bit x86 sub-architecture is in the filter: its mkdir (39) is allowed, its reboot (88) not
    assert bpfeval.describe(bpfeval.evaluate(program, 39, arch=bpfeval.AUDIT_ARCH_I386)) == "allow"
    assert bpfeval.describe(bpfeval.evaluate(program, 88, arch=bpfeval.AUDIT_ARCH_I386)) == EPERM
    assert bpfeval.describe(bpfeval.evaluate(program, 999, arch=bpfeval.AUDIT_ARCH_I386)) == ENOSYS
    # x32 (x86_64's audit arch, bit 30 set): its read (0) allowed, past its table ENOSYS
    x32 = 0x40000000
    assert bpfeval.describe(bpfeval.evaluate(program, x32 | 0)) == "allow"
    assert bpfeval.describe(bpfeval.evaluate(program, x32 | 1000)) == ENOSYS


@needs_x86_64
def test_the_tree_layout_decides_as_the_list_does(monkeypatch) -> None:
    """Programs are compiled as binary trees (SCMP_FLTATR_CTL_OPTIMIZE 2: cheaper for the kernel
    to attach); for Docker's profile every syscall of every architecture the filter knows, with
    argument values its rules compare, gets what libseccomp's plain list would give it."""
    oci = sp.to_oci(sp.default_profile(), list(DEFAULT_CAPS))
    assert oci is not None
    try:
        tree = seccomp._compile(oci)
    except seccomp.SeccompError as exc:
        pytest.skip(f"libseccomp is not available: {exc}")
    monkeypatch.setattr(seccomp, "_OPTIMIZE_TREE", 1)  # libseccomp's default: a list by priority
    plain = seccomp._compile(oci)
    assert tree != plain
    values = (0, 1, 2, 8, 9, 10, 16, CLONE_NEWUSER, CLONE_NEWNS | SIGCHLD, AF_VSOCK, READ_IMPLIES_EXEC, 0xFFFFFFFF,
              PER_LINUX32, 1 << 32)
    with_args = {n for r in oci["syscalls"] if r.get("args") for n in r["names"]}
    lib = seccomp._libseccomp()
    x32 = 0x40000000
    for arch, token in ((bpfeval.AUDIT_ARCH_X86_64, b"x86_64"), (bpfeval.AUDIT_ARCH_I386, b"x86"),
                        (bpfeval.AUDIT_ARCH_AARCH64, b"aarch64")):
        compared = {lib.seccomp_syscall_resolve_name_arch(lib.seccomp_arch_resolve_name(token), n.encode())
                    for n in with_args}
        for nr in [*range(0, 1024, 1 if arch == bpfeval.AUDIT_ARCH_X86_64 else 7), *range(x32, x32 + 560, 3)]:
            for args in ((), *((v,) * 6 for v in values)) if nr in compared else ((),):
                got = bpfeval.evaluate(tree, nr, args, arch)
                assert got == bpfeval.evaluate(plain, nr, args, arch), (hex(arch), nr, args)


@needs_x86_64
def test_a_permissive_profile_gets_no_enosys_stub() -> None:
    deny = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}
    allow = {**deny, "defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    try:
        denying, allowing = seccomp.compile_profile(deny), seccomp.compile_profile(allow)
    except seccomp.SeccompError as exc:
        pytest.skip(f"libseccomp is not available: {exc}")
    assert bpfeval.describe(bpfeval.evaluate(denying, 1000)) == ENOSYS
    assert bpfeval.describe(bpfeval.evaluate(allowing, 1000)) == "allow"


def test_dropping_a_default_capability_takes_its_syscalls_away() -> None:
    def allowed(caps: list[str]) -> set[str]:
        oci = sp.to_oci(sp.default_profile(), caps, arch="amd64", kernel=(6, 1))
        assert oci is not None
        return {n for r in oci["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]}

    assert "chroot" in allowed(list(DEFAULT_CAPS))
    assert "chroot" not in allowed([c for c in DEFAULT_CAPS if c != "CAP_SYS_CHROOT"])


def test_arch_map_includes_excludes_and_min_kernel() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
        ],
        "syscalls": [
            {"name": "a", "action": "SCMP_ACT_ALLOW"},
            {"names": ["b"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
            {"names": ["c"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["arm64"]}},
            {"names": ["d"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "5.10"}},
            {"names": ["e"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5.10"}},
            {"names": ["f"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_A", "CAP_B"]}},
            {"names": ["g"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_A", "CAP_B"]}},
        ],
    }

    def names(arch: str, kernel: tuple[int, int], caps: list[str]) -> tuple[list[str], list[str]]:
        oci = sp.to_oci(profile, caps, arch=arch, kernel=kernel)
        assert oci is not None
        return oci["architectures"], [r["names"][0] for r in oci["syscalls"]]

    assert names("amd64", (5, 4), ["CAP_A"]) == (["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"], ["a", "c", "e"])
    assert names("arm64", (5, 10), ["CAP_A", "CAP_B"]) == (["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"], ["a", "b", "d", "f"])
    assert names("amd64", (6, 1), []) == (["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"], ["a", "c", "d", "g"])
    oci = sp.to_oci(profile, [], arch="amd64", kernel=(6, 1))
    assert oci is not None and set(oci) == {"defaultAction", "architectures", "syscalls"}
    assert all(set(r) == {"names", "action"} for r in oci["syscalls"])  # no includes/name/comment left


@pytest.mark.parametrize(
    ("profile", "text"),
    [
        ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"], "archMap": [{}]}, "both 'architectures' and 'archMap'"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "a", "names": ["b"]}]}, "both 'name' and 'names'"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "includes": {"minKernel": "4"}}]}, "invalid kernel version"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": "read"}, "syscalls must be a list"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": "read"}]}, "names must be a list"),
    ],
)
def test_profiles_docker_refuses(profile: dict, text: str) -> None:
    with pytest.raises(InvalidParameter, match=text):
        sp.to_oci(profile, [], arch="amd64", kernel=(6, 1))


def test_load_refuses_what_is_not_a_json_object() -> None:
    with pytest.raises(InvalidParameter, match="Decoding seccomp profile failed"):
        sp.load("{not json")
    with pytest.raises(InvalidParameter, match="not a JSON object"):
        sp.load("[]")
    assert sp.load('{"defaultAction": "SCMP_ACT_ALLOW"}') == {"defaultAction": "SCMP_ACT_ALLOW"}


def test_the_default_profile_file_is_dockers_format() -> None:
    profile = sp.default_profile()
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO" and profile["defaultErrnoRet"] == 1
    assert "architectures" not in profile and profile["archMap"][0]["architecture"] == "SCMP_ARCH_X86_64"
    # a fresh copy each time: a caller changing it cannot change the next container's profile
    profile["syscalls"].clear()
    assert sp.default_profile()["syscalls"]
    assert json.loads(json.dumps(sp.default_profile())) == sp.default_profile()


def test_compiled_programs_persist_in_the_cache_dir(tmp_path, monkeypatch) -> None:
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    monkeypatch.setattr(seccomp, "_cache", {})
    monkeypatch.setattr(seccomp, "_cache_dir", str(tmp_path / "cache"))
    try:
        program = seccomp.compile_profile(profile)
    except seccomp.SeccompError as exc:
        pytest.skip(f"libseccomp is not available: {exc}")
    files = list((tmp_path / "cache").iterdir())
    assert len(files) == 1 and files[0].stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "cache").stat().st_mode & 0o777 == 0o700
    kept = files[0].read_bytes()
    assert kept.endswith(program) and kept.startswith(seccomp._MAGIC)
    # the same profile as canonical JSON (what the parsed spec holds) is the same entry
    monkeypatch.setattr(seccomp, "_cache", {})
    assert seccomp.compile_profile(json.dumps(profile, sort_keys=True)) == program
    assert len(list((tmp_path / "cache").iterdir())) == 1

    # another process (a fresh cache) reads it instead of compiling: prove it by planting a
    # marker, written as the cache writes it
    marker = b"\x06\x00\x00\x00\x00\x00\xff\x7f"  # ret ALLOW
    good = seccomp._MAGIC + hashlib.sha256(marker).digest() + marker

    def fresh_compile() -> bytes:
        monkeypatch.setattr(seccomp, "_cache", {})
        return seccomp.compile_profile(profile)

    files[0].write_bytes(good)
    assert fresh_compile() == marker
    # anything that is not exactly what the cache wrote is compiled again (and replaced)
    damaged = [
        b"bad",  # not ours
        good[:-3],  # truncated: not a whole number of instructions
        seccomp._MAGIC + hashlib.sha256(marker).digest() + marker[:-1] + b"\x00",  # digest differs
        seccomp._MAGIC + hashlib.sha256(b"").digest(),  # no program
    ]
    for data in damaged:
        files[0].write_bytes(data)
        assert fresh_compile() == program, data
        assert files[0].read_bytes() == kept  # replaced by the compiled program
    # a file others could have written is never trusted, whatever it holds
    files[0].write_bytes(good)
    files[0].chmod(0o644)
    assert fresh_compile() == program
    # nor is a symlink to a good one
    other = tmp_path / "elsewhere.bpf"
    other.write_bytes(good)
    other.chmod(0o600)
    files[0].unlink()
    files[0].symlink_to(other)
    assert fresh_compile() == program


def test_the_cache_is_not_written_into_a_directory_others_may_write(tmp_path, monkeypatch) -> None:
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"}]}
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setattr(seccomp, "_cache", {})
    monkeypatch.setattr(seccomp, "_cache_dir", str(shared))
    try:
        seccomp.compile_profile(profile)
    except seccomp.SeccompError as exc:
        pytest.skip(f"libseccomp is not available: {exc}")
    assert list(shared.iterdir()) == []


@needs_x86_64
def test_a_rule_listed_twice_is_kept_once_as_runc_does() -> None:
    """podman's seccomp.json lists `socket` with arg 2 != NETLINK_AUDIT twice (once per
    exclusion); libseccomp answers EEXIST for the second, runc keeps going, so does berth."""
    not_audit = {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 2, "value": 9, "op": "SCMP_CMP_NE"}]}
    not_netlink = {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_NE"}]}
    archs = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]  # x86's socketcall is where it collides
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": archs, "syscalls": [
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
         "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"}, {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"}]},
        not_audit,
        not_netlink,
        not_audit,
    ]}
    try:
        program = seccomp.compile_profile(profile)
    except seccomp.SeccompError as exc:
        assert "EEXIST" not in str(exc) and "exists" not in str(exc), exc
        pytest.skip(f"libseccomp is not available: {exc}")
    socket = seccomp.syscall_number("socket")
    assert bpfeval.describe(bpfeval.evaluate(program, socket, (1, 1, 0))) == "allow"
    assert bpfeval.describe(bpfeval.evaluate(program, socket, (16, 3, 9))) == f"errno {errno.EINVAL}"
