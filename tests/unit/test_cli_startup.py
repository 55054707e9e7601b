"""The start-up budget: `berth ps` must stay import-light (60 ms wall for the whole command).

Timing on shared machines is noisy, so this checks the cause instead of the clock: running
`ps` (here against no daemon, which exercises the same import path) must not import the
modules that cost tens of milliseconds.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "asyncio",
    "argparse",
    "http.client",
    "ssl",
    "typing",
    "dataclasses",
    "inspect",
    "termios",
    "tty",
    "urllib.parse",
    "email",
    "threading",
    "subprocess",
    "socket",
    "selectors",
    "tarfile",
    "berth.cli.template",
    "decimal",
    "datetime",
    "berth.client.rawstream",
    "berth.client.tls",
)

SCRIPT = """
import io, json, sys
from berth.cli.main import main
sys.stdout, real = io.StringIO(), sys.stdout
sys.stderr = io.StringIO()
code = main(["-H", "unix:///nonexistent/berth-startup-test.sock", "ps"])
real.write(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def test_ps_path_imports_nothing_heavy():
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=60
    )
    result = json.loads(proc.stdout)
    assert result["code"] == 1  # no daemon there
    loaded = set(result["modules"])
    assert "berth.cli.commands.ps" in loaded and "berth.client.api" in loaded
    assert sorted(m for m in HEAVY if m in loaded) == []
