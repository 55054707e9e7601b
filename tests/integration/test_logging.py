"""Logging drivers: json-file rotating by default, compress, the local driver, docker logs
across rotated (and gzipped) files, and daemon-wide defaults (log-driver, log-opts)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import harness

pytestmark = pytest.mark.integration

SPEW = "i=0; while [ $i -lt {n} ]; do echo \"line $i padding padding padding padding\"; i=$((i+1)); done; {after}"


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
    return r


def log_config(d: harness.Daemon, name: str) -> dict[str, object]:
    return json.loads(ok(d.docker("inspect", "-f", "{{json .HostConfig.LogConfig}}", name)).stdout)  # type: ignore[no-any-return]


def lines(d: harness.Daemon, *args: str) -> list[str]:
    return ok(d.docker("logs", *args)).stdout.splitlines()


def wait_logged(d: harness.Daemon, name: str, last: str) -> None:
    harness.eventually(lambda: d.docker("logs", "--tail", "1", name).stdout.strip() == last, timeout=30)


def test_json_file_rotates_by_default_and_compresses(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("create", "--name", "plain", busybox_image, "true"))
    assert log_config(berthd, "plain") == {"Type": "json-file", "Config": {"max-file": "5", "max-size": "20m"}}
    ok(berthd.docker("run", "-d", "--name", "gz", "--log-opt", "max-size=8k", "--log-opt", "max-file=4",
                     "--log-opt", "compress=true", busybox_image, "sh", "-c", SPEW.format(n=3000, after="sleep 300")))
    wait_logged(berthd, "gz", "line 2999 padding padding padding padding")
    cid = ok(berthd.docker("inspect", "-f", "{{.Id}}", "gz")).stdout.strip()
    files = sorted(p.name for p in (berthd.data_root / "containers" / cid).glob(f"{cid}-json.log*"))
    assert files == [f"{cid}-json.log", f"{cid}-json.log.1.gz", f"{cid}-json.log.2.gz", f"{cid}-json.log.3.gz"]
    everything = lines(berthd, "gz")
    first = int(everything[0].split()[1])
    assert everything == [f"line {i} padding padding padding padding" for i in range(first, 3000)]
    assert 3000 - first > 200  # four files of 8 KiB (of ~110-byte records) are kept, not one
    tail = lines(berthd, "--tail", "200", "gz")  # across the current file and gzipped ones
    assert tail == everything[-200:]
    assert lines(berthd, "-t", "--tail", "3", "gz")[-1].endswith("line 2999 padding padding padding padding")


def test_follow_across_compressed_rotations(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("run", "-d", "--name", "fl", "--log-opt", "max-size=4k", "--log-opt", "max-file=3",
                     "--log-opt", "compress=true", busybox_image, "sh", "-c",
                     "sleep 1; i=0; while [ $i -lt 400 ]; do echo \"line $i padding padding padding\"; "
                     "i=$((i+1)); [ $((i % 20)) = 0 ] && sleep 0.05; done"))
    r = ok(berthd.docker("logs", "-f", "fl", timeout=60))
    got = r.stdout.splitlines()
    assert got == [f"line {i} padding padding padding" for i in range(400)]


def test_local_driver(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("run", "-d", "--name", "loc", "--log-driver", "local", "--log-opt", "max-size=8k",
                     busybox_image, "sh", "-c", SPEW.format(n=3000, after="sleep 1; echo err >&2; sleep 300")))
    harness.eventually(lambda: berthd.docker("logs", "--tail", "1", "loc").stderr.strip() == "err", timeout=30)
    cid = ok(berthd.docker("inspect", "-f", "{{.Id}}", "loc")).stdout.strip()
    assert ok(berthd.docker("inspect", "-f", "{{.LogPath}}", "loc")).stdout.strip() == ""  # as dockerd
    assert log_config(berthd, "loc") == {"Type": "local", "Config": {"max-size": "8k"}}
    files = sorted(p.name for p in (berthd.data_root / "containers" / cid / "local-logs").iterdir())
    assert files == ["container.log"] + [f"container.log.{i}.gz" for i in range(1, 5)]  # 5 files, compressed
    out = lines(berthd, "loc")
    assert out[-1] == "line 2999 padding padding padding padding"
    assert ok(berthd.docker("logs", "--tail", "1", "loc")).stderr == "err\n"
    r = berthd.docker("run", "--rm", "--log-driver", "local", "--log-opt", "labels=x", busybox_image, "true")
    assert r.returncode == 125 and "unknown log opt 'labels' for log driver local" in r.stderr


def test_daemon_wide_defaults(berthd_factory: object, busybox_tar: Path, tmp_path: Path) -> None:
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps({"log-driver": "local", "log-opts": {"max-size": "8k", "max-file": "2"}}))
    d = berthd_factory(extra_args=("--config-file", str(config)))  # type: ignore[operator]
    d.import_image(busybox_tar)
    assert ok(d.docker("info", "-f", "{{.LoggingDriver}}")).stdout.strip() == "local"
    ok(d.docker("run", "-d", "--name", "dflt", "busybox", "sh", "-c", SPEW.format(n=2000, after="sleep 300")))
    ok(d.docker("create", "--name", "own", "--log-opt", "max-file=3", "busybox", "true"))
    ok(d.docker("create", "--name", "other", "--log-driver", "json-file", "busybox", "true"))
    assert log_config(d, "dflt") == {"Type": "local", "Config": {"max-file": "2", "max-size": "8k"}}
    assert log_config(d, "own") == {"Type": "local", "Config": {"max-file": "3", "max-size": "8k"}}
    assert log_config(d, "other") == {"Type": "json-file", "Config": {}}  # another driver: none of its options
    wait_logged(d, "dflt", "line 1999 padding padding padding padding")
    cid = ok(d.docker("inspect", "-f", "{{.Id}}", "dflt")).stdout.strip()
    assert sorted(p.name for p in (d.data_root / "containers" / cid / "local-logs").iterdir()) == [
        "container.log", "container.log.1.gz"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"log-opts": {"max-size": "lots"}}))
    r = subprocess.run([str(harness.REPO / ".venv/bin/berthd"), "--config-file", str(bad), "--data-root",
                        str(tmp_path / "x"), "--exec-root", str(tmp_path / "y")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0 and "invalid size: 'lots'" in r.stderr


# (json-file options given alone would meet berth's default max-size/max-file: not compared)
BAD_OPTS = [
    ("--log-driver", "local", "--log-opt", "bogus=1"),
    ("--log-opt", "compress=maybe", "--log-opt", "max-size=1m"),
    ("--log-opt", "compress=true", "--log-opt", "max-size=1m", "--log-opt", "max-file=1"),
    ("--log-opt", "max-size=ten"),
    ("--log-opt", "max-size=1m", "--log-opt", "max-file=0"),
]


@pytest.mark.conformance
def test_log_option_errors_match_dockerd(berthd: harness.Berthd, dockerd: harness.Dockerd, busybox_tar: Path) -> None:
    got = {}
    for d in (berthd, dockerd):
        d.import_image(busybox_tar)
        results = []
        for opts in BAD_OPTS:
            r = d.docker("run", "--rm", "--network", "none", *opts, "busybox", "true")
            results.append((opts, r.returncode, r.stderr.splitlines()[0] if r.stderr else ""))
        got[d.__class__.__name__] = results
    assert got["Berthd"] == got["Dockerd"]
