"""Linux capability names, Docker's default set, and applying an OCI capability spec.

Capabilities are numbers (``CAP_CHOWN`` = 0 ...); sets are ``frozenset[int]``. Applying follows
runc: drop the bounding set while still privileged, keep capabilities across ``setresuid``
(PR_SET_KEEPCAPS), then ``capset`` the effective/permitted/inheritable sets and raise the ambient
ones. See :func:`berth.libcontainer.init` for where each step runs.

    >>> sorted(parse_caps(["CAP_KILL", "chown"]))
    [0, 5]
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable


NAMES = (
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
)
_NUMBERS = {name: i for i, name in enumerate(NAMES)}

# Docker's default capability set (moby oci/caps/defaults.go), as OCI names.
DEFAULT_CAPS = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)


def number(name: str) -> int:
    """``"CAP_SYS_ADMIN"`` or ``"sys_admin"`` -> 21; ValueError for an unknown name."""
    key = name.upper()
    key = key[4:] if key.startswith("CAP_") else key
    if key not in _NUMBERS:
        raise ValueError(f"unknown capability {name!r}")
    return _NUMBERS[key]


def parse_caps(names: Iterable[str]) -> frozenset[int]:
    return frozenset(number(n) for n in names)


def name(cap: int) -> str:
    return "CAP_" + NAMES[cap] if 0 <= cap < len(NAMES) else f"CAP_{cap}"


def last_cap() -> int:
    """The highest capability this kernel knows (``/proc/sys/kernel/cap_last_cap``)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(NAMES) - 1


def mask(caps: Iterable[int]) -> int:
    bits = 0
    for c in caps:
        bits |= 1 << c
    return bits

