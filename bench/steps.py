"""Where the time of a container start goes: per-step medians from berth's step trace.

    .venv/bin/python bench/steps.py                  # 40 runs after 5 warm-up runs
    .venv/bin/python bench/steps.py --runs 100 --keep /tmp/steps.log
    .venv/bin/python bench/steps.py --from d:create  # the whole run: create, start, exit, removal

Starts a berthd of this tree on a private root with ``BERTH_STEP_TRACE`` set (see
``berth.steptrace``: every process on the start path appends ``<monotonic> <pid> <label>``),
runs ``docker run --rm --network none busybox true`` again and again, and prints, for each step,
the median time since the step before it (the lines of one start sorted by time), beside the
median of the ``container.start`` job as ``berth jobs`` reports it and the load average. The
exit and the ``--rm`` removal are traced too (``m:exit`` ... ``d:removed``, ``d:waited``: the
CLI's wait answered); ``--from d:create`` counts each run from its create. Used
for the table in docs/monitor.md ("Start latency"). Needs root and the docker CLI.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

import harness  # noqa: E402

RUN = ("run", "--rm", "--network", "none", "busybox", "true")
FIRST = "d:start"  # the first mark of a start (berth.daemon.lifecycle)


def parse(text: str, first: str = FIRST) -> list[list[tuple[float, str]]]:
    """The trace as one list of (time, label) per start, each sorted by time."""
    lines = []
    for line in text.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3:
            lines.append((float(parts[0]), parts[2]))
    lines.sort()
    starts: list[list[tuple[float, str]]] = []
    for t, label in lines:
        if label == first:
            starts.append([])
        if starts:
            starts[-1].append((t, label))
    return starts


def step_medians(starts: list[list[tuple[float, str]]]) -> list[tuple[str, float, int]]:
    """(label, median ms since the mark before it, how many starts had it), in the order of the
    most common sequence."""
    deltas: dict[str, list[float]] = {}
    order: dict[str, list[int]] = {}
    for marks in starts:
        for i, (t, label) in enumerate(marks[1:], 1):
            deltas.setdefault(label, []).append((t - marks[i - 1][0]) * 1000)
            order.setdefault(label, []).append(i)
    labels = sorted(deltas, key=lambda lb: statistics.median(order[lb]))
    return [(lb, statistics.median(deltas[lb]), len(deltas[lb])) for lb in labels]


def spans(starts: list[list[tuple[float, str]]], first: str, last: str) -> list[float]:
    out = []
    for marks in starts:
        at = {label: t for t, label in marks}
        if first in at and last in at:
            out.append((at[last] - at[first]) * 1000)
    return out


def last_start_job(d: harness.Daemon) -> float:
    status, jobs = d.api("GET", "/berth/v1/jobs?all=1")
    done = [j for j in jobs or [] if j.get("Name") == "container.start" and j.get("DurationMs") is not None]
    if status != 200 or not done:
        raise RuntimeError(f"GET /berth/v1/jobs answered {status} without a finished container.start job")
    return float(max(done, key=lambda j: j["ID"])["DurationMs"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--keep", type=Path, help="copy the raw trace here")
    ap.add_argument("--from", dest="first", default=FIRST,
                    help=f"the mark that begins a run's lines (default {FIRST}; d:create: the whole run)")
    args = ap.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j0", str(HERE.parent / "src")], check=True)
    tmp = Path(tempfile.mkdtemp(prefix="bs-", dir="/tmp"))
    trace = tmp / "steps.log"
    berth = harness.Berthd.create(prefix="bs-b-", env_extra={"BERTH_STEP_TRACE": str(trace)})
    jobs: list[float] = []
    walls: list[float] = []
    loads = [os.getloadavg()[0]]
    try:
        berth.start()
        berth.import_image(harness.build_busybox_tar(tmp / "busybox.tar"))
        for i in range(args.warmup + args.runs):
            if i == args.warmup:
                trace.write_bytes(b"")
            t0 = time.monotonic()
            r = berth.docker(*RUN)
            wall = (time.monotonic() - t0) * 1000
            if r.returncode != 0:
                raise RuntimeError(f"docker {' '.join(RUN)} exited {r.returncode}: {r.stderr.strip()}")
            if i >= args.warmup:
                walls.append(wall)
                jobs.append(last_start_job(berth))
        loads.append(os.getloadavg()[0])
        text = trace.read_text()
        if args.keep:
            args.keep.write_text(text)
    finally:
        problems = berth.teardown()
        shutil.rmtree(tmp, ignore_errors=True)
        for p in problems:
            print(f"cleanup problem: {p}", file=sys.stderr)
    starts = parse(text, args.first)
    print(f"{args.runs} runs of `docker {' '.join(RUN)}`; 1-minute load {loads[0]:.2f} before, {loads[1]:.2f} after")
    print(f"container.start job (berth jobs): median {statistics.median(jobs):.1f} ms "
          f"(min {min(jobs):.1f}, max {max(jobs):.1f}); whole docker run: median {statistics.median(walls):.1f} ms")
    whole = spans(starts, FIRST, "d:started")
    if whole:
        print(f"traced d:start -> d:started: median {statistics.median(whole):.1f} ms")
    print("| step (time since the mark before it) | median ms | n |")
    print("| --- | --- | --- |")
    for label, ms, n in step_medians(starts):
        print(f"| {label} | {ms:.2f} | {n} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
