"""Builds: berth's classic builder against dockerd 20.10's, in one run. Writes the "Builds"
section of docs/benchmarks.md (bench/run.py keeps that section when it rewrites the page).

    .venv/bin/python bench/build.py [--rounds 10] [--no-write]

The Dockerfile is the issue's: FROM busybox, three RUN steps and one COPY of a 10 MB file (the
whole context is that file and the Dockerfile). Each row times the real docker CLI
(`DOCKER_BUILDKIT=0 docker build -q --network none -t bench:build CTX`) from start to exit:

- cold: `--no-cache` (the base image is present; every step runs);
- cached: the same build again, every step a cache hit.

Rounds alternate between the two daemons (the order flips every round), after one warm-up
build each. dockerd runs in a network namespace of its own, as in bench/run.py.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

import report  # noqa: E402
from measure import OperationFailed, Series, ratio  # noqa: E402
from run import System, first_line, interleave, log, start_system  # noqa: E402

import harness  # noqa: E402

DOCKERFILE = """\
FROM busybox
RUN echo one > /one
RUN echo two > /two
COPY data.bin /data.bin
RUN wc -c /data.bin > /size
"""
CONTEXT_BYTES = 10_000_000
TARGETS = (("cold", 0.5, "cold build ≤ 0.5× dockerd's"), ("cached", 1.0, "fully cached build ≤ dockerd's"))


def make_context(root: Path) -> Path:
    ctx = root / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    with open(ctx / "data.bin", "wb") as f:
        f.write(os.urandom(CONTEXT_BYTES))
    return ctx


def build(s: System, ctx: Path, *extra: str) -> float:
    env = {**s.daemon.env, "DOCKER_BUILDKIT": "0"}
    t0 = time.perf_counter()
    r = s.daemon.docker("build", "-q", "--network", "none", "-t", "bench:build", *extra, str(ctx), env=env,
                        timeout=300)
    ms = (time.perf_counter() - t0) * 1000
    if r.returncode != 0 or not r.stdout.startswith("sha256:"):
        raise OperationFailed(f"docker build exited {r.returncode}: {first_line(r.stderr)}")
    return ms


def section(results: dict[str, dict[str, Series]], command: str, when: float, took: float, load: str) -> str:
    rows = [("cold", "cold: `docker build --no-cache` (3 RUN, COPY of 10 MB)"),
            ("cached", "fully cached: the same build again")]
    lines = [
        "## Builds",
        "",
        "Written by `bench/build.py` (bench/run.py keeps this section). The Dockerfile is FROM busybox,",
        "three RUN steps and one COPY of a 10 MB file; each cell times the docker CLI 28",
        "(`DOCKER_BUILDKIT=0 docker build -q --network none -t bench:build CTX`) from start to exit,",
        "the two daemons alternating every round after a warm-up build each.",
        "",
        "```",
        "bash scripts/setup.sh --with-reference",
        ".venv/bin/python bench/build.py            # 10 rounds per row",
        "```",
        "",
        f"- command: `{command}`; took {took:.0f} s",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(when))}",
        f"- load: {load}",
        "",
        "| build | berth | dockerd 20.10 | berth/dockerd |",
        "| --- | --- | --- | --- |",
    ]
    for key, label in rows:
        b, d = results[key]["berth"], results[key]["dockerd"]
        lines.append(f"| {label} | {b.cell()} | {d.cell()} | {ratio(b, d)} |")
    lines += ["", "Targets:", ""]
    for key, limit, text in TARGETS:
        b, d = results[key]["berth"], results[key]["dockerd"]
        if not (b.ok and d.ok):
            lines.append(f"- {text}: not measured")
            continue
        value = b.median / d.median
        lines.append(f"- {text}: {'met' if value <= limit else 'NOT met'} ({value:.2f}×)")
    errors = [f"- {key} on {name}: {s.error}" for key, row in results.items() for name, s in row.items() if s.error]
    if errors:
        lines += ["", "Failures:", "", *errors]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--output", type=Path, default=HERE.parent / "docs" / "benchmarks.md")
    ap.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/build.py: run as root", file=sys.stderr)
        return 2
    dockerd_exe = harness.dockerd_path()
    if harness.docker_cli() is None or dockerd_exe is None:
        print("bench/build.py: needs the docker CLI and dockerd (bash scripts/setup.sh --with-reference)",
              file=sys.stderr)
        return 2
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j0", str(HERE.parent / "src")], check=True)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    command = " ".join([os.path.relpath(sys.executable, HERE.parent), "bench/build.py", *sys.argv[1:]])
    started = time.time()
    load_before = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="bb-", dir="/tmp"))
    berth = harness.Berthd.create(prefix="bb-b-")
    ref = harness.Dockerd.create(executable=dockerd_exe)
    results: dict[str, dict[str, Series]] = {}
    problems: list[str] = []
    try:
        tar = harness.build_busybox_tar(tmp / "busybox.tar")
        ctx = make_context(tmp)
        log(f"starting dockerd ({ref.root}) and berthd ({berth.root})")
        systems = [start_system("berth", berth, tar), start_system("dockerd", ref, tar)]
        if not all(s.up for s in systems):
            print(f"bench/build.py: a daemon failed to start: {[s.error for s in systems]}", file=sys.stderr)
            return 1
        log("cold builds (--no-cache)")
        results["cold"] = interleave(systems, args.rounds, 1, lambda s: build(s, ctx, "--no-cache"))
        log("fully cached builds")
        results["cached"] = interleave(systems, args.rounds, 1, lambda s: build(s, ctx))
    finally:
        log("cleaning up")
        for d in (berth, ref):
            problems += [f"{d.root}: {p}" for p in d.teardown()]
        shutil.rmtree(tmp, ignore_errors=True)
    for p in problems:
        log(f"cleanup problem: {p}")
    load = f"1-minute load average {load_before:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    text = section(results, command, started, time.time() - started, load)
    if args.no_write:
        print(text)
    else:
        report.write_section(args.output, "build", text)
        log(f"wrote the Builds section of {args.output}")
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
