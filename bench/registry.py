"""Registry benchmarks: pull, push, save and load of a ~210 MB image of 6 incompressible layers,
berth against dockerd (and skopeo, podman where installed), and berth's registry server against
the CNCF registry 2.8, all in one run. Writes docs/benchmarks-registry.md.

    .venv/bin/python bench/registry.py [--rounds 3] [--no-write] [--only save,load]

Every registry listens on 127.0.0.1 only. dockerd runs in its own network namespace (as in
bench/run.py), so it gets its own CNCF registry on that namespace's loopback, loaded with the same
image; everything else uses registries in the host's namespace. Everything is removed afterwards.
``--only`` runs some of the operations (pull, registry, push, save, load) and prints their table
instead of writing the page (which always holds a whole run).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

import harness  # noqa: E402
from registry_harness import BerthRegistry, CNCFRegistry  # noqa: E402

LAYERS = 6
LAYER_BYTES = 35 * 1000 * 1000
IMAGE = "bench/img:1"
OPERATIONS = ("pull", "registry", "push", "save", "load")
LOAD_ROWS = {False: "load (image not in the daemon)", True: "load (its layers in the daemon, under another tag)"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_layout(folder: Path) -> int:
    """An OCI image layout with LAYERS gzip layers of random bytes; returns the compressed size."""
    blobs = folder / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    layers, diff_ids, total = [], [], 0
    for i in range(LAYERS):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            info = tarfile.TarInfo(f"data/layer{i}.bin")
            info.size = LAYER_BYTES
            tar.addfile(info, io.BytesIO(os.urandom(LAYER_BYTES)))
        tar_bytes = raw.getvalue()
        gz = gzip.compress(tar_bytes, compresslevel=1, mtime=0)
        (blobs / sha256(gz)[7:]).write_bytes(gz)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(gz), "size": len(gz)})
        diff_ids.append(sha256(tar_bytes))
        total += len(gz)
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2026-12-01T00:00:00Z",
                         "config": {"Cmd": ["/bin/true"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    (blobs / sha256(config)[7:]).write_bytes(config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": sha256(config), "size": len(config)},
                           "layers": layers}).encode()
    (blobs / sha256(manifest)[7:]).write_bytes(manifest)
    (folder / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (folder / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256(manifest),
         "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "1"}}]}))
    return total


def daemon_cpu(d: harness.Daemon) -> float:
    """CPU seconds (user + system) the daemon process used so far, all its threads."""
    fields = Path(f"/proc/{d.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(argv: list[str], prefix: list[str] | None = None, timeout: float = 600, env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([*(prefix or []), *argv], capture_output=True, text=True, timeout=timeout, env=env)
    took = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` exited {r.returncode}: {(r.stderr or r.stdout).strip()[-300:]}")
    return took


def skopeo_load(layout: Path, addr: str, prefix: list[str] | None = None) -> None:
    run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:1", f"docker://{addr}/{IMAGE}"], prefix)


class Rows:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, list[float]]] = {}
        self.cpu: dict[str, dict[str, list[float]]] = {}  # the daemon's own CPU seconds (save, load)
        self.errors: dict[str, dict[str, str]] = {}

    def measure(self, row: str, who: str, fn: Callable[[], float]) -> None:
        if who in self.errors.get(row, {}):
            return
        try:
            self.rows.setdefault(row, {}).setdefault(who, []).append(fn())
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            self.errors.setdefault(row, {})[who] = str(exc).splitlines()[0][:300]
            log(f"{row} / {who}: {self.errors[row][who]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--only", default=",".join(OPERATIONS), help=f"a comma-separated subset of {','.join(OPERATIONS)}")
    args = p.parse_args(argv)
    only = set(args.only.split(","))
    if not only <= set(OPERATIONS):
        p.error(f"--only: unknown operations {', '.join(sorted(only - set(OPERATIONS)))}")
    if only != set(OPERATIONS):
        args.no_write = True
    if os.geteuid() != 0:
        print("bench/registry.py: run as root", file=sys.stderr)
        return 2
    dockerd_exe = harness.dockerd_path()
    if harness.docker_cli() is None or dockerd_exe is None or shutil.which("skopeo") is None:
        print("bench/registry.py: needs the docker CLI, dockerd and skopeo (bash scripts/setup.sh --with-reference)",
              file=sys.stderr)
        return 2
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    tmp = Path(tempfile.mkdtemp(prefix="br-", dir="/tmp"))
    rows = Rows()
    berth = harness.Berthd.create(prefix="br-b-")
    ref = harness.Dockerd.create(executable=dockerd_exe)
    regs: list[object] = []
    podman = shutil.which("podman")
    started = time.time()
    loads = [os.getloadavg()[0]]
    try:
        log("making the image (6 x 35 MB of random bytes)")
        layout = tmp / "layout"
        size = make_layout(layout)
        mb = size / 1e6
        berth.start()
        ref.start()
        ns = ["nsenter", f"--net=/run/netns/{ref.netns}", "--"]
        cncf = CNCFRegistry(tmp / "cncf", harness.free_tcp_port())
        regs.append(cncf)
        own = BerthRegistry(tmp / "berthreg")
        regs.append(own)
        ns_port = harness.free_tcp_port()
        (tmp / "nsreg").mkdir()
        (tmp / "nsreg" / "config.yml").write_text(
            f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp}/nsreg/data\n"
            f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{ns_port}\n")
        nsreg = subprocess.Popen([*ns, "docker-registry", "serve", str(tmp / "nsreg" / "config.yml")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        log("loading the image into the registries")
        skopeo_load(layout, cncf.addr)
        skopeo_load(layout, own.addr)
        skopeo_load(layout, f"127.0.0.1:{ns_port}", ns)

        def pull(d: harness.Daemon, addr: str) -> Callable[[], float]:
            def op() -> float:
                took = run([harness.docker_cli() or "docker", "pull", "-q", f"{addr}/{IMAGE}"], env=d.env)
                run([harness.docker_cli() or "docker", "rmi", f"{addr}/{IMAGE}"], env=d.env)
                return took
            return op

        def skopeo_pull(addr: str) -> Callable[[], float]:
            def op() -> float:
                out = tmp / "skopeo-out"
                shutil.rmtree(out, ignore_errors=True)
                took = run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{addr}/{IMAGE}", f"dir:{out}"])
                shutil.rmtree(out, ignore_errors=True)
                return took
            return op

        podman_root = tmp / "podman"
        pod = [podman or "podman", "--root", str(podman_root / "root"), "--runroot", str(podman_root / "run"),
               "--storage-driver", "overlay"] if podman else []

        def podman_pull(addr: str) -> Callable[[], float]:
            def op() -> float:
                took = run([*pod, "pull", "-q", "--tls-verify=false", f"{addr}/{IMAGE}"])
                run([*pod, "rmi", "-f", f"{addr}/{IMAGE}"])
                return took
            return op

        for r in range(args.rounds if only & {"pull", "registry"} else 0):
            log(f"pull round {r + 1}/{args.rounds}")
            order = [("berth", pull(berth, cncf.addr)), ("dockerd", pull(ref, f"127.0.0.1:{ns_port}")),
                     ("skopeo copy to dir", skopeo_pull(cncf.addr))]
            if podman:
                order.append(("podman", podman_pull(cncf.addr)))
            for who, op in (order if r % 2 == 0 else order[::-1]) if "pull" in only else []:
                rows.measure("pull (registry → store, unpacked)", who, op)
            log(f"registry server round {r + 1}")
            loads.append(os.getloadavg()[0])
            for who, addr in ((("berth registry", own.addr), ("CNCF registry 2.8", cncf.addr)) if r % 2 == 0
                              else (("CNCF registry 2.8", cncf.addr), ("berth registry", own.addr))):
                if "registry" in only:
                    rows.measure("registry server: skopeo copy → dir", who, skopeo_pull(addr))

        # push, save, load: the image present in each daemon
        run([harness.docker_cli() or "docker", "pull", "-q", f"{cncf.addr}/{IMAGE}"], env=berth.env)
        run([harness.docker_cli() or "docker", "pull", "-q", f"127.0.0.1:{ns_port}/{IMAGE}"], env=ref.env)
        if podman:
            run([*pod, "pull", "-q", "--tls-verify=false", f"{cncf.addr}/{IMAGE}"])

        def fresh_ns_registry(n: int) -> tuple[subprocess.Popen[bytes], str]:
            port = harness.free_tcp_port()
            root = tmp / f"nspush{n}"
            root.mkdir()
            (root / "config.yml").write_text(
                f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\nhttp:\n  addr: 127.0.0.1:{port}\n")
            proc = subprocess.Popen([*ns, "docker-registry", "serve", str(root / "config.yml")],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
            return proc, f"127.0.0.1:{port}"

        def push(d: harness.Daemon, src: str, addr: str) -> Callable[[], float]:
            def op() -> float:
                target = f"{addr}/pushed/img:1"
                run([harness.docker_cli() or "docker", "tag", src, target], env=d.env)
                return run([harness.docker_cli() or "docker", "push", "-q", target], env=d.env)
            return op

        def podman_push(addr: str) -> Callable[[], float]:
            def op() -> float:
                return run([*pod, "push", "-q", "--tls-verify=false", f"{cncf.addr}/{IMAGE}", f"docker://{addr}/pushed/img:1"])
            return op

        for r in range(args.rounds if "push" in only else 0):
            log(f"push round {r + 1}/{args.rounds} (into empty registries)")
            fresh = [CNCFRegistry(tmp / f"push-b{r}", harness.free_tcp_port()),
                     CNCFRegistry(tmp / f"push-p{r}", harness.free_tcp_port())]
            regs.extend(fresh)
            nsproc, nsaddr = fresh_ns_registry(r)
            try:
                order = [("berth", push(berth, f"{cncf.addr}/{IMAGE}", fresh[0].addr)),
                         ("dockerd", push(ref, f"127.0.0.1:{ns_port}/{IMAGE}", nsaddr))]
                if podman:
                    order.append(("podman", podman_push(fresh[1].addr)))
                for who, op in order if r % 2 == 0 else order[::-1]:
                    rows.measure("push (store → empty registry)", who, op)
            finally:
                nsproc.terminate()
                nsproc.wait(10)
                for f in fresh:
                    f.stop()

        def save(d: harness.Daemon, who: str, src: str) -> Callable[[], float]:
            def op() -> float:
                out = tmp / "saved.tar"
                cpu = daemon_cpu(d)
                took = run([harness.docker_cli() or "docker", "save", "-o", str(out), src], env=d.env)
                rows.cpu.setdefault("save", {}).setdefault(who, []).append(daemon_cpu(d) - cpu)
                return took
            return op

        def load(d: harness.Daemon, who: str, src: str, keep_layers: bool) -> Callable[[], float]:
            """``docker load`` of the image saved by ``src``: removed from the daemon first, or
            (``keep_layers``) only that tag, another one keeping the image and its layers, which
            dockerd then does not unpack again (the case this row measured until 2026-12-05,
            when push's tag kept the image)."""
            docker = harness.docker_cli() or "docker"

            def op() -> float:
                run([docker, "save", "-o", str(tmp / "toload.tar"), src], env=d.env)
                if keep_layers:
                    run([docker, "tag", src, "bench/keep:1"], env=d.env)
                    run([docker, "rmi", src], env=d.env)
                else:
                    image_id = subprocess.run([docker, "image", "inspect", "-f", "{{.Id}}", src], env=d.env,
                                              capture_output=True, text=True, check=True).stdout.strip()
                    run([docker, "rmi", "-f", image_id], env=d.env)  # every tag: the layers go too
                cpu = daemon_cpu(d)
                took = run([docker, "load", "-q", "-i", str(tmp / "toload.tar")], env=d.env)
                rows.cpu.setdefault(LOAD_ROWS[keep_layers], {}).setdefault(who, []).append(daemon_cpu(d) - cpu)
                if keep_layers:
                    run([docker, "rmi", "bench/keep:1"], env=d.env)
                return took
            return op

        for r in range(args.rounds if only & {"save", "load"} else 0):
            log(f"save/load round {r + 1}/{args.rounds}")
            pairs = [("berth", berth, f"{cncf.addr}/{IMAGE}"), ("dockerd", ref, f"127.0.0.1:{ns_port}/{IMAGE}")]
            for who, d, src in pairs if r % 2 == 0 else pairs[::-1]:
                if "save" in only:
                    rows.measure("save", who, save(d, who, src))
                if "load" in only:
                    for keep in (False, True):
                        rows.measure(LOAD_ROWS[keep], who, load(d, who, src, keep_layers=keep))
            loads.append(os.getloadavg()[0])
        nsreg.terminate()
        nsreg.wait(10)
    finally:
        log("cleaning up")
        for reg in regs:
            reg.stop()  # type: ignore[attr-defined]
        for d in (berth, ref):
            for problem in d.teardown():
                log(f"cleanup problem: {problem}")
        if podman and (tmp / "podman").exists():
            subprocess.run([*pod, "system", "reset", "-f"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    text = report(rows, mb, started, loads)
    if args.no_write:
        print(text)
    else:
        (HERE.parent / "docs" / "benchmarks-registry.md").write_text(text)
        log("wrote docs/benchmarks-registry.md")
    return 0


def report(rows: Rows, mb: float, started: float, loads: list[float]) -> str:
    lines = [
        "# Benchmarks: registry operations",
        "",
        "Written by `bench/registry.py` (replaced on every run). One image of 6 layers, each a gzip (level 1) of",
        f"35 MB of random bytes: {mb:.0f} MB compressed. Each cell: median wall time of the whole command",
        "(min–max, n), the throughput it means and, for save and load, the median CPU time the daemon process used",
        "(all its threads). Systems alternate every round. dockerd (Debian's 20.10) runs in",
        "its own network namespace with its own CNCF registry on that loopback, loaded with the same image; every",
        "other client uses the registries in the host's namespace. Registries: the CNCF registry 2.8 (Debian's",
        "docker-registry) and berth's own (`berth registry serve`).",
        "",
        f"Run on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, {os.cpu_count()} cores; command: "
        "`.venv/bin/python bench/registry.py`.",
        f"Load average (1 min) during the run, sampled each round: {', '.join(f'{x:.1f}' for x in loads)}.",
        "",
        "| operation | system | time | MB/s | daemon CPU |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row, systems in rows.rows.items():
        for who, samples in systems.items():
            med = statistics.median(samples)
            cpu = rows.cpu.get(row, {}).get(who)
            lines.append(f"| {row} | {who} | {med:.2f} s ({min(samples):.2f}–{max(samples):.2f}, n={len(samples)}) | "
                         f"{mb / med:.0f} | {f'{statistics.median(cpu):.2f} s' if cpu else ''} |")
    for row, errs in rows.errors.items():
        for who, err in errs.items():
            lines.append(f"| {row} | {who} | failed: {err} | | |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
