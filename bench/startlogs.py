"""Start a created container and read its logs at once, as `docker start X; docker logs X` and
docker-py's `test_build_in_context_nested_dockerfile` / `test_attach_no_stream` do: how often the
logs come back empty, on a private berthd and (``--dockerd``) a private reference dockerd.

    .venv/bin/python bench/startlogs.py --tries 50 [--dockerd] [--berthd EXE]

Each try: create (network none) with the command, POST start, then GET logs (stdout+stderr, no
follow) at once; counts the empty answers and the ms from the start's reply to the logs' reply.
Record the 1-minute load with the numbers (printed).
"""

from __future__ import annotations

import argparse
import calendar
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests")]

import docker  # noqa: E402

import harness  # noqa: E402


def parse_time(text: str) -> int:
    """ns since the epoch of an RFC3339Nano UTC timestamp (the log's)."""
    head, _, frac = text.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S")) * 1_000_000_000 + int((frac + "000000000")[:9])


COMMANDS = {"echo hi": ["echo", "hi"], "ls -a": ["ls", "-a"]}


def measure(d: harness.Daemon, tries: int) -> dict[str, tuple[int, list[float]]]:
    client = docker.APIClient(base_url=f"unix://{d.sock}", version="1.41")
    out: dict[str, tuple[int, list[float]]] = {}
    for label, cmd in COMMANDS.items():
        empty, gaps, lags, late = 0, [], [], []
        for _ in range(tries):
            cid = client.create_container("busybox:latest", cmd, host_config=client.create_host_config(network_mode="none"))["Id"]
            client.start(cid)
            t0 = time.monotonic()
            w0 = time.time_ns()
            logs = client.logs(cid, stdout=True, stderr=True)
            gaps.append((time.monotonic() - t0) * 1000)
            w1 = time.time_ns()
            empty += not logs
            client.wait(cid)
            stamped = client.logs(cid, stdout=True, stderr=True, timestamps=True).decode()
            first = parse_time(stamped.split(" ", 1)[0]) if stamped else w0
            lags.append((first - w0) / 1e6)
            if not logs:
                late.append(((first - w0) / 1e6, (w1 - w0) / 1e6))
            client.remove_container(cid, force=True)
        out[label] = (empty, gaps)
        print(f"{d.name} {label}: first record - start reply, median {statistics.median(lags):.1f} ms, "
              f"max {max(lags):.1f}; empty tries (record ms, logs reply ms): "
              + ", ".join(f"({a:.1f}, {b:.1f})" for a, b in late), flush=True)
    client.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tries", type=int, default=50)
    ap.add_argument("--dockerd", action="store_true", help="also the reference dockerd (in its own netns)")
    ap.add_argument("--berthd", default="", help="the berthd executable (default: this tree's)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sl-", dir="/tmp"))
    daemons: dict[str, harness.Daemon] = {
        "berthd": harness.Berthd.create(prefix="sl-", **({"executable": args.berthd} if args.berthd else {}))}
    if args.dockerd:
        daemons["dockerd"] = harness.Dockerd.create()
    load0 = os.getloadavg()[0]
    results = {}
    try:
        image = harness.build_busybox_tar(tmp / "busybox.tar")
        for d in daemons.values():
            d.start()
            d.import_image(image)
        for name, d in daemons.items():
            results[name] = measure(d, args.tries)
    finally:
        problems = [p for d in daemons.values() for p in d.teardown()]
        shutil.rmtree(tmp, ignore_errors=True)
        for p in problems:
            print(f"cleanup problem: {p}", file=sys.stderr)
    print(f"{args.tries} tries each; 1-minute load {load0:.2f} before, {os.getloadavg()[0]:.2f} after")
    print("| daemon | command | empty logs | median ms start reply -> logs reply |")
    print("| --- | --- | --- | --- |")
    for name, res in results.items():
        for label, (empty, gaps) in res.items():
            print(f"| {name} | `{label}` | {empty}/{args.tries} | {statistics.median(gaps):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
