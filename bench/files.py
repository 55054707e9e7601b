"""docker cp of a 100 MB tree in and out, and `docker stats --no-stream` of 100 running
containers: berth against dockerd 20.10 in one run. Writes the "Files and stats" section of
docs/benchmarks.md (bench/run.py keeps that section when it rewrites the page).

    .venv/bin/python bench/files.py [--rounds 8] [--containers 100] [--no-write]

The tree is 10 directories of 10 files of 1 MiB (random bytes) and 50 files of 4 KiB each:
600 files, 102 MiB. Each cell times the real docker CLI from start to exit:

- cp in: `docker cp TREE c:/` into a running busybox container (the tree removed between rounds);
- cp out: `docker cp c:/tree DIR` into an empty host directory;
- stats: `docker stats --no-stream` with 100 `sleep` containers running (the CLI asks each
  container's stats at once and prints one table).

Rounds alternate between the two daemons, the order flipping every round, after a warm-up
round each. dockerd runs in a network namespace of its own with `--bridge=none` (as in
bench/run.py), so every container here uses `--network none` on both sides.
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

MIB = 1 << 20


def make_tree(root: Path) -> tuple[Path, int]:
    tree = root / "tree"
    total = 0
    for d in range(10):
        sub = tree / f"d{d}"
        sub.mkdir(parents=True)
        for f in range(10):
            data = os.urandom(MIB)
            (sub / f"big{f}").write_bytes(data)
            total += len(data)
        for f in range(50):
            data = os.urandom(4096)
            (sub / f"small{f}").write_bytes(data)
            total += len(data)
    return tree, total


def run(s: System, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    r = s.daemon.docker(*args, timeout=timeout)
    if r.returncode != 0:
        raise OperationFailed(f"docker {args[0]} exited {r.returncode}: {first_line(r.stderr)}")
    return r


def timed(s: System, *args: str) -> float:
    t0 = time.perf_counter()
    run(s, *args)
    return (time.perf_counter() - t0) * 1000


def cp_in(s: System, tree: Path) -> float:
    run(s, "exec", "cpbench", "rm", "-rf", "/tree")
    return timed(s, "cp", str(tree), "cpbench:/")


def cp_out(s: System, tmp: Path) -> float:
    out = tmp / f"out-{s.name}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    ms = timed(s, "cp", "cpbench:/tree", str(out))
    if not (out / "tree" / "d9" / "big9").is_file():
        raise OperationFailed("docker cp out left no tree")
    return ms


def start_many(s: System, n: int) -> None:
    for i in range(n):
        run(s, "run", "-d", "--network", "none", "--name", f"st{i}", "busybox", "sleep", "3600")


def stats(s: System, n: int) -> float:
    t0 = time.perf_counter()
    r = run(s, "stats", "--no-stream", "--format", "{{.Name}} {{.CPUPerc}} {{.MemUsage}}")
    ms = (time.perf_counter() - t0) * 1000
    shown = len(r.stdout.splitlines())
    if shown < n:
        raise OperationFailed(f"docker stats showed {shown} containers, not {n}")
    return ms


def mbps(series: Series, total: int) -> str:
    if not series.ok:
        return "–"
    return f"{total / MIB / (series.median / 1000):.0f} MiB/s"


def section(results: dict[str, dict[str, Series]], total: int, n: int, command: str, when: float, took: float,
            load: str) -> str:
    lines = [
        "## Files and stats",
        "",
        "Written by `bench/files.py` (bench/run.py keeps this section). docker cp of a tree of 600",
        f"files ({total / MIB:.0f} MiB: 100 of 1 MiB, 500 of 4 KiB) into and out of a running busybox",
        f"container, and `docker stats --no-stream` with {n} running containers; each cell times the",
        "docker CLI 28 from start to exit, the daemons alternating every round after a warm-up each.",
        "",
        "```",
        "bash scripts/setup.sh --with-reference",
        ".venv/bin/python bench/files.py",
        "```",
        "",
        f"- command: `{command}`; took {took:.0f} s",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(when))}",
        f"- load: {load}",
        "",
        "| operation | berth | dockerd 20.10 | berth/dockerd |",
        "| --- | --- | --- | --- |",
    ]
    for key, label in (("cp_in", "docker cp TREE c:/ (in)"), ("cp_out", "docker cp c:/tree DIR (out)"),
                       ("stats", f"docker stats --no-stream, {n} containers")):
        b, d = results[key]["berth"], results[key]["dockerd"]
        extra = f" ({mbps(b, total)} vs {mbps(d, total)})" if key.startswith("cp") else ""
        lines.append(f"| {label}{extra} | {b.cell()} | {d.cell()} | {ratio(b, d)} |")
    lines += ["", "Targets:", ""]
    for key, text in (("cp_in", "docker cp in ≥ dockerd's throughput (time ≤ dockerd's)"),
                      ("cp_out", "docker cp out ≥ dockerd's throughput (time ≤ dockerd's)"),
                      ("stats", f"stats --no-stream of {n} containers ≤ dockerd's time")):
        b, d = results[key]["berth"], results[key]["dockerd"]
        if not (b.ok and d.ok):
            lines.append(f"- {text}: not measured")
            continue
        value = b.median / d.median
        lines.append(f"- {text}: {'met' if value <= 1.0 else 'NOT met'} ({value:.2f}×)")
    errors = [f"- {key} on {name}: {s.error}" for key, row in results.items() for name, s in row.items() if s.error]
    if errors:
        lines += ["", "Failures:", "", *errors]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--containers", type=int, default=100)
    ap.add_argument("--output", type=Path, default=HERE.parent / "docs" / "benchmarks.md")
    ap.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/files.py: run as root", file=sys.stderr)
        return 2
    dockerd_exe = harness.dockerd_path()
    if harness.docker_cli() is None or dockerd_exe is None:
        print("bench/files.py: needs the docker CLI and dockerd (bash scripts/setup.sh --with-reference)",
              file=sys.stderr)
        return 2
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j0", str(HERE.parent / "src")], check=True)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    command = " ".join([os.path.relpath(sys.executable, HERE.parent), "bench/files.py", *sys.argv[1:]])
    started = time.time()
    load_before = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="bf-", dir="/tmp"))
    berth = harness.Berthd.create(prefix="bf-b-")
    ref = harness.Dockerd.create(executable=dockerd_exe)
    results: dict[str, dict[str, Series]] = {}
    problems: list[str] = []
    total = 0
    try:
        tar = harness.build_busybox_tar(tmp / "busybox.tar")
        tree, total = make_tree(tmp)
        log(f"starting dockerd ({ref.root}) and berthd ({berth.root})")
        systems = [start_system("berth", berth, tar), start_system("dockerd", ref, tar)]
        if not all(s.up for s in systems):
            print(f"bench/files.py: a daemon failed to start: {[s.error for s in systems]}", file=sys.stderr)
            return 1
        for s in systems:
            run(s, "run", "-d", "--network", "none", "--name", "cpbench", "busybox", "sleep", "3600")
        log("docker cp in")
        results["cp_in"] = interleave(systems, args.rounds, 1, lambda s: cp_in(s, tree))
        log("docker cp out")
        results["cp_out"] = interleave(systems, args.rounds, 1, lambda s: cp_out(s, tmp))
        for s in systems:
            run(s, "rm", "-f", "cpbench")
            log(f"starting {args.containers} containers on {s.name}")
            start_many(s, args.containers)
        log("docker stats --no-stream")
        results["stats"] = interleave(systems, args.rounds, 1, lambda s: stats(s, args.containers))
    finally:
        log("cleaning up")
        for d in (berth, ref):
            problems += [f"{d.root}: {p}" for p in d.teardown()]
        shutil.rmtree(tmp, ignore_errors=True)
    for p in problems:
        log(f"cleanup problem: {p}")
    load = f"1-minute load average {load_before:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    text = section(results, total, args.containers, command, started, time.time() - started, load)
    if args.no_write:
        print(text)
    else:
        report.write_section(args.output, "files", text)
        log(f"wrote the Files and stats section of {args.output}")
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
