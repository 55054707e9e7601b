"""``python -m berth.runtime``: the same as the ``berth-runtime`` command."""

import sys

from berth.runtime.cli import main

sys.exit(main())
