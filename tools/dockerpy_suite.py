"""Run docker-py's own integration tests (tests/integration of a docker-py checkout) against a
private berthd, or against the reference dockerd in a network namespace of its own.

Nothing is fetched: the suite is a path you give (a checkout of github.com/docker/docker-py at the
tag of the docker-py you run it with), the images come from this machine.

    python tools/dockerpy_suite.py --suite /work/dockerpy-suite [--python SUITE_PY]
        [--against berth|dockerd] [--junit FILE] [-- PYTEST ARGS]

What it does:
  - starts the daemon with tests/harness.py (private roots, socket, cgroup parent; dockerd in its
    own netns with --bridge=none), with `--registry-mirror http://127.0.0.1:PORT`;
  - starts berth's registry server on 127.0.0.1:PORT in the daemon's network namespace;
  - imports the busybox root file system tests/harness.py builds and pushes it to that registry as
    library/alpine:3.10, library/alpine:latest, library/busybox:latest, library/hello-world:latest,
    then removes the local tags, so the suite's pulls (its session fixture pulls alpine:3.10) go
    through the mirror as they would to Docker Hub;
  - runs pytest over SUITE/tests/integration with DOCKER_HOST on the daemon's socket (without
    tests/integration/credentials: credential helpers, no daemon; its utils_test assigns a new
    os.environ, so every later test loses DOCKER_HOST);
  - tears everything down (containers, the daemon, the registry, by pid) and reports leaks.

SUITE_PY is a Python with docker (the same version as the checkout), pytest and paramiko (the
suite's helpers import it); default: SUITE/.venv/bin/python.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import harness  # noqa: E402

# what the suite pulls, each with the CMD of the real image
IMAGES = {
    "alpine:3.10": ("/bin/sh",),
    "alpine:latest": ("/bin/sh",),
    "busybox:latest": ("sh",),
    "hello-world:latest": ("echo", "Hello from Docker!"),
}


def wait_port(port: int, prefix: list[str], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=1).close()"
    while time.monotonic() < deadline:
        if subprocess.run([*prefix, sys.executable, "-c", probe], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    raise SystemExit(f"registry on 127.0.0.1:{port} did not listen within {timeout}s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", required=True, type=Path, help="a docker-py checkout (has tests/integration)")
    ap.add_argument("--python", type=Path, help="Python for the suite (default SUITE/.venv/bin/python)")
    ap.add_argument("--against", choices=("berth", "dockerd"), default="berth")
    ap.add_argument("--junit", type=Path, help="write pytest's junit xml here")
    ap.add_argument("--keep-going-timeout", type=int, default=300, help="pytest-timeout per test, seconds")
    ap.add_argument("pytest_args", nargs="*")
    args = ap.parse_args()
    suite = args.suite.resolve()
    if not (suite / "tests" / "integration").is_dir():
        raise SystemExit(f"{suite} has no tests/integration: give a docker-py checkout")
    py = args.python or suite / ".venv" / "bin" / "python"
    if not Path(py).exists():
        raise SystemExit(f"{py} not found: make a venv with docker, pytest, pytest-timeout and paramiko")

    with socket.socket() as s:  # a free port; the registry runs in the daemon's namespace
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mirror = ["--registry-mirror", f"http://127.0.0.1:{port}"]
    daemon: harness.Daemon
    if args.against == "berth":
        daemon = harness.Berthd.create(extra_args=tuple(mirror))
        prefix: list[str] = []
    else:
        daemon = harness.Dockerd.create(extra_args=(*mirror, "--insecure-registry", f"127.0.0.1:{port}"))
        daemon.prepare()
        prefix = ["nsenter", f"--net=/run/netns/{daemon.netns}", "--"]
    reg_root = Path(tempfile.mkdtemp(prefix="bdps-reg-", dir="/tmp"))
    reg: subprocess.Popen[bytes] | None = None
    problems: list[str] = []
    rc = 1
    try:
        reg = subprocess.Popen(
            [*prefix, str(REPO / ".venv/bin/berth"), "registry", "serve", "--root", str(reg_root / "data"),
             "--addr", f"127.0.0.1:{port}"],
            stdout=open(reg_root / "registry.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        wait_port(port, prefix)
        daemon.start()
        tar = daemon.root / "busybox.tar"
        harness.build_busybox_tar(tar)
        for ref, image_cmd in IMAGES.items():
            # one import each: distinct image ids, as the real images are (prune tests rely on it)
            target = f"127.0.0.1:{port}/library/{ref}"
            daemon.import_image(tar, ref=target, cmd=image_cmd)
            for cmd in (("push", target), ("rmi", target)):
                r = daemon.docker(*cmd, timeout=120)
                if r.returncode != 0:
                    raise SystemExit(f"docker {' '.join(cmd)}: {r.stderr}")
        env = daemon.env
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        # docker-py keeps contexts beside the config file it finds, else in the working directory
        # (the checkout): give it one in the daemon's private DOCKER_CONFIG
        (daemon.docker_config / "config.json").write_text("{}\n")
        cmd = [str(py), "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", "--tb=short", "-rfE",
               f"--timeout={args.keep_going_timeout}", "tests/integration",
               # credentials/: docker-credential-* helpers, no daemon; its utils_test replaces
               # os.environ for good, so every later test would lose DOCKER_HOST
               "--ignore=tests/integration/credentials"]  # fmt: skip
        if args.junit:
            cmd.append(f"--junitxml={args.junit}")
        cmd += args.pytest_args
        print(f"+ DOCKER_HOST={daemon.host} {' '.join(cmd)}", flush=True)
        rc = subprocess.run(cmd, cwd=suite, env=env).returncode
    finally:
        problems = daemon.teardown()
        if reg is not None and reg.poll() is None:
            reg.terminate()
            try:
                reg.wait(10)
            except subprocess.TimeoutExpired:
                reg.kill()
                reg.wait()
        if args.against == "dockerd":
            subprocess.run(["ip", "netns", "delete", daemon.netns], capture_output=True)  # type: ignore[attr-defined]
        subprocess.run(["rm", "-rf", str(reg_root)])
    for p in problems:
        print(f"teardown: {p}", file=sys.stderr)
    return rc if not problems else (rc or 1)


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
