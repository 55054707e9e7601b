"""``HostConfig.SecurityOpt`` -> what the exec driver applies (moby's ``parseSecurityOpt``; pure).

Docker's words, ``key=value`` (the old ``key:value`` still read): ``no-new-privileges[=bool]``,
``seccomp=unconfined``, ``seccomp=builtin`` (the default profile), ``seccomp=<profile JSON>``
(the docker CLI reads ``--security-opt seccomp=FILE`` client-side and sends the file's
content), ``label=...`` and ``apparmor=...`` (no SELinux or AppArmor here: accepted, no effect).

    >>> parse(["no-new-privileges", "seccomp=unconfined"])
    SecurityOptions(no_new_privileges=True, seccomp='unconfined')
    >>> parse(['seccomp={"defaultAction": "SCMP_ACT_ALLOW"}']).seccomp
    {'defaultAction': 'SCMP_ACT_ALLOW'}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from berth.errors import InvalidParameter
from berth.libcontainer.seccompprofile import load as load_profile

_TRUE = ("1", "t", "T", "true", "TRUE", "True")
_FALSE = ("0", "f", "F", "false", "FALSE", "False")


@dataclass(frozen=True)
class SecurityOptions:
    no_new_privileges: bool = False
    seccomp: str | dict[str, Any] = "default"  # "default", "unconfined" or a Docker-format profile


def parse(opts: list[str] | tuple[str, ...] | None) -> SecurityOptions:
    """Raises :class:`InvalidParameter` with Docker's text for an option it does not know."""
    nnp = False
    seccomp: str | dict[str, Any] = "default"
    for opt in opts or ():
        if opt == "no-new-privileges":
            nnp = True
            continue
        if opt in ("disable", "writable-cgroups"):
            continue  # label=disable's short form; cgroups follow --privileged here
        sep = "=" if "=" in opt else ":" if ":" in opt else None
        if sep is None:
            raise InvalidParameter(f'invalid --security-opt 1: "{opt}"')
        key, _, value = opt.partition(sep)
        if key == "seccomp":
            if value == "unconfined":
                seccomp = "unconfined"
            elif value in ("builtin", ""):
                seccomp = "default"
            else:
                seccomp = load_profile(value)
        elif key == "no-new-privileges":
            if value not in _TRUE + _FALSE:
                raise InvalidParameter(f'invalid --security-opt 2: "{opt}"')
            nnp = value in _TRUE
        elif key in ("label", "apparmor", "writable-cgroups"):
            continue
        else:
            raise InvalidParameter(f'invalid --security-opt 2: "{opt}"')
    return SecurityOptions(nnp, seccomp)
