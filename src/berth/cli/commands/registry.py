"""``berth registry serve|gc``: run berth's registry server (a separate program, not the daemon).

The server lives in ``berth.registry.server``, which the client side may not import (the
import contracts keep the CLI apart from the daemon side), so this command replaces itself
with that program: ``python -m berth.registry.server serve ...``.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _exec(verb: str, argv: list[str]) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    args = [sys.executable, "-m", "berth.registry.server", verb, *argv]
    os.execv(sys.executable, args)
    return 1  # not reached


def serve(ctx: Any, argv: list[str]) -> int:
    return _exec("serve", argv)


def gc(ctx: Any, argv: list[str]) -> int:
    return _exec("gc", argv)
