"""`berth-runtime run` of a minimal bundle against runc (and crun) on the same bundle, interleaved
in one run. See docs/benchmarks.md ("berth-runtime").

    .venv/bin/python bench/runtime.py                 # 30 rounds, prints the table
    .venv/bin/python bench/runtime.py --rounds 60 --write   # and puts it in docs/benchmarks.md

The bundle: a busybox root (every applet linked) and `runc spec`'s config.json with `args`
["true"] and no terminal -- what each runtime's own documentation calls a minimal container. A
second bundle is the same with Docker's default seccomp profile (`linux.seccomp` as dockerd
resolves it for `runc spec`'s capabilities on this machine: berth.libcontainer.seccompprofile),
run by every runtime in the same rounds: a profile's cost is the median with it minus the
median without it (issue 10: runc pays ~9 ms per start compiling it with libseccomp;
berth-runtime keeps the compiled program under its --root).
Every round runs each runtime once, in a shuffled order, each with a fresh container id and its
own --root; wall time is the whole command, CPU time the command's and its children's
(user + system, from wait4). crun 1.8 refuses this machine's hybrid cgroup layout ("cgroups in
hybrid mode not supported"), so it runs in a mount namespace of its own where the unified
hierarchy is unmounted (the same v1 hierarchies, one cgroup directory fewer to make); runc and
berth-runtime see the host as it is. Needs root, runc, busybox-static; crun where installed.
Two more rows measure, in the same rounds, the part of berth-runtime's run that is Python's own:
the interpreter its launcher runs (`-IS`) starting and exiting, and the same plus loading
exactly the modules a `run` of this bundle imports (found once, before the rounds), the way the
launcher loads them (berth.runtime.preload, where its file is current) -- what is left of
berth-runtime's time above the second row is the container's work.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BERTH_RUNTIME = REPO / ".venv" / "bin" / "berth-runtime"
BUSYBOX = "/bin/busybox"
MARK_BEGIN = "<!-- bench/runtime.py: begin -->"
MARK_END = "<!-- bench/runtime.py: end -->"


def make_bundles(top: Path) -> tuple[Path, Path]:
    """(the minimal bundle, the same with Docker's default seccomp profile), sharing one root."""
    sys.path.insert(0, str(REPO / "src"))
    from berth.libcontainer.seccompprofile import default_oci
    from berth.libcontainer.testing import busybox_rootfs

    bundle = top / "bundle"
    busybox_rootfs(bundle / "rootfs")
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["args"] = ["true"]
    spec["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(spec, indent=2))
    seccomp = top / "bundle-seccomp"
    seccomp.mkdir()
    spec["root"]["path"] = str(bundle / "rootfs")
    spec["linux"]["seccomp"] = default_oci(spec["process"]["capabilities"]["bounding"])
    (seccomp / "config.json").write_text(json.dumps(spec, indent=2))
    return bundle, seccomp


def crun_argv(top: Path) -> list[str] | None:
    """crun in a mount namespace without the unified hierarchy (see the module's text), or None."""
    crun = shutil.which("crun")
    if crun is None:
        return None
    script = top / "crun-v1"
    script.write_text(
        "#!/bin/sh\n"
        "exec unshare --mount --propagation private sh -c "
        "'umount /sys/fs/cgroup/unified 2>/dev/null; exec \"$0\" \"$@\"' " + crun + ' "$@"\n'
    )
    script.chmod(0o755)
    return [str(script)]


def run_once(argv: list[str]) -> tuple[float, float]:
    """(wall ms, CPU ms of the command and its children) of one run; RuntimeError on failure."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = (time.perf_counter() - t0) * 1000
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` exited {proc.returncode}: {err.strip()[:300]}")
    return wall, (usage.ru_utime + usage.ru_stime) * 1000


def launcher_python() -> str:
    """The interpreter berth-runtime's launcher (written by scripts/setup.sh) runs."""
    first = BERTH_RUNTIME.read_text().splitlines()[0]
    return first.removeprefix("#!").split()[0]


def run_modules(bundle: Path, top: Path) -> list[str]:
    """berth's modules a `berth-runtime run` of ``bundle`` imports, by doing one."""
    probe = (
        "import gc, os, sys; gc.disable(); sys.path.insert(0, sys.argv[1]); before = set(sys.modules)\n"
        "from berth.runtime.cli import main\n"
        "pid = os.getpid(); code = main(sys.argv[2:])\n"
        "if os.getpid() == pid: print(' '.join(sorted(m for m in set(sys.modules) - before)))\n"
    )
    out = subprocess.run(
        [launcher_python(), "-IS", "-c", probe, str(REPO / "src"), "--root", str(top / "probe"), "run", "--bundle",
         str(bundle), f"probe{uuid.uuid4().hex[:8]}"],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    return [m for m in out if m.startswith("berth")]


PRELOAD = REPO / ".venv" / "lib" / "berth-runtime.preload"


def python_argv(modules: list[str]) -> list[str]:
    """The launcher's interpreter loading ``modules`` (none: only starting) as the launcher
    does (its preload first) and exiting as berth-runtime does (os._exit, gc off)."""
    code = f"import gc; gc.disable(); import os, sys; sys.path.insert(0, {str(REPO / 'src')!r})\n"
    if modules:
        code += f"from berth.runtime.preload import preload\npreload({str(PRELOAD)!r}, ['berth-runtime', 'run'])\n"
    code += "".join(f"import {m}\n" for m in modules)
    return [launcher_python(), "-IS", "-c", code + "os._exit(0)"]


def preload_in_use() -> bool:
    """Whether the launcher's preload file is current (else a run imports as usual: run
    scripts/setup.sh again after editing the sources)."""
    code = (f"import sys; sys.path.insert(0, {str(REPO / 'src')!r})\n"
            f"from berth.runtime.preload import preload\nprint(preload({str(PRELOAD)!r}, ['berth-runtime', 'run']))")
    out = subprocess.run([launcher_python(), "-IS", "-c", code], capture_output=True, text=True)
    return out.stdout.strip() == "True"


def overhead_argv(top: Path) -> list[str]:
    """A do-nothing command through the crun wrapper's own unshare, to subtract from crun."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", "umount /sys/fs/cgroup/unified 2>/dev/null; exec true"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--write", action="store_true", help="replace the section in docs/benchmarks.md")
    args = ap.parse_args()
    if os.geteuid() != 0 or shutil.which("runc") is None or not os.path.exists(BUSYBOX):
        print("needs root, runc and busybox-static", file=sys.stderr)
        return 2
    top = Path(tempfile.mkdtemp(prefix="berth-rtbench-"))
    try:
        bundle, seccomp_bundle = make_bundles(top)
        systems: dict[str, list[str]] = {
            "berth-runtime": [str(BERTH_RUNTIME), "--root", str(top / "berth")],
            "runc": ["runc", "--root", str(top / "runc")],
        }
        fixed = {PYTHON_ROW: python_argv([]), IMPORTS_ROW: python_argv(run_modules(bundle, top))}
        crun = crun_argv(top)
        if crun is not None:
            systems["crun"] = [*crun, "--root", str(top / "crun")]
            systems["(unshare for crun)"] = []
        runs: dict[str, tuple[list[str], Path | None]] = {}
        for name, argv in systems.items():
            runs[name] = (argv, None if not argv else bundle)
            if argv:
                runs[name + SECCOMP] = (argv, seccomp_bundle)
        for name, argv in fixed.items():
            runs[name] = (argv, None)
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
        for i in range(args.warmup + args.rounds):
            order = list(runs)
            random.shuffle(order)
            for name in order:
                base, which = runs[name]
                if name in fixed:
                    argv = base
                elif which is None:
                    argv = overhead_argv(top)
                else:
                    argv = [*base, "run", "--bundle", str(which), f"b{uuid.uuid4().hex[:12]}"]
                wall, cpu = run_once(argv)
                if i >= args.warmup:
                    samples[name].append((wall, cpu))
        table = render(samples, args.rounds)
        if not preload_in_use():
            table += ("\n\nberth-runtime ran without its preload (berth.runtime.preload): the file is missing or "
                      "older than the sources (scripts/setup.sh writes it).")
        print(table)
        if args.write:
            write_doc(table, args.rounds)
    finally:
        shutil.rmtree(top, ignore_errors=True)
    return 0


def _cell(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ms ({min(values):.1f}–{max(values):.1f})"


SECCOMP = " + seccomp"
PYTHON_ROW = "(its Python: start-up alone)"
IMPORTS_ROW = "(its Python: start-up + a run's imports)"


def render(samples: dict[str, list[tuple[float, float]]], rounds: int) -> str:
    def med(name: str, i: int) -> float:
        return statistics.median(row[i] for row in samples[name])

    lines = [
        f"| `run` of the minimal bundle, n={rounds} | wall, median (min–max) | CPU, median (min–max) | wall / runc | CPU / runc |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, rows in samples.items():
        if name.endswith(SECCOMP):
            continue
        walls, cpus = [w for w, _ in rows], [c for _, c in rows]
        lines.append(
            f"| {name} | {_cell(walls)} | {_cell(cpus)} | {med(name, 0) / med('runc', 0):.2f} "
            f"| {med(name, 1) / med('runc', 1):.2f} |"
        )
    lines += [
        "",
        f"| `run` with Docker's default seccomp profile, n={rounds} | wall, median (min–max) | CPU, median (min–max) "
        "| the profile's cost: wall | CPU |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, rows in samples.items():
        if not name.endswith(SECCOMP):
            continue
        plain = name.removesuffix(SECCOMP)
        walls, cpus = [w for w, _ in rows], [c for _, c in rows]
        lines.append(
            f"| {name} | {_cell(walls)} | {_cell(cpus)} | {med(name, 0) - med(plain, 0):+.1f} ms "
            f"| {med(name, 1) - med(plain, 1):+.1f} ms |"
        )
    return "\n".join(lines)


def write_doc(table: str, rounds: int) -> None:
    doc = REPO / "docs" / "benchmarks.md"
    text = doc.read_text()
    load = os.getloadavg()
    body = (
        f"{MARK_BEGIN}\n"
        f"Recorded {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} CPUs, "
        f"load average {load[0]:.1f} at the end; command: `.venv/bin/python bench/runtime.py --rounds {rounds} --write`.\n\n"
        f"{table}\n{MARK_END}"
    )
    if MARK_BEGIN in text:
        text = re.sub(re.escape(MARK_BEGIN) + ".*?" + re.escape(MARK_END), lambda _: body, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n## berth-runtime\n\n" + body + "\n"
    doc.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
