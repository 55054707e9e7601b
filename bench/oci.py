"""The `oci` exec driver against dockerd: `docker run --rm --network none busybox true` through
berth with `--runtime runc` (the monitor driving Debian's runc) and through dockerd 20.10 (whose
containerd shim drives the same runc), interleaved in one run; berth's native driver alongside.
Writes the "oci" section of docs/benchmarks.md (bench/run.py measures the same `run_oci` row in
its full table).

    .venv/bin/python bench/oci.py                     # 20 rounds, prints the table
    .venv/bin/python bench/oci.py --rounds 30 --write # and puts it in docs/benchmarks.md

Target (issue 10): berth's oci median ≤ 0.5× dockerd's. Needs root, the docker CLI, dockerd, runc.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

import report  # noqa: E402
import run  # noqa: E402
from measure import Series, ratio, timed  # noqa: E402

import harness  # noqa: E402

TARGET = 0.5


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--write", action="store_true", help="replace the oci section in docs/benchmarks.md")
    args = ap.parse_args()
    dockerd_exe = harness.dockerd_path()
    if os.geteuid() != 0 or dockerd_exe is None or harness.docker_cli() is None or shutil.which("runc") is None:
        print("bench/oci.py: needs root, the docker CLI, dockerd and runc", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="bo-", dir="/tmp"))
    tar = harness.build_busybox_tar(tmp / "busybox.tar")
    berth = harness.Berthd.create(prefix="bb-o-")
    ref = harness.Dockerd.create(executable=dockerd_exe)
    started = time.time()
    load = os.getloadavg()[0]
    results: dict[str, dict[str, Series]] = {}
    try:
        systems = [run.start_system("berth", berth, tar), run.start_system("dockerd", ref, tar)]
        if not all(s.up for s in systems):
            print(f"bench/oci.py: {[s.error for s in systems if not s.up]}", file=sys.stderr)
            return 1
        # one interleaved loop: berth oci, dockerd, berth native, in turn
        out = {"oci": Series("ms"), "dockerd": Series("ms"), "native": Series("ms")}
        for r in range(args.warmup + args.rounds):
            order = [("oci", systems[0], ("--runtime", "runc")), ("dockerd", systems[1], ()),
                     ("native", systems[0], ("--runtime", "native"))]
            for key, s, flags in order if r % 2 == 0 else order[::-1]:
                ms = timed(lambda s=s, flags=flags: run.docker(s, "run", "--rm", *flags, "--network", "none", "busybox", "true"))
                if r >= args.warmup:
                    out[key].samples.append(ms)
        results = {"oci": {"berth": out["oci"], "dockerd": out["dockerd"]},
                   "native": {"berth": out["native"], "dockerd": out["dockerd"]}}
    finally:
        for d in (berth, ref):
            d.teardown()
        shutil.rmtree(tmp, ignore_errors=True)
    b, d = results["oci"]["berth"], results["oci"]["dockerd"]
    verdict = "met" if b.median <= TARGET * d.median else "NOT met"
    table = "\n".join([
        "| `docker run --rm --network none busybox true` | berth | dockerd 20.10 (runc) | berth / dockerd |",
        "| --- | --- | --- | --- |",
        f"| berth `--runtime runc` (the oci exec driver) | {b.cell()} | {d.cell()} | {ratio(b, d)} |",
        f"| berth `--runtime native` (same run) | {results['native']['berth'].cell()} | {d.cell()} "
        f"| {ratio(results['native']['berth'], d)} |",
    ])
    body = (
        "## The oci exec driver\n\n"
        f"Recorded {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))} on {os.cpu_count()} CPUs "
        f"({report.machine(dockerd_exe)['cgroups']}), 1-minute load average {load:.1f} at the start; "
        f"command: `.venv/bin/python bench/oci.py --rounds {args.rounds} --write`; {args.rounds} interleaved "
        f"rounds after {args.warmup} warm-up, each system on its own roots (dockerd in its own network namespace).\n\n"
        f"{table}\n\nTarget: the oci driver with runc ≤ {TARGET}× dockerd's: {verdict} ({b.median / d.median:.2f}×).\n"
    )
    print(body)
    if args.write:
        report.write_section(HERE.parent / "docs" / "benchmarks.md", "oci", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
