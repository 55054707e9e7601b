"""``python -m berth.runtime``: the same as the ``berth-runtime`` command."""

import gc

gc.disable()  # a short-lived command: no cyclic garbage collector (as the launcher setup.sh writes)

from berth.runtime.cli import run  # noqa: E402

run()
