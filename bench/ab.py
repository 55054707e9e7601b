"""This tree against another commit, interleaved: the `container.start` job and the whole run.

    .venv/bin/python bench/ab.py --base main --runs 100
    .venv/bin/python bench/ab.py --base a5a48fe --runs 60 --trace    # steps too (bench/steps.py)

Checks ``--base`` out into a temporary worktree (its ``src`` only is used, through this tree's
.venv: the same Python and packages), starts one berthd of each on private roots, and runs
``docker run --rm --network none busybox true`` on each in turn, the order flipping every round,
after warm-up runs. Prints, per daemon, the median of the ``container.start`` job (as ``berth
jobs`` reports it) and of the whole ``docker run``, and the load average before and after: the
machine has other work on it, so only the two columns of one run compare. ``--trace``: both
daemons trace their steps (``BERTH_STEP_TRACE``) and the medians of a few spans are printed as
well (create -> wait answered, exit -> removed). Needs root and the docker CLI.
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

from steps import RUN, last_start_job, parse, spans  # noqa: E402

import harness  # noqa: E402

SPANS = (("d:start", "d:started"), ("d:create", "d:waited"), ("m:exit", "d:waited"), ("d:exit", "d:removed"))


def base_daemon(src: Path, tmp: Path) -> Path:
    """An executable that runs berthd from ``src`` with this tree's Python."""
    exe = tmp / "berthd-base"
    exe.write_text(f"#!/bin/sh\nPYTHONPATH={src} exec {sys.executable} -c "
                   "'import sys; from berth.daemon.main import main; sys.argv[0] = \"berthd\"; sys.exit(main())' \"$@\"\n")
    exe.chmod(0o755)
    return exe


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="main", help="the commit to compare against (default main)")
    ap.add_argument("--runs", type=int, default=60, help="measured runs per daemon")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--trace", action="store_true", help="trace steps in both daemons (BERTH_STEP_TRACE)")
    ap.add_argument("--span", action="append", default=[], metavar="FIRST,LAST",
                    help="with --trace, also the median from mark FIRST to mark LAST (e.g. h:work,h:forked)")
    ap.add_argument("--keep", type=Path, metavar="DIR", help="with --trace, copy both raw traces there "
                    "(base.trace, this.trace: bench/steps.py's format)")
    args = ap.parse_args()
    repo = HERE.parent
    tmp = Path(tempfile.mkdtemp(prefix="ab-", dir="/tmp"))
    wt = tmp / "base"
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "-q", "--detach", str(wt), args.base], check=True)
    base_rev = subprocess.run(["git", "-C", str(wt), "log", "--oneline", "-1"], capture_output=True, text=True).stdout.strip()
    this_rev = subprocess.run(["git", "-C", str(repo), "log", "--oneline", "-1"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--", "src"], capture_output=True, text=True).stdout.strip()
    for src in (repo / "src", wt / "src"):
        subprocess.run([sys.executable, "-m", "compileall", "-q", "-j0", str(src)], check=True)
    names = ("base", "this")
    traces = {n: tmp / f"{n}.trace" for n in names}
    daemons = {
        "base": harness.Berthd.create(prefix="ab-b-", executable=base_daemon(wt / "src", tmp),
                                      env_extra={"BERTH_STEP_TRACE": str(traces["base"])} if args.trace else {}),
        "this": harness.Berthd.create(prefix="ab-t-",
                                      env_extra={"BERTH_STEP_TRACE": str(traces["this"])} if args.trace else {}),
    }
    jobs: dict[str, list[float]] = {n: [] for n in names}
    walls: dict[str, list[float]] = {n: [] for n in names}
    loads = [os.getloadavg()[0]]
    texts: dict[str, str] = {}
    try:
        image = harness.build_busybox_tar(tmp / "busybox.tar")
        for d in daemons.values():
            d.start()
            d.import_image(image)
        for i in range(args.warmup + args.runs):
            if i == args.warmup and args.trace:
                for t in traces.values():
                    t.write_bytes(b"")
            order = names if i % 2 == 0 else names[::-1]
            for n in order:
                t0 = time.monotonic()
                r = daemons[n].docker(*RUN)
                wall = (time.monotonic() - t0) * 1000
                if r.returncode != 0:
                    raise RuntimeError(f"{n}: docker {' '.join(RUN)} exited {r.returncode}: {r.stderr.strip()}")
                if i >= args.warmup:
                    walls[n].append(wall)
                    jobs[n].append(last_start_job(daemons[n]))
        loads.append(os.getloadavg()[0])
        if args.trace:
            texts = {n: traces[n].read_text() for n in names}
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                for n in names:
                    (args.keep / f"{n}.trace").write_text(texts[n])
    finally:
        problems = [p for d in daemons.values() for p in d.teardown()]
        subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(wt)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
        for p in problems:
            print(f"cleanup problem: {p}", file=sys.stderr)
    print(f"{args.runs} runs each of `docker {' '.join(RUN)}`, alternating; 1-minute load {loads[0]:.2f} before, "
          f"{loads[1]:.2f} after")
    print(f"base: {base_rev}")
    print(f"this: {this_rev}{' + uncommitted changes in src' if dirty else ''}")
    print("| median ms | base | this |")
    print("| --- | --- | --- |")
    print(f"| container.start job | {statistics.median(jobs['base']):.1f} | {statistics.median(jobs['this']):.1f} |")
    print(f"| whole docker run | {statistics.median(walls['base']):.1f} | {statistics.median(walls['this']):.1f} |")
    if texts:
        for first, last in [*SPANS, *(tuple(x.split(",", 1)) for x in args.span)]:
            med = {}
            for n in names:
                got = spans(parse(texts[n], "d:create"), first, last)
                med[n] = f"{statistics.median(got):.2f}" if got else "-"
            print(f"| traced {first} -> {last} | {med['base']} | {med['this']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
