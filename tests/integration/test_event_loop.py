"""Nothing blocks berthd's event loop: asyncio's debug mode with a 50 ms slow-callback threshold
(``BERTH_SLOW_CALLBACK_MS``) through a busy scenario (20 parallel runs, ps, logs, rm), and not
one slow callback that berthd held.

SQLite, file writes, graph lookups and probes run in worker threads; a callback that holds the
loop for 50 ms stalls every other client's request and every container's output for as long.
asyncio reports wall-clock time, which on a loaded machine includes time the kernel ran other
processes; berthd's loop watch (:mod:`berth.daemon.loopwatch`) subtracts the loop thread's
run-queue delay from each report, and what is left is what this test refuses.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import harness

SLOW = re.compile(r"Executing .* took \d+\.\d+ seconds")  # asyncio's debug-mode report
N = 20


def _log(d: harness.Berthd) -> str:
    return d.log_path.read_text(errors="replace")


def _held(d: harness.Berthd) -> list[str]:
    """berth's loop watch: the slow callbacks asyncio reports, less the time the kernel kept the
    loop's thread waiting for a CPU, with the stack the callback was seen at."""
    return re.findall(r"loop held for .*?(?=\n\d{4}-\d\d-\d\d |\Z)", _log(d), re.S)


def test_a_busy_daemon_never_holds_its_loop_50ms(berthd_factory: Any, busybox_tar: Path) -> None:
    d = berthd_factory(env_extra={"BERTH_SLOW_CALLBACK_MS": "50"})
    assert "asyncio debug mode" in d.log_path.read_text(), d.log_tail()
    d.import_image(busybox_tar)

    def run(i: int) -> Any:
        return d.docker("run", "--name", f"busy{i}", "--network", "none", "-v", f"/data{i}", "busybox",
                        "sh", "-c", f"echo hello {i}; echo oops {i} >&2", timeout=120)

    with ThreadPoolExecutor(N) as pool:
        runs = list(pool.map(run, range(N)))
    for i, r in enumerate(runs):
        assert r.returncode == 0, f"run {i}: {r.stderr}" + d.log_tail()
        assert r.stdout == f"hello {i}\n"

    ps = d.docker("ps", "-a", "--format", "{{.Names}} {{.Status}}")
    assert ps.returncode == 0, ps.stderr
    assert sorted(line.split()[0] for line in ps.stdout.splitlines()) == sorted(f"busy{i}" for i in range(N))

    def logs(i: int) -> Any:
        return d.docker("logs", f"busy{i}")

    with ThreadPoolExecutor(N) as pool:
        for i, r in enumerate(pool.map(logs, range(N))):
            assert (r.returncode, r.stdout, r.stderr) == (0, f"hello {i}\n", f"oops {i}\n")

    with ThreadPoolExecutor(N) as pool:
        removed = list(pool.map(lambda i: d.docker("rm", "-v", f"busy{i}"), range(N)))
    assert [r.returncode for r in removed] == [0] * N, [r.stderr for r in removed if r.returncode]
    assert d.docker("ps", "-aq").stdout == ""
    assert d.docker("volume", "ls", "-q").stdout == ""

    reported = [line for line in _log(d).splitlines() if SLOW.search(line)]
    held = _held(d)
    assert held == [], f"{len(reported)} slow callbacks reported, held by berthd:\n" + "\n".join(held)
