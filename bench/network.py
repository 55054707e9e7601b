"""Network benchmarks: berth against dockerd 20.10 with its bridge, in one run. Writes
docs/benchmarks-network.md.

    .venv/bin/python bench/network.py [--rounds 10] [--containers 200] [--no-write]

(a) `docker run --rm busybox true` on the default bridge (and with --network none: the
    difference is what the network setup costs);
(b) requests/s to busybox httpd through a port published on 127.0.0.1 (ab, apache2-utils), as
    a share of the same httpd reached directly on the same host;
(c) N containers on one user network: DNS answer time from inside a container (median of 200
    queries to 127.0.0.11 from its network namespace), and `docker network inspect` time.

dockerd runs inside a network namespace of its own with its own bridge (docker0 there) and its
defaults (iptables rules, userland proxy for -p) confined to that namespace; its published port
and its direct httpd are measured from inside that namespace, berth's from the host. berthd has
its own bridge and subnet (tests/harness.py). Traffic goes to 127.0.0.1 and containers only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

import harness  # noqa: E402

PY = str(harness.VENV_BIN / "python")
HTTPD = "mkdir -p /www && head -c 512 /dev/zero > /www/index.html && exec httpd -f -p 80 -h /www"
DNS_PROBE = """
import socket, statistics, sys, time
from dnslib import DNSRecord
name, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
s.connect(("127.0.0.11", 53))
q = DNSRecord.question(name).pack()
times = []
for i in range(n + 10):
    t = time.perf_counter(); s.send(q); s.recv(4096); d = time.perf_counter() - t
    if i >= 10: times.append(d * 1000)
print(statistics.median(times))
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class BridgedDockerd(harness.Dockerd):
    """The reference with a bridge: like harness.Dockerd, but with dockerd's network defaults
    (inside its own namespace)."""

    def command(self) -> list[str]:
        return [
            self.executable, "--data-root", str(self.data_root), "--exec-root", str(self.exec_root),
            "-H", self.host, "--pidfile", str(self.pidfile), "--config-file", str(self.root / "daemon.json"),
            "--storage-driver", "overlay2", "--bip", "10.199.0.1/24", "--ip6tables=false",
            "--cgroup-parent", f"/{self.cgroup_parent}", "--log-level", "warn",
        ]  # fmt: skip


def in_ns(d: harness.Daemon, argv: list[str]) -> list[str]:
    ns = getattr(d, "netns", "")
    if isinstance(d, harness.Dockerd) and ns:
        return ["nsenter", f"--net=/run/netns/{ns}", "--", *argv]
    return argv


def must(r: subprocess.CompletedProcess[str]) -> str:
    if r.returncode != 0:
        raise RuntimeError(f"{r.args}: exit {r.returncode}: {r.stderr.strip()[-300:]}")
    return r.stdout


def timed_ms(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def bench_run(systems: dict[str, harness.Daemon], rounds: int) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {n: {"bridge": [], "none": []} for n in systems}
    for r in range(rounds + 2):
        order = list(systems.items()) if r % 2 == 0 else list(systems.items())[::-1]
        for name, d in order:
            for mode in ("bridge", "none"):
                args = ["run", "--rm"] + (["--network", "none"] if mode == "none" else []) + ["busybox", "true"]
                t = timed_ms(lambda d=d, args=args: must(d.docker(*args)))
                if r >= 2:
                    out[name][mode].append(t)
    return out


def ab(d: harness.Daemon, url: str, n: int, c: int) -> float:
    r = subprocess.run(in_ns(d, ["ab", "-q", "-n", str(n), "-c", str(c), url]), capture_output=True, text=True, timeout=300)
    m = re.search(r"Requests per second:\s+([\d.]+)", r.stdout)
    if m is None:
        raise RuntimeError(f"ab {url}: {r.stdout[-300:]} {r.stderr[-300:]}")
    return float(m.group(1))


def bench_published(systems: dict[str, harness.Daemon], rounds: int, requests: int) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {}
    www = Path(tempfile.mkdtemp(prefix="bb-www-", dir="/tmp"))
    (www / "index.html").write_bytes(b"\0" * 512)
    try:
        for name, d in systems.items():
            port = harness.free_tcp_port()
            direct = harness.free_tcp_port()
            must(d.docker("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c", HTTPD))
            httpd = subprocess.Popen(in_ns(d, ["busybox", "httpd", "-f", "-p", f"127.0.0.1:{direct}", "-h", str(www)]))
            try:
                time.sleep(0.5)
                ab(d, f"http://127.0.0.1:{port}/", 200, 4)  # warm-up
                cip = must(d.docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web")).strip()
                res: dict[str, list[float]] = {"published": [], "container": [], "host": []}
                for r in range(rounds):
                    urls = [
                        ("published", f"http://127.0.0.1:{port}/"),  # through the published port
                        ("container", f"http://{cip}:80/"),  # the same httpd at its own address
                        ("host", f"http://127.0.0.1:{direct}/"),  # busybox httpd outside any container
                    ]
                    for what, url in urls if r % 2 == 0 else urls[::-1]:
                        res[what].append(ab(d, url, requests, 8))
                out[name] = res
            finally:
                httpd.kill()
                httpd.wait()
                d.docker("rm", "-f", "web")
    finally:
        shutil.rmtree(www, ignore_errors=True)
    return out


def bench_dns(systems: dict[str, harness.Daemon], containers: int, rounds: int) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for name, d in systems.items():
        must(d.docker("network", "create", "--subnet", "10.198.0.0/22" if name == "dockerd" else "10.197.0.0/22", "many"))
        t0 = time.monotonic()
        for i in range(containers):
            must(d.docker("run", "-d", "--network", "many", "--name", f"n{i}", "busybox", "sleep", "3600"))
        log(f"{name}: {containers} containers on one network in {time.monotonic() - t0:.0f} s")
        key = json.loads(must(d.docker("inspect", "n0")))[0]["NetworkSettings"]["SandboxKey"]
        target = f"n{containers - 1}"
        r = subprocess.run(["nsenter", f"--net={key}", "--", PY, "-c", DNS_PROBE, target, "200"], capture_output=True, text=True)
        dns = float(must(r).strip())
        inspect = [timed_ms(lambda d=d: must(d.docker("network", "inspect", "many"))) for _ in range(rounds)]
        out[name] = {"dns_ms": dns, "inspect_ms": inspect}
    return out


def start(name: str, d: harness.Daemon, tar: Path) -> None:
    log(f"starting {name} ({d.root})")
    d.start()
    d.import_image(tar, "busybox:latest", cmd=("sh",))


def render(res: dict[str, object], args: argparse.Namespace, took: float, command: str) -> str:
    run = res.get("run")
    pub = res.get("published")
    dns = res.get("dns")

    def row(label: str, b: float, d: float, unit: str = "ms") -> str:
        return f"| {label} | {b:.1f} {unit} | {d:.1f} {unit} | {b / d:.2f}x |"

    lines = [
        "# Network benchmarks",
        "",
        f"`{command}`, {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {took:.0f} s, "
        f"1-minute load {os.getloadavg()[0]:.2f} at the end. berth and dockerd 20.10 interleaved in one run "
        "(bench/network.py says how each row is measured); medians.",
        "",
        "| what | berth | dockerd | berth/dockerd |",
        "| --- | --- | --- | --- |",
    ]
    if run:
        b, d = run["berth"], run["dockerd"]  # type: ignore[index]
        lines.append(row("`run --rm busybox true`, default bridge", median(b["bridge"]), median(d["bridge"])))
        lines.append(row("`run --rm --network none busybox true`", median(b["none"]), median(d["none"])))
        lines.append(row("bridge minus none (the network's cost)", median(b["bridge"]) - median(b["none"]),
                         median(d["bridge"]) - median(d["none"])))  # fmt: skip
    for name in ("berth", "dockerd") if pub else ():
        p = pub[name]  # type: ignore[index]
        share = median(p["published"]) / median(p["container"])
        lines.append(f"| httpd through `-p 127.0.0.1:P:80`, {name} | {median(p['published']):.0f} req/s | "
                     f"same httpd at its address {median(p['container']):.0f} req/s | {share:.0%} of direct |")  # fmt: skip
        lines.append(f"| (busybox httpd on the host itself, {name}'s namespace) | {median(p['host']):.0f} req/s | | |")
    if dns:
        bd, dd = dns["berth"], dns["dockerd"]  # type: ignore[index]
        lines.append(row(f"DNS answer, {args.containers} containers on one network", bd["dns_ms"], dd["dns_ms"]))
        lines.append(row(f"`network inspect` with {args.containers} containers", median(bd["inspect_ms"]), median(dd["inspect_ms"])))
    lines += [
        "",
        "Targets (issue 7): published port ≥ 90% of direct; `run --rm` on the bridge ≤ 0.3× dockerd's with",
        "≤ 10 ms for berth's network setup; DNS ≤ 1 ms median with 200 containers; `network inspect` ≤ dockerd's.",
        "",
        "dockerd's published port goes through its userland proxy (its default); berth's through DNAT in the",
        "kernel. The direct httpd is busybox httpd on 127.0.0.1 in the same namespace as the client.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--containers", type=int, default=200)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--only", default="run,published,dns", help="rows to run (comma-separated)")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--output", type=Path, default=HERE.parent / "docs" / "benchmarks-network.md")
    args = ap.parse_args()
    if shutil.which("ab") is None or harness.dockerd_path() is None:
        print("bench/network.py: needs ab and dockerd (bash scripts/setup.sh --with-reference)", file=sys.stderr)
        return 2
    started = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="bb-", dir="/tmp"))
    tar = harness.build_busybox_tar(tmp / "busybox.tar")
    berth = harness.Berthd.create(prefix="bb-b-")
    ref = BridgedDockerd.create(executable=harness.dockerd_path())
    systems: dict[str, harness.Daemon] = {"berth": berth, "dockerd": ref}
    res: dict[str, object] = {}
    try:
        for name, d in systems.items():
            start(name, d, tar)
        only = set(args.only.split(","))
        if "run" in only:
            log("run --rm")
            res["run"] = bench_run(systems, args.rounds)
        if "published" in only:
            log("published port")
            res["published"] = bench_published(systems, max(3, args.rounds // 3), args.requests)
        if "dns" in only:
            log("dns and network inspect")
            res["dns"] = bench_dns(systems, args.containers, args.rounds)
    finally:
        log("cleaning up")
        for d in systems.values():
            for p in d.teardown():
                log(f"cleanup problem: {p}")
        shutil.rmtree(tmp, ignore_errors=True)
    command = " ".join([".venv/bin/python", "bench/network.py", *sys.argv[1:]])
    text = render(res, args, time.time() - started, command)
    if args.no_write:
        print(text)
    else:
        args.output.write_text(text)
        log(f"wrote {args.output}")
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
