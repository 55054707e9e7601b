"""docs/benchmarks.md: the machine, the method, and the table of medians and ratios."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from measure import Series, ratio

ROWS = [
    ("run", "(a) `docker run --rm --network none busybox true`"),
    ("start_job", "  ↳ its `container.start` job in `berth jobs` (target ≤ 15 ms; dockerd has no such table)"),
    ("run_oci", "  ↳ the same through berth's `oci` exec driver, `--runtime runc` (dockerd: its runc)"),
    ("start_api", "  ↳ `POST /containers/{{id}}/start` of a created `--network none busybox true`"),
    ("run_d", "  ↳ `docker run -d --network none busybox sleep 1000`"),
    (
        "throughput",
        "  ↳ `run --rm --network none busybox true` with 16 clients at once, runs per second (higher is better)",
    ),
    ("exec", "(b) `docker exec CTR true`"),
    ("ps_many", "(c) `docker ps -a` with {ps_containers} created containers"),
    ("create", "  ↳ `POST /containers/create` while filling (c), per container"),
    (
        "mem_pss",
        "(d) PSS per container supervisor (berth monitor / containerd-shim), {mem_containers} running",
    ),
    ("mem_rss", "  ↳ RSS of the same processes"),
    ("daemon_idle", "  ↳ daemon PSS idle (berthd + fork server / dockerd + containerd)"),
    ("daemon_busy", "  ↳ daemon PSS with {mem_containers} running"),
    ("berth_ps", "(e) `berth ps`, empty daemon (target ≤ 60 ms); dockerd column: `docker ps`"),
    ("ps_empty", "  ↳ `docker ps -a`, empty daemon"),
    ("start", "(f) daemon start until `/_ping` answers (target ≤ 150 ms)"),
    ("start_served", "  ↳ until it serves (`GET /version` answered: start-up done)"),
    ("logs", "(g) `docker logs CTR > /dev/null`, a 100 MB json-file log (the same file on both)"),
]


def _cmd(*argv: str) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except OSError:
        return "not found"
    return (r.stdout or r.stderr).strip().splitlines()[0] if (r.stdout or r.stderr).strip() else "?"


def _cgroup_layout() -> str:
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return "v2 (unified)"
    if Path("/sys/fs/cgroup/unified").is_dir():
        return "v1 hybrid (v1 controllers + /sys/fs/cgroup/unified)"
    return "v1"


def machine(dockerd_exe: str) -> dict[str, str]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
    osname = "?"
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("PRETTY_NAME="):
            osname = line.split("=", 1)[1].strip('"')
    try:
        berth_version = importlib.metadata.version("berth")
    except importlib.metadata.PackageNotFoundError:
        berth_version = "?"
    repo = Path(__file__).resolve().parents[1]
    commit = _cmd("git", "-C", str(repo), "rev-parse", "--short", "HEAD")
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": f"{int(mem.group(1)) // 1024 // 1024} GiB" if mem else "?",
        "os": f"{osname}, kernel {platform.release()}",
        "cgroups": _cgroup_layout(),
        "berth": f"{berth_version} (commit {commit}), Python {platform.python_version()}",
        "reference": f"{_cmd(dockerd_exe, '--version')}; {_cmd('containerd', '--version')}; {_cmd('runc', '--version')}",
        "client": _cmd("docker", "--version") + " (first on PATH)",
    }


def _label(key: str, label: str, plan: Any) -> str:
    return label.format(ps_containers=plan.ps_containers, mem_containers=plan.mem_containers)


def table(results: dict[str, dict[str, Series]], plan: Any) -> str:
    lines = [
        "| what | berth | dockerd 20.10 | berth / dockerd |",
        "| --- | --- | --- | --- |",
    ]
    for key, label in ROWS:
        if key not in results:
            continue
        b, d = results[key].get("berth", Series("ms")), results[key].get("dockerd", Series("ms"))
        lines.append(f"| {_label(key, label, plan)} | {b.cell()} | {d.cell()} | {ratio(b, d)} |")
    return "\n".join(lines)


PREAMBLE = """\
# Benchmarks: berth against dockerd

Written by `bench/run.py` (the numbers below are replaced on every run that writes this file).
berth and the reference, Debian's dockerd 20.10 (+ containerd 1.6, runc 1.1), run side by side in
the **same run**, each command alternating between the two systems (the order flips every round),
so that drift on a shared machine hits both alike. Compare the ratio column, not absolute times
across runs.

## How to run

```
bash scripts/setup.sh --with-reference     # Debian's docker.io, busybox-static, the venv
.venv/bin/python bench/run.py --quick      # a short run: 5 rounds, 100 containers for ps -a
.venv/bin/python bench/run.py              # the full run: 20 rounds, 500 containers for ps -a
bash bench/record.sh                       # the full run on the committed HEAD in a clean clone
```

Both `bench/run.py` lines measure the working tree (an editable install); `bench/record.sh`
measures what is committed, which is what the results below should describe.

Where a `container.start` job's time goes, step by step in every process on its way (daemon, shim,
helper, init): `.venv/bin/python bench/steps.py` (a berthd with `BERTH_STEP_TRACE`, per-step medians;
the table in [monitor.md](monitor.md), "Start latency").

Registry operations (pull, push, save, load of a 210 MB image; berth's registry server against the
CNCF registry) have their own script and page: `.venv/bin/python bench/registry.py` writes
[benchmarks-registry.md](benchmarks-registry.md).

Options: `--rounds N`, `--ps-containers N`, `--mem-containers N`, `--only logs,exec,...` (only those rows), `--no-write` (print instead of writing this file),
`--json FILE` (raw samples), `--storage-driver vfs`.

## Method

- Both daemons run on private roots under /tmp with their own unix sockets. dockerd runs inside a
  network namespace created for the run (`ip netns add`, entered with `nsenter --net`), with
  `--bridge=none --iptables=false --ip-masq=false --userland-proxy=false`, so it never touches the
  host's network, and a cgroup parent named for the run. Both get the same image: one busybox root
  file system tar (static busybox, applet symlinks, /etc/passwd, /etc/group), loaded with
  `docker import -c 'CMD ["sh"]'`.
- Times are wall-clock times of whole commands of the real docker CLI (the first `docker` on PATH),
  from process start to exit, as a user sees them; each timing drops its warm-up rounds.
  Cells read `median (min–max, n=samples)`.
- Beside the six asked-for rows: `run -d` (the containers are removed after the row), and
  throughput: 64 (quick: 32) `run --rm` commands issued by 16 concurrent CLI processes, runs per
  second over the whole batch, two batches per system.
- `bench/run.py` byte-compiles berth's sources first: these machines set
  `PYTHONDONTWRITEBYTECODE=1`, and an editable install without `.pyc` files recompiles every
  module on every `berth` command and daemon start (`berth ps` ~120 ms instead of ~30 ms).
  `scripts/setup.sh` does the same.
- (c) the containers are created through the API (`POST /v1.41/containers/create`, not started)
  and `docker ps -aq` must list exactly that many on both before `ps -a` is timed.
- (a) the `container.start` job row reads `GET /berth/v1/jobs?all=1` after each berth run (the
  duration of the newest finished `container.start`): the daemon's work from the start request to
  the process running, without the CLI and HTTP around it. The `POST /containers/{id}/start` row
  creates a container through the API, then times the start call itself on both daemons.
- (d) memory is read from `/proc/<pid>/smaps_rollup` (PSS: shared pages divided among their
  sharers) one second after the containers started. berth's per-container process is the monitor
  (`monitor_pid` in `<exec_root>/<id>/state.json`); dockerd's is `containerd-shim-runc-v2`.
  Daemon memory sums every process that inherited the daemon's environment (the harness marks it
  with `BERTH_HARNESS_ROOT`), less the supervisors: berthd + its fork server, dockerd + containerd.
- (f) the daemon is stopped (SIGTERM) and started again on its initialized roots (image present,
  no containers); the time runs from spawning the process until `GET /_ping` answers (berthd
  answers pings while it is still starting: `docs/architecture.md`, Start-up), and, in the row
  below it, until `GET /version` answers (every request that needs the daemon waits for that).
- (g) one json-file log of ~100 MB (about 700,000 records, one in ten on stderr) is generated
  once and copied over the log of an exited container on each daemon; the time is the whole
  `docker logs CTR` with stdout and stderr to /dev/null (3 rounds quick, 5 full, after one
  warm-up). Lower is better; the ratio below 1 means berth streams the log faster.
- Everything is removed afterwards: containers through the API, both daemons by pid, leftover
  processes, mounts, the network namespace, cgroups and temp dirs; problems found are listed under
  the results.
"""


# (row, description, limit): berth's median must be at most `limit`, in the row's unit
TARGETS = [
    (
        "mem_pss",
        "monitor PSS per container ≤ containerd-shim's 2.5 MB (ARCHITECTURE.md; aim: conmon's 0.35 MB)",
        2.5,
    ),
    ("berth_ps", "`berth ps` on an empty daemon ≤ 60 ms", 60.0),
    ("start_job", "the `container.start` job of (a) ≤ 15 ms (issue 6)", 15.0),
    ("start", "berthd answers `/_ping` ≤ 150 ms after it is spawned (issue 6)", 150.0),
]
# (row, description, limit): berth's median must be at most `limit` times dockerd's
RATIO_TARGETS = [
    ("run", "(a) `docker run --rm` ≤ 0.2× dockerd's (issue 6)", 0.2),
    ("run_oci", "(a) through the `oci` driver with runc ≤ 0.5× dockerd's (issue 10)", 0.5),
]


def targets(results: dict[str, dict[str, Series]]) -> list[str]:
    lines = []
    for key, text, limit in TARGETS:
        s = results.get(key, {}).get("berth")
        if s is None or not s.ok:
            verdict = "not measured"
        else:
            verdict = f"{'met' if s.median <= limit else 'NOT met'}: {s.median:.2f} {s.unit}"
        lines.append(f"- {text}: {verdict}")
    for key, text, limit in RATIO_TARGETS:
        b, d = (results.get(key, {}).get(n) for n in ("berth", "dockerd"))
        if b is None or d is None or not (b.ok and d.ok) or not d.median:
            verdict = "not measured"
        else:
            verdict = f"{'met' if b.median <= limit * d.median else 'NOT met'}: {b.median / d.median:.2f}×"
        lines.append(f"- {text}: {verdict}")
    slower = [
        label.format(ps_containers="N", mem_containers="N").lstrip(" ↳")
        for key, label in ROWS
        if key in results
        and key != "throughput"
        and all(results[key].get(n, Series("ms")).ok for n in ("berth", "dockerd"))
        and results[key]["berth"].median > results[key]["dockerd"].median
    ]
    if slower:
        lines.append("- rows where berth's median is above dockerd's: " + "; ".join(slower))
    tp = results.get("throughput", {})
    if (
        all(tp.get(n, Series("/s")).ok for n in ("berth", "dockerd"))
        and tp["berth"].median < tp["dockerd"].median
    ):
        lines.append("- throughput: berth's runs per second are below dockerd's")
    return lines


def render(
    results: dict[str, dict[str, Series]],
    plan: Any,
    command: str,
    started: float,
    took: float,
    mach: dict[str, str],
    problems: list[str],
) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started))
    out = [PREAMBLE, "## Latest results", ""]
    out.append(
        f"- command: `{command}` ({plan.rounds} rounds after {plan.warmup} warm-up; took {took:.0f} s)"
    )
    out.append(f"- date: {when}")
    for k, v in mach.items():
        out.append(f"- {k}: {v}")
    out += ["", table(results, plan), "", "Targets:", ""] + targets(results) + [""]
    labels = dict(ROWS)
    by_error: dict[str, list[str]] = {}
    for key in labels:
        for name, s in results.get(key, {}).items():
            if s.error is not None:
                row = _label(key, labels[key], plan).lstrip(" ↳")
                by_error.setdefault(f"{name}: {s.error}", []).append(
                    row.split(" ", 1)[0] if row[0] == "(" else row
                )
    if by_error:
        out += ["Failures (the first failure stops measuring that system for that row):", ""]
        out += [f"- {err} — rows: {', '.join(rows)}" for err, rows in by_error.items()] + [""]
    if problems:
        out += ["Clean-up problems:", ""] + [f"- {p}" for p in problems] + [""]
    return "\n".join(out)


# Sections other scripts own (bench/build.py's "Builds"): kept when bench/run.py rewrites the page.
def _section_re(name: str = r"[a-z-]+") -> re.Pattern[str]:
    return re.compile(rf"<!-- section:({name}) -->\n.*?<!-- /section:\1 -->\n", re.S)


def write_section(path: Path, name: str, body: str) -> None:
    """Put ``body`` in the page as section ``name``, replacing an older one."""
    block = f"<!-- section:{name} -->\n{body.rstrip()}\n<!-- /section:{name} -->\n"
    old = path.read_text() if path.exists() else ""
    if _section_re(name).search(old):
        new = _section_re(name).sub(lambda _m: block, old)
    else:
        new = old.rstrip("\n") + "\n\n" + block
    path.write_text(new)


def keep_sections(path: Path, text: str) -> str:
    """``text`` (a fresh page) with the sections the page at ``path`` carries appended."""
    old = path.read_text() if path.exists() else ""
    blocks = [m.group(0) for m in _section_re().finditer(old)]
    return text.rstrip("\n") + "\n\n" + "\n".join(blocks) if blocks else text
