"""Docker's seccomp profile format -> the OCI ``linux.seccomp`` a runtime compiles (pure).

A profile in Docker's format (what ``--security-opt seccomp=PROFILE.json`` takes, and
``seccomp_default.json`` beside this module, berth's default) is an OCI ``linux.seccomp``
plus three things the daemon resolves per container before the runtime sees it:

* ``archMap``: the native architecture's entry picks ``architectures`` (x86_64 adds x86 and x32);
* per rule, ``includes``/``excludes`` by capability (checked against the container's bounding
  set), by architecture (libseccomp's names: ``amd64``, ``arm64``, ``s390x`` ...) and by kernel
  version (``minKernel``, ``"4.8"``): a rule whose includes do not all hold, or any of whose
  excludes holds, is left out;
* ``name`` as a shorthand for a one-element ``names``.

So the default profile is an allow-list (``defaultAction`` ``SCMP_ACT_ERRNO``, ``EPERM``):
``--cap-add SYS_ADMIN`` brings in ``mount``/``unshare``/``setns`` and namespace flags on
``clone``, ``--cap-add SYS_PTRACE`` brings ``kcmp``/``pidfd_getfd``, and so on.

    >>> oci = to_oci(default_profile(), ["CAP_CHOWN"], arch="amd64", kernel=(6, 1))
    >>> oci["architectures"], oci["defaultAction"], oci["defaultErrnoRet"]
    (['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'], 'SCMP_ACT_ERRNO', 1)
    >>> def allowed(o): return {n for r in o["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]}
    >>> "mount" in allowed(oci), "mount" in allowed(to_oci(default_profile(), ["CAP_SYS_ADMIN"], "amd64", (6, 1)))
    (False, True)

The semantics are moby's ``profiles/seccomp`` (``setupSeccomp``); the JSON is berth's own,
following Docker's decisions (which syscalls, which capability gates which).
"""

from __future__ import annotations

import copy
import functools
import json
import os
from typing import Any

from berth.errors import InvalidParameter

DEFAULT_FILE = "seccomp_default.json"

# uname's machine -> libseccomp's architecture name (what "arches" filters name)
_MACHINES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "i386": "x86",
    "i686": "x86",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "ppc64le": "ppc64le",
    "ppc64": "ppc64",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "loongarch64": "loong64",
    "mips64": "mips64",
}
# libseccomp's architecture name -> the OCI/seccomp token an archMap entry names
_SCMP_ARCH = {
    "x86": "SCMP_ARCH_X86",
    "amd64": "SCMP_ARCH_X86_64",
    "x32": "SCMP_ARCH_X32",
    "arm": "SCMP_ARCH_ARM",
    "arm64": "SCMP_ARCH_AARCH64",
    "loong64": "SCMP_ARCH_LOONGARCH64",
    "mips64": "SCMP_ARCH_MIPS64",
    "mips64n32": "SCMP_ARCH_MIPS64N32",
    "mipsel64": "SCMP_ARCH_MIPSEL64",
    "mipsel": "SCMP_ARCH_MIPSEL",
    "ppc": "SCMP_ARCH_PPC",
    "ppc64": "SCMP_ARCH_PPC64",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "riscv64": "SCMP_ARCH_RISCV64",
    "s390": "SCMP_ARCH_S390",
    "s390x": "SCMP_ARCH_S390X",
}
# OCI linux.seccomp fields that pass through unchanged
_OCI_FIELDS = ("defaultAction", "defaultErrnoRet", "flags", "listenerPath", "listenerMetadata")
_SYSCALL_FIELDS = ("names", "action", "errnoRet", "args")


def native_arch() -> str:
    """libseccomp's name for this machine's architecture (``amd64`` on x86_64)."""
    machine = os.uname().machine
    return _MACHINES.get(machine, machine)


@functools.cache
def host_kernel() -> tuple[int, int]:
    """(major, minor) of the running kernel, e.g. (6, 1) for ``6.1.0-18-amd64``."""
    return parse_kernel(os.uname().release)


def parse_kernel(release: str) -> tuple[int, int]:
    parts = release.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1].split("-")[0] if ch.isdigit()) or 0)
    except (IndexError, ValueError) as exc:
        raise InvalidParameter(f"seccomp: cannot parse kernel version {release!r}") from exc


@functools.cache
def _default() -> dict[str, Any]:
    """The parsed default, read once; never handed out (to_oci copies what it emits)."""
    # a plain open beside this module: importlib.resources would pull zipfile, tempfile and more
    # into the fork server, and every monitor's share of its pages with them
    with open(os.path.join(os.path.dirname(__file__), DEFAULT_FILE), encoding="utf-8") as f:
        return dict(json.load(f))


def default_profile() -> dict[str, Any]:
    """berth's default profile in Docker's format (a fresh copy: callers may change it)."""
    return copy.deepcopy(_default())


def default_oci(bounding: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The default profile resolved for ``bounding`` on this machine (what a container gets)."""
    oci = to_oci(_default(), bounding)
    assert oci is not None  # the default has a defaultAction
    return oci


def load(text: str) -> dict[str, Any]:
    """A profile from ``--security-opt seccomp=<json>`` (the CLI sends the file's content)."""
    try:
        profile = json.loads(text)
    except ValueError as exc:
        raise InvalidParameter(f"Decoding seccomp profile failed: {exc}") from exc
    if not isinstance(profile, dict):
        raise InvalidParameter("Decoding seccomp profile failed: the profile is not a JSON object")
    return profile


def to_oci(
    profile: dict[str, Any],
    bounding: list[str] | tuple[str, ...],
    arch: str | None = None,
    kernel: tuple[int, int] | None = None,
) -> dict[str, Any] | None:
    """The OCI ``linux.seccomp`` for a container whose bounding set is ``bounding``.

    ``None`` when the profile has neither a ``defaultAction`` nor syscalls (Docker: seccomp off).
    Raises :class:`InvalidParameter` for a profile Docker would refuse.
    """
    _check(profile)
    if not profile.get("defaultAction"):
        if not profile.get("syscalls"):
            return None
        raise InvalidParameter("seccomp profile: syscalls are listed but there is no defaultAction")
    arch = arch or native_arch()
    caps = set(bounding)
    out: dict[str, Any] = {k: copy.deepcopy(profile[k]) for k in _OCI_FIELDS if profile.get(k) is not None}
    architectures = list(profile.get("architectures") or ())
    native = _SCMP_ARCH.get(arch)
    for entry in profile.get("archMap") or ():
        if native is not None and entry.get("architecture") == native:
            architectures = [native, *(entry.get("subArchitectures") or ())]
            break
    if architectures:
        out["architectures"] = architectures
    syscalls = []
    for rule in profile.get("syscalls") or ():
        if not _applies(rule, caps, arch, kernel):
            continue
        names = [rule["name"]] if rule.get("name") else list(rule.get("names") or ())
        oci = {k: copy.deepcopy(rule[k]) for k in _SYSCALL_FIELDS if rule.get(k) is not None}
        oci["names"] = names
        syscalls.append(oci)
    out["syscalls"] = syscalls
    return out


def _applies(rule: dict[str, Any], caps: set[str], arch: str, kernel: tuple[int, int] | None) -> bool:
    exc = rule.get("excludes") or {}
    if arch in (exc.get("arches") or ()):
        return False
    if any(c in caps for c in exc.get("caps") or ()):
        return False
    if exc.get("minKernel") and _kernel_at_least(exc["minKernel"], kernel):
        return False
    inc = rule.get("includes") or {}
    if inc.get("arches") and arch not in inc["arches"]:
        return False
    if not all(c in caps for c in inc.get("caps") or ()):
        return False
    if inc.get("minKernel") and not _kernel_at_least(inc["minKernel"], kernel):
        return False
    return True


def _kernel_at_least(version: str, kernel: tuple[int, int] | None) -> bool:
    want = _min_kernel(version)
    return (kernel or host_kernel()) >= want


def _min_kernel(version: Any) -> tuple[int, int]:
    parts = str(version).split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or parts == ["0", "0"]:
        raise InvalidParameter(
            f'Decoding seccomp profile failed: invalid kernel version: "{version}", expected "<kernel>.<major>"'
        )
    return int(parts[0]), int(parts[1])


def _check(profile: dict[str, Any]) -> None:
    """What moby refuses before it filters: shapes, and the two either-or pairs."""
    if profile.get("architectures") and profile.get("archMap"):
        raise InvalidParameter(
            "both 'architectures' and 'archMap' are specified in the seccomp profile, "
            "use either 'architectures' or 'archMap'"
        )
    syscalls = profile.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise InvalidParameter("Decoding seccomp profile failed: syscalls must be a list")
    for rule in syscalls:
        if not isinstance(rule, dict):
            raise InvalidParameter("Decoding seccomp profile failed: each syscalls entry must be an object")
        if rule.get("name") and rule.get("names"):
            raise InvalidParameter(
                "both 'name' and 'names' are specified in the seccomp profile, use either 'name' or 'names'"
            )
        names = rule.get("names") or []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InvalidParameter("Decoding seccomp profile failed: names must be a list of strings")
        if not isinstance(rule.get("action", ""), str):
            raise InvalidParameter("Decoding seccomp profile failed: action must be a string")
        for key in ("includes", "excludes"):
            f = rule.get(key) or {}
            if not isinstance(f, dict):
                raise InvalidParameter(f"Decoding seccomp profile failed: {key} must be an object")
            if f.get("minKernel"):
                _min_kernel(f["minKernel"])

