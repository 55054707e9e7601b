"""Running a piece of a root test in a forked child (which may join cgroups, unshare namespaces
and mount, and then exits): its result comes back as JSON."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any


def in_child(fn: Callable[[], Any]) -> Any:
    """``fn()`` in a forked child; its JSON result. A child that fails fails the caller."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            os.write(w, json.dumps(fn()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out
    return json.loads(out)
