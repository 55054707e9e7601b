"""berth against the reference dockerd, interleaved in one run. See docs/benchmarks.md.

    .venv/bin/python bench/run.py --quick          # a short run (a minute or two)
    .venv/bin/python bench/run.py                  # the full run recorded in docs/benchmarks.md

Needs root, the docker CLI on PATH, busybox-static and Debian's docker.io
(`bash scripts/setup.sh --with-reference`). Both daemons run on private roots under /tmp; dockerd
runs inside a network namespace created for the run. Everything is removed afterwards.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

import report  # noqa: E402
from measure import OperationFailed, Series, comm, pss_kb, rss_kb, timed  # noqa: E402

import harness  # noqa: E402

API = "/v1.41"  # what docker CLI 28 negotiates with dockerd 20.10; berth accepts it too


@dataclass
class System:
    name: str  # "berth" or "dockerd"
    daemon: harness.Daemon
    error: str | None = None  # set when the daemon could not be started: its rows say why

    @property
    def up(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Plan:
    rounds: int
    warmup: int
    start_rounds: int
    mem_containers: int
    ps_containers: int
    throughput_runs: int
    log_rounds: int


QUICK = Plan(rounds=5, warmup=1, start_rounds=3, mem_containers=5, ps_containers=100, throughput_runs=32, log_rounds=3)
FULL = Plan(rounds=20, warmup=2, start_rounds=10, mem_containers=20, ps_containers=500, throughput_runs=64, log_rounds=5)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


Results = dict[str, dict[str, Series]]  # row key -> system name -> series


def interleave(
    systems: list[System], rounds: int, warmup: int, op: Callable[[System], float]
) -> dict[str, Series]:
    """Run `op` on each system in turn, alternating the order every round; drop the warm-up rounds."""
    out = {s.name: Series("ms", error=s.error) for s in systems}
    live = [s for s in systems if s.up]
    for r in range(warmup + rounds):
        for s in live if r % 2 == 0 else live[::-1]:
            series = out[s.name]
            if series.error is not None:
                continue
            try:
                ms = op(s)
            except (OperationFailed, subprocess.TimeoutExpired, harness.DaemonError) as exc:
                series.error = str(exc).splitlines()[0][:300]
                continue
            if r >= warmup:
                series.samples.append(ms)
    return out


def docker(s: System, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return s.daemon.docker(*args, timeout=timeout)


def first_line(text: str) -> str:
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[0][:300] if lines else ""


def must(r: subprocess.CompletedProcess[str]) -> str:
    if r.returncode != 0:
        raise OperationFailed(f"`{' '.join(map(str, r.args))}` exited {r.returncode}: {first_line(r.stderr)}")
    return r.stdout


# --- the measurements ---------------------------------------------------------------------------


def bench_start(systems: list[System], plan: Plan, results: Results) -> None:
    """(f) daemon start until /_ping answers, on initialized roots with the image and no
    containers; and until it serves (GET /version answered: the start-up done)."""
    served: dict[str, Series] = {s.name: Series("ms", error=s.error) for s in systems}

    def op(s: System) -> float:
        s.daemon.stop()
        s.daemon.start()  # returns once GET /version answered
        served[s.name].samples.append((time.monotonic() - s.daemon.spawned_at) * 1000)
        return s.daemon.first_ping * 1000

    results["start"] = interleave(systems, plan.start_rounds, 0, op)
    for name, series in served.items():
        series.error = results["start"][name].error
    results["start_served"] = served


def bench_run(systems: list[System], plan: Plan, results: Results) -> None:
    """(a) docker run --rm --network none busybox true; and berth's `container.start` jobs in it."""
    jobs: dict[str, Series] = {s.name: Series("ms", error=s.error) for s in systems}

    def op(s: System) -> float:
        ms = timed(lambda: docker(s, "run", "--rm", "--network", "none", "busybox", "true"))
        if s.name == "berth":
            jobs[s.name].samples.append(last_start_job(s))
        return ms

    results["run"] = interleave(systems, plan.rounds, plan.warmup, op)
    for s in systems:
        if s.name == "berth":
            jobs[s.name].samples = jobs[s.name].samples[plan.warmup :]  # as interleave drops them
            jobs[s.name].error = results["run"][s.name].error
            results["start_job"] = {s.name: jobs[s.name]}


def bench_run_oci(systems: list[System], plan: Plan) -> dict[str, Series]:
    """(a) through berth's oci exec driver with runc (`--runtime runc`); dockerd runs runc anyway."""

    def op(s: System) -> float:
        runtime = ("--runtime", "runc") if s.name == "berth" else ()
        return timed(lambda: docker(s, "run", "--rm", *runtime, "--network", "none", "busybox", "true"))

    return interleave(systems, plan.rounds, plan.warmup, op)


def last_start_job(s: System) -> float:
    """The duration of the last `container.start` job berth finished (`berth jobs -a`)."""
    status, jobs = s.daemon.api("GET", "/berth/v1/jobs?all=1")
    done = [j for j in jobs or [] if j.get("Name") == "container.start" and j.get("DurationMs") is not None]
    if status != 200 or not done:
        raise OperationFailed(f"GET /berth/v1/jobs answered {status} without a finished container.start job")
    return float(max(done, key=lambda j: j["ID"])["DurationMs"])


def bench_start_api(systems: list[System], plan: Plan) -> dict[str, Series]:
    """`POST /containers/{id}/start` of a created `--network none busybox true`, as a client sees it."""

    def op(s: System) -> float:
        status, made = s.daemon.api("POST", f"{API}/containers/create",
                                    {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"NetworkMode": "none"}})
        if status != 201:
            raise OperationFailed(f"POST /containers/create answered {status}: {made}")
        cid = made["Id"]
        try:
            t0 = time.perf_counter()
            status, body = s.daemon.api("POST", f"{API}/containers/{cid}/start")
            ms = (time.perf_counter() - t0) * 1000
            if status != 204:
                raise OperationFailed(f"POST /containers/{cid[:12]}/start answered {status}: {body}")
            s.daemon.api("POST", f"{API}/containers/{cid}/wait", timeout=60)
        finally:
            s.daemon.api("DELETE", f"{API}/containers/{cid}?force=1", timeout=60)
        return ms

    return interleave(systems, plan.rounds, plan.warmup, op)


def bench_run_detached(systems: list[System], plan: Plan) -> dict[str, Series]:
    """`docker run -d --network none busybox sleep 1000`; the containers are removed afterwards."""
    ids: dict[str, list[str]] = {s.name: [] for s in systems}

    def op_timed(s: System) -> float:
        t0 = time.perf_counter()
        r = docker(s, "run", "-d", "--network", "none", "busybox", "sleep", "1000")
        ms = (time.perf_counter() - t0) * 1000
        if r.returncode != 0:
            raise OperationFailed(f"docker run -d exited {r.returncode}: {first_line(r.stderr)}")
        ids[s.name].append(r.stdout.strip())
        return ms

    try:
        return interleave(systems, plan.rounds, plan.warmup, op_timed)
    finally:
        for s in systems:
            for cid in ids[s.name]:
                s.daemon.api("DELETE", f"{API}/containers/{cid}?force=1", timeout=60)


def _run_true(s: System, _: int) -> subprocess.CompletedProcess[str]:
    return docker(s, "run", "--rm", "--network", "none", "busybox", "true", timeout=120)


def bench_throughput(systems: list[System], plan: Plan, clients: int = 16) -> dict[str, Series]:
    """`run --rm --network none busybox true` per second with `clients` CLIs at once (runs/s)."""
    from concurrent.futures import ThreadPoolExecutor

    total = plan.throughput_runs
    out = {s.name: Series("/s", error=s.error) for s in systems}
    live = [s for s in systems if s.up]
    for r in range(2):  # two rounds, the order flipped, each system measured twice
        for s in live if r % 2 == 0 else live[::-1]:
            if out[s.name].error is not None:
                continue
            t0 = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                codes = list(pool.map(functools.partial(_run_true, s), range(total)))
            took = time.perf_counter() - t0
            failed = [c for c in codes if c.returncode != 0]
            if failed:
                out[s.name].error = f"{len(failed)}/{total} runs failed: {first_line(failed[0].stderr)}"
                continue
            out[s.name].samples.append(total / took)
    return out


def bench_exec(systems: list[System], plan: Plan, tag: str) -> dict[str, Series]:
    """(b) docker exec CTR true, CTR a running busybox sleep."""
    name = f"bench-exec-{tag}"
    started = []
    for s in systems:
        if s.up:
            r = docker(s, "run", "-d", "--network", "none", "--name", name, "busybox", "sleep", "1000")
            if r.returncode == 0:
                started.append(s)
    try:

        def op(s: System) -> float:
            if s not in started:
                raise OperationFailed(f"could not start {name} on {s.name}")
            return timed(lambda: docker(s, "exec", name, "true"))

        return interleave(systems, plan.rounds, plan.warmup, op)
    finally:
        for s in started:
            docker(s, "rm", "-f", name)


def bench_ps(systems: list[System], plan: Plan, all_: bool) -> dict[str, Series]:
    args = ("ps", "-a") if all_ else ("ps",)
    return interleave(systems, plan.rounds, plan.warmup, lambda s: timed(lambda: docker(s, *args)))


def bench_berth_ps(systems: list[System], plan: Plan) -> dict[str, Series]:
    """(e) `berth ps` on an empty daemon; the dockerd column is `docker ps` against dockerd."""

    def op(s: System) -> float:
        if s.name == "berth":
            return timed(lambda: s.daemon.berth("ps"))
        return timed(lambda: docker(s, "ps"))

    return interleave(systems, plan.rounds, plan.warmup, op)


def monitor_pids(s: System) -> list[int]:
    """Per-container supervisor processes: berth's monitors, dockerd's containerd-shims."""
    if s.name == "berth":
        pids = []
        for state in s.daemon.exec_root.glob("*/state.json"):
            try:
                pid = json.loads(state.read_text()).get("monitor_pid")
            except (OSError, ValueError):
                continue
            if isinstance(pid, int) and harness.pid_alive(pid):
                pids.append(pid)
        return pids
    return [
        p for p in harness.pids_mentioning(str(s.daemon.exec_root)) if comm(p).startswith("containerd-shim")
    ]


def daemon_pids(s: System) -> list[int]:
    """The daemon's own processes (berthd + its fork server; dockerd + containerd): every process
    carrying the harness's environment marker, less the per-container supervisors."""
    monitors = set(monitor_pids(s))
    return [p for p in harness.pids_with_marker(s.daemon.root) if p not in monitors]


def mb(kb: int | None) -> float:
    return (kb or 0) / 1024


def bench_memory(systems: list[System], plan: Plan, results: Results) -> None:
    """(d) PSS/RSS per container supervisor with N running containers; daemon PSS idle -> N running."""
    keys = ("mem_pss", "mem_rss", "daemon_idle", "daemon_busy")
    for k in keys:
        results[k] = {s.name: Series("MB", error=s.error) for s in systems}
    live = [s for s in systems if s.up]
    for s in live:
        results["daemon_idle"][s.name].samples.append(sum(mb(pss_kb(p)) for p in daemon_pids(s)))
    ids: dict[str, list[str]] = {s.name: [] for s in live}
    try:
        for i in range(plan.mem_containers):
            for s in live if i % 2 == 0 else live[::-1]:
                if results["mem_pss"][s.name].error:
                    continue
                r = docker(s, "run", "-d", "--network", "none", "busybox", "sleep", "1000")
                if r.returncode != 0:
                    results["mem_pss"][s.name].error = f"docker run -d failed: {first_line(r.stderr)}"
                    continue
                ids[s.name].append(r.stdout.strip())
        time.sleep(1.0)  # let lazily touched pages settle
        for s in live:
            pids = monitor_pids(s)
            if results["mem_pss"][s.name].error:
                continue
            if len(pids) != len(ids[s.name]):
                results["mem_pss"][
                    s.name
                ].error = f"found {len(pids)} supervisor processes for {len(ids[s.name])} running containers"
                continue
            results["mem_pss"][s.name].samples += [mb(pss_kb(p)) for p in pids]
            results["mem_rss"][s.name].samples += [mb(rss_kb(p)) for p in pids]
            results["daemon_busy"][s.name].samples.append(sum(mb(pss_kb(p)) for p in daemon_pids(s)))
    finally:
        for s in live:
            for cid in ids[s.name]:
                s.daemon.api("DELETE", f"{API}/containers/{cid}?force=1", timeout=60)


def create_many(s: System, n: int, deadline: float) -> Series:
    """Create `n` containers (not started) through the API; the per-create times."""
    series = Series("ms")
    body = {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"NetworkMode": "none"}}
    for _ in range(n):
        if time.monotonic() > deadline:
            series.error = f"time budget exhausted after {len(series.samples)} creates"
            break
        t0 = time.perf_counter()
        status, resp = s.daemon.api("POST", f"{API}/containers/create", body, timeout=60)
        if status != 201:
            series.error = f"POST /containers/create: HTTP {status}: {str(resp)[:200]}"
            break
        series.samples.append((time.perf_counter() - t0) * 1000)
    return series


def bench_ps_many(systems: list[System], plan: Plan, results: Results) -> None:
    """(c) `docker ps -a` with N created containers on each daemon."""
    n = plan.ps_containers
    results["create"] = {s.name: Series("ms", error=s.error) for s in systems}
    ready = []
    for s in systems:
        if not s.up:
            continue
        # Start from none: earlier rows may have left containers behind (a failed `run --rm`).
        leftovers = s.daemon.remove_all_containers()
        if leftovers:
            results["create"][s.name] = Series("ms", error=f"could not empty the daemon: {leftovers[0]}")
            continue
        log(f"creating {n} containers on {s.name}")
        results["create"][s.name] = create_many(s, n, time.monotonic() + 600)
        if results["create"][s.name].error is None:
            count = len(must(docker(s, "ps", "-aq")).split())
            if count == n:
                ready.append(s)
            else:
                results["create"][s.name].error = f"docker ps -aq lists {count} containers, expected {n}"
    ps = interleave(
        [s if s in ready else System(s.name, s.daemon, s.error or "could not create the containers") for s in systems],
        plan.rounds, plan.warmup, lambda s: timed(lambda: docker(s, "ps", "-a")),
    )  # fmt: skip
    results["ps_many"] = ps


def write_json_log(path: Path, size: int) -> int:
    """A json-file log of about `size` bytes as Docker writes it (one record per line, every
    tenth on stderr, line lengths varying); returns the number of records."""
    from berth.container.logs import encode_record

    base = 1_795_840_368_000_000_000
    with path.open("wb") as f:
        total = i = 0
        batch: list[bytes] = []
        while total < size:
            line = b"%08d the quick brown fox jumps over the lazy dog %s\n" % (i, b"x" * (i % 40))
            rec = encode_record("stderr" if i % 10 == 0 else "stdout", line, base + i * 1000)
            batch.append(rec)
            total += len(rec)
            i += 1
            if len(batch) >= 10_000:
                f.write(b"".join(batch))
                batch = []
        f.write(b"".join(batch))
    return i


def bench_logs(systems: list[System], plan: Plan, tmp: Path, tag: str, size: int = 100 << 20) -> dict[str, Series]:
    """`docker logs CTR > /dev/null` of the same ~100 MB json-file log on both daemons: an exited
    container whose log file is replaced by one generated here (same bytes on both)."""
    source = tmp / "big-json.log"
    records = write_json_log(source, size)
    log(f"logs: {source.stat().st_size / 1e6:.0f} MB, {records} records")
    name = f"bench-logs-{tag}"
    ready = []
    for s in systems:
        if not s.up:
            continue
        r = docker(s, "run", "--name", name, "--network", "none", "busybox", "true")
        if r.returncode != 0:
            continue
        path = json.loads(must(docker(s, "inspect", name)))[0]["LogPath"]
        shutil.copyfile(source, path)
        ready.append(s)

    def op(s: System) -> float:
        if s not in ready:
            raise OperationFailed(f"could not prepare {name} on {s.name}")
        t0 = time.perf_counter()
        r = subprocess.run(
            [harness.docker_cli() or "docker", "logs", name], env=s.daemon.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600,
        )
        if r.returncode != 0:
            raise OperationFailed(f"docker logs {name} exited {r.returncode} on {s.name}")
        return (time.perf_counter() - t0) * 1000

    try:
        return interleave(systems, plan.log_rounds, 1, op)
    finally:
        for s in ready:
            docker(s, "rm", "-f", name)
        source.unlink(missing_ok=True)


# --- orchestration ------------------------------------------------------------------------------


def start_system(name: str, daemon: harness.Daemon, tar: Path) -> System:
    s = System(name, daemon)
    try:
        daemon.start()
        daemon.import_image(tar, "busybox:latest", cmd=("sh",))
    except (harness.DaemonError, OSError, subprocess.TimeoutExpired) as exc:
        lines = str(exc).splitlines()
        last = [ln for ln in lines[1:] if ln.strip() and not ln.startswith("---")][-1:]
        s.error = f"{name} unavailable: {' / '.join(lines[:1] + last)[:300]}"
        log(f"{s.error}\n{daemon.log_tail(20)}")
    return s


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer rounds and containers (a minute or two)")
    p.add_argument("--rounds", type=int, help="measured rounds per timing (default 20, quick 5)")
    p.add_argument(
        "--ps-containers", type=int, help="containers for the ps -a timing (default 500, quick 100)"
    )
    p.add_argument("--mem-containers", type=int, help="running containers for (d) (default 20, quick 5)")
    p.add_argument("--output", type=Path, default=HERE.parent / "docs" / "benchmarks.md")
    p.add_argument("--no-write", action="store_true", help="print the report instead of writing --output")
    p.add_argument("--json", type=Path, help="also write the raw samples here")
    p.add_argument("--storage-driver", default="overlay2", help="berthd's storage driver")
    p.add_argument(
        "--only", type=lambda v: set(v.split(",")), default=set(),
        help="run only these rows (comma-separated: start,ps,run,exec,throughput,memory,logs,ps_many)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench/run.py: run as root", file=sys.stderr)
        return 2
    dockerd_exe = harness.dockerd_path()
    if harness.docker_cli() is None or dockerd_exe is None:
        print(
            "bench/run.py: needs the docker CLI and dockerd (bash scripts/setup.sh --with-reference)",
            file=sys.stderr,
        )
        return 2
    plan = QUICK if args.quick else FULL
    plan = Plan(
        rounds=args.rounds or plan.rounds, warmup=plan.warmup, start_rounds=plan.start_rounds,
        mem_containers=args.mem_containers or plan.mem_containers,
        ps_containers=args.ps_containers or plan.ps_containers, throughput_runs=plan.throughput_runs,
        log_rounds=plan.log_rounds,
    )  # fmt: skip
    python = (
        os.path.relpath(sys.executable, HERE.parent)
        if sys.executable.startswith(str(HERE.parent))
        else "python"
    )
    extra = sys.argv[1:] if argv is None else argv
    command = " ".join([python, "bench/run.py", *extra])
    if os.environ.get("BERTH_BENCH_VIA"):  # set by bench/record.sh
        command = f"{os.environ['BERTH_BENCH_VIA']} (which ran {command} in a clean clone)"
    # Byte-compile berth first (see scripts/setup.sh): with PYTHONDONTWRITEBYTECODE set, sources
    # edited since the last setup would otherwise be compiled again on every command.
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j0", str(HERE.parent / "src")], check=True)
    started = time.time()
    load_before = os.getloadavg()[0]

    # SIGTERM/SIGHUP unwind like Ctrl-C, so the clean-up below runs.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    tmp = Path(tempfile.mkdtemp(prefix="bb-", dir="/tmp"))
    tag = tmp.name.removeprefix("bb-").lower()
    tar = harness.build_busybox_tar(tmp / "busybox.tar")
    berth = harness.Berthd.create(prefix="bb-b-", storage_driver=args.storage_driver)
    ref = harness.Dockerd.create(executable=dockerd_exe)
    systems: list[System] = []
    results: Results = {}
    problems: list[str] = []
    try:
        log(f"starting dockerd ({ref.root}, netns {ref.netns}) and berthd ({berth.root})")
        systems = [start_system("berth", berth, tar), start_system("dockerd", ref, tar)]
        if not systems[1].up:
            print(f"bench/run.py: the reference failed to start: {systems[1].error}", file=sys.stderr)
            return 1
        steps: list[tuple[str, str, Callable[[], None]]] = [
            ("start", "daemon start until /_ping", lambda: bench_start(systems, plan, results)),
            ("ps", "ps on empty daemons", lambda: results.update(
                berth_ps=bench_berth_ps(systems, plan), ps_empty=bench_ps(systems, plan, all_=True))),
            ("run", "run --rm --network none busybox true", lambda: bench_run(systems, plan, results)),
            ("run", "run --rm through the oci driver (runc)", lambda: results.update(run_oci=bench_run_oci(systems, plan))),
            ("run", "POST /containers/{id}/start", lambda: results.update(start_api=bench_start_api(systems, plan))),
            ("exec", "exec", lambda: results.update(exec=bench_exec(systems, plan, tag))),
            ("run", "run -d", lambda: results.update(run_d=bench_run_detached(systems, plan))),
            ("throughput", f"throughput: {plan.throughput_runs} runs, 16 clients",
             lambda: results.update(throughput=bench_throughput(systems, plan))),
            ("memory", f"memory with {plan.mem_containers} running containers",
             lambda: bench_memory(systems, plan, results)),
            ("logs", "docker logs of a 100 MB json-file log", lambda: results.update(logs=bench_logs(systems, plan, tmp, tag))),
            ("ps_many", f"ps -a with {plan.ps_containers} containers", lambda: bench_ps_many(systems, plan, results)),
        ]  # fmt: skip
        for key, what, step in steps:
            if args.only and key not in args.only:
                continue
            log(what)
            step()
    finally:
        log("cleaning up")
        for d in (berth, ref):
            problems += [f"{d.name} ({d.root}): {p}" for p in d.teardown()]
        shutil.rmtree(tmp, ignore_errors=True)
    for p in problems:
        log(f"cleanup problem: {p}")

    mach = report.machine(dockerd_exe)
    mach["load"] = (
        f"1-minute load average {load_before:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    )
    text = report.render(results, plan, command, started, time.time() - started, mach, problems)
    if args.json:
        raw = {k: {n: vars(s) for n, s in v.items()} for k, v in results.items()}
        args.json.write_text(json.dumps(raw, indent=1))
    if args.no_write:
        print(text)
    else:
        args.output.write_text(report.keep_sections(args.output, text))  # with bench/build.py's section
        log(f"wrote {args.output}")
        print(report.table(results, plan))
    return 0


if __name__ == "__main__":
    sys.exit(main())
