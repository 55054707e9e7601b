"""berth.steptrace: the start path's profile marks (BERTH_STEP_TRACE), and nothing when off."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROGRAM = """
import os, sys
from berth import steptrace
steptrace.mark("x:one")
if os.fork() == 0:
    steptrace.mark("x:child")
    os._exit(0)
os.wait()
steptrace.mark("x:two")
print(steptrace.mark.__name__, steptrace.fds())
"""


def run(env: dict[str, str]) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "BERTH_STEP_TRACE"}
    r = subprocess.run([sys.executable, "-c", PROGRAM], env={**clean, **env}, capture_output=True, text=True, check=True)
    return r.stdout.strip()


def test_marks_go_to_the_file_in_order_with_each_process_pid(tmp_path: Path) -> None:
    trace = tmp_path / "steps.log"
    out = run({"BERTH_STEP_TRACE": str(trace)})
    assert out.startswith("_mark (")  # the descriptor a process that closes fds must keep
    lines = [line.split(" ") for line in trace.read_text().splitlines()]
    assert [label for _t, _pid, label in lines] == ["x:one", "x:child", "x:two"]
    times = [float(t) for t, _pid, _label in lines]
    assert times == sorted(times)
    pids = [int(pid) for _t, pid, _label in lines]
    assert pids[0] == pids[2] != pids[1]  # the forked child wrote its own pid on the same file


def test_off_by_default_writes_nothing(tmp_path: Path) -> None:
    out = run({})
    assert out == "_off ()"
    assert list(tmp_path.iterdir()) == []
