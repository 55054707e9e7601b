"""Which sysctls a container may set, and where each one lives under ``/proc/sys`` (pure).

``/proc/sys`` is only partly namespaced: a value written from inside a container lands in the
host's kernel unless the container has its own namespace for it. As runc's validator, only
these are allowed:

    kernel.msgmax, msgmnb, msgmni, sem, shmall, shmmax, shmmni, shm_rmid_forced, fs.mqueue.*
                                         with a private IPC namespace
    net.*                                with a network namespace other than the caller's
    kernel.domainname                    with a private UTS namespace (kernel.hostname is refused:
                                         the spec's hostname field sets it)

Names come dotted (``net.ipv4.ip_forward``) or slashed (``net/ipv4/ip_forward``, where a dot is
part of a name: ``net/ipv4/conf/eth0.100/forwarding``); both are checked in the dotted form::

    >>> normalize("net/ipv4/conf/eth0.100/forwarding")
    'net.ipv4.conf.eth0/100.forwarding'
    >>> proc_path("net/ipv4/conf/eth0.100/forwarding"), proc_path("net.ipv4.ip_forward")
    ('/proc/sys/net/ipv4/conf/eth0.100/forwarding', '/proc/sys/net/ipv4/ip_forward')
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable


IPC_SYSCTLS = frozenset({
    "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
    "kernel.shmmni", "kernel.shm_rmid_forced",
})  # fmt: skip
_COMPONENT_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_:@+-/")


class SysctlError(ValueError):
    """A sysctl the container may not set; the text is runc's."""


def normalize(key: str) -> str:
    """The dotted form; a slashed name has its dots and slashes swapped (runc's rule)."""
    if "/" in key:
        return key.translate(str.maketrans("./", "/."))
    return key


def _components(key: str) -> list[str]:
    dotted = normalize(key)
    parts = dotted.split(".")
    for part in parts:
        name = part.replace("/", ".")
        if not part or not set(part) <= _COMPONENT_CHARS or name in (".", ".."):
            raise SysctlError(f"sysctl {key!r} is not a valid sysctl name")
    return parts


def proc_path(key: str) -> str:
    """``/proc/sys/...`` for ``key``; SysctlError for a name that could leave ``/proc/sys``."""
    return "/proc/sys/" + "/".join(part.replace("/", ".") for part in _components(key))


def check(keys: Iterable[str], *, private_net: bool, private_ipc: bool, private_uts: bool) -> None:
    """Raise SysctlError (runc's text) for the first key the namespaces do not isolate."""
    for key in keys:
        _components(key)
        name = normalize(key)
        if name in IPC_SYSCTLS or name.startswith("fs.mqueue."):
            if private_ipc:
                continue
            raise SysctlError(f'sysctl "{name}" is not allowed in the hosts ipc namespace')
        if name.startswith("net."):
            if private_net:
                continue
            raise SysctlError(f'sysctl "{name}" not allowed in host network namespace')
        if private_uts and name == "kernel.domainname":
            continue
        if private_uts and name == "kernel.hostname":
            raise SysctlError(f'sysctl "{name}" is not allowed as it conflicts with the OCI "hostname" field')
        raise SysctlError(f'sysctl "{name}" is not in a separate kernel namespace')
