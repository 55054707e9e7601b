"""``HostConfig.Runtime``: the names a container may ask for, and which exec driver runs each.

Docker accepts only the runtimes it is configured with (``runc`` by default, plus
``--add-runtime``) and answers 400 ``unknown or invalid runtime name: NAME`` for any other.
berth has one exec driver today, ``native`` (berth.libcontainer); ``runc``, the name every
Docker client and compose file uses, is an alias of it, and is what an empty name becomes
(``docker inspect`` shows ``"Runtime": "runc"``, as with dockerd).

    >>> check(""), check("native")
    ('runc', 'native')
"""

from __future__ import annotations

from berth.errors import InvalidParameter

DEFAULT_RUNTIME = "runc"
# runtime name -> exec driver; what /info lists under Runtimes
RUNTIMES = {"runc": "native", "native": "native"}


def check(name: str | None) -> str:
    """The runtime name to record for a create request; InvalidParameter for an unknown one."""
    if not name:
        return DEFAULT_RUNTIME
    if name not in RUNTIMES:
        raise InvalidParameter(f"unknown or invalid runtime name: {name}")
    return name
