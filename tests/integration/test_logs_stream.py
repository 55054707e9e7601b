"""`docker logs` of a big log: the daemon stays responsive while it streams, the bytes are exact,
and tail/since/-f keep working on the same container."""

from __future__ import annotations

import json
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

import harness
from berth.container.logs import encode_record

pytestmark = pytest.mark.integration

BASE = 1_795_840_368_000_000_000


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
    return r


def write_big_log(path: Path, size: int) -> tuple[bytes, bytes]:
    """A json-file log of about `size` bytes (stdout lines, every tenth on stderr, some with
    escapes); returns the stdout and stderr payloads it holds, in order."""
    out, err, records = [], [], []
    total, i = 0, 0
    while total < size:
        line = b"%08d <tab>\t \"quoted\" lorem ipsum dolor sit amet %s\n" % (i, b"x" * (i % 50))
        stream = "stderr" if i % 10 == 0 else "stdout"
        (err if stream == "stderr" else out).append(line)
        rec = encode_record(stream, line, BASE + i * 1000)
        records.append(rec)
        total += len(rec)
        i += 1
    path.write_bytes(b"".join(records))
    return b"".join(out), b"".join(err)


def demux(data: bytes) -> tuple[bytes, bytes]:
    streams: dict[int, list[bytes]] = {1: [], 2: []}
    i = 0
    while i < len(data):
        kind, size = struct.unpack(">BxxxI", data[i : i + 8])
        streams[kind].append(data[i + 8 : i + 8 + size])
        i += 8 + size
    assert i == len(data), "the stream ends inside a frame"
    return b"".join(streams[1]), b"".join(streams[2])


class Reader:
    """A raw `GET /containers/big/logs` client in a thread, pausing `pause` s per 64 KiB."""

    def __init__(self, sock: str, pause: float) -> None:
        self.sock, self.pause = sock, pause
        self.received: list[bytes] = []
        self.failure: list[BaseException] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        conn = harness.UnixHTTPConnection(self.sock, timeout=120)
        try:
            conn.request("GET", "/v1.45/containers/big/logs?stdout=1&stderr=1")
            resp = conn.getresponse()
            assert resp.status == 200, resp.read()
            while chunk := resp.read(64 * 1024):
                self.received.append(chunk)
                if self.pause:
                    time.sleep(self.pause)
        except BaseException as exc:  # reported by the test's thread
            self.failure.append(exc)
        finally:
            conn.close()
            self.done.set()


def test_big_log_streams_without_starving_the_daemon(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("run", "--name", "big", "--network", "none", busybox_image, "true"))
    log_path = Path(json.loads(ok(berthd.docker("inspect", "big")).stdout)[0]["LogPath"])
    want_out, want_err = write_big_log(log_path, 40 << 20)

    # two clients at once: one that takes the bytes as fast as it can (what starved the loop:
    # a socket with room never makes the writer wait) and one that reads 64 KiB every 4 ms
    # (slower than the daemon sends: back-pressure)
    readers = [Reader(berthd.sock, pause=0.0), Reader(berthd.sock, pause=0.004)]
    for r in readers:
        r.thread.start()
    while not any(r.received for r in readers) and not all(r.done.is_set() for r in readers):
        time.sleep(0.005)
    pings, ps = [], []
    while not all(r.done.is_set() for r in readers):
        t0 = time.monotonic()
        assert harness.ping(berthd.sock, timeout=60)
        pings.append(time.monotonic() - t0)
        t0 = time.monotonic()
        listed = ok(berthd.docker("ps", "-a", "--format", "{{.Names}}", timeout=120))
        ps.append(time.monotonic() - t0)
        assert listed.stdout.split() == ["big"]
    for r in readers:
        r.thread.join(120)
        assert not r.failure, r.failure
    # checked while the streams were under way (the slow one lasts a few seconds)
    assert len(pings) >= 2, "the streams ended before the daemon could be checked"
    assert max(pings) < 2 and max(ps) < 2, f"_ping took up to {max(pings):.2f} s, ps {max(ps):.2f} s"
    for r in readers:
        got_out, got_err = demux(b"".join(r.received))
        assert got_out == want_out and got_err == want_err

    # the same container's log through the CLI: tail, since/until, timestamps, stream choice
    last = want_out.splitlines(keepends=True)[-3:]
    assert ok(berthd.docker("logs", "--tail", "3", "big", timeout=60)).stdout.encode() == b"".join(last)
    since = f"{(BASE + 1000 * 1000) // 10**9}.{(BASE + 1000 * 1000) % 10**9:09d}"
    until = f"{(BASE + 1003 * 1000) // 10**9}.{(BASE + 1003 * 1000) % 10**9:09d}"
    r = ok(berthd.docker("logs", "-t", "--since", since, "--until", until, "big"))
    lines = r.stdout.splitlines() + r.stderr.splitlines()
    assert sorted(ln.split()[1] for ln in lines) == ["00001000", "00001001", "00001002", "00001003"]
    assert lines[0].startswith("2026-11-28T04:32:48.00100")
    r = subprocess.run(["docker", "logs", "big"], env=berthd.env, capture_output=True, timeout=120)
    assert r.returncode == 0 and r.stdout == want_out and r.stderr == want_err


def test_logs_follow_a_running_container(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("run", "-d", "--name", "ticker", "--network", "none", busybox_image,
                     "sh", "-c", "i=0; while [ $i -lt 5 ]; do echo tick $i; i=$((i+1)); sleep 0.2; done"))
    r = ok(berthd.docker("logs", "-f", "ticker", timeout=30))
    assert r.stdout.splitlines() == [f"tick {i}" for i in range(5)]
    assert ok(berthd.docker("logs", "-f", "--tail", "2", "ticker")).stdout == "tick 3\ntick 4\n"


def test_log_opts_rotate_and_are_checked(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("run", "--name", "rot", "--network", "none", "--log-opt", "max-size=2k", "--log-opt",
                     "max-file=3", busybox_image, "sh", "-c", "i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); done"))
    log_path = Path(json.loads(ok(berthd.docker("inspect", "rot")).stdout)[0]["LogPath"])
    files = sorted(p.name for p in log_path.parent.glob(log_path.name + "*"))
    assert files == [log_path.name, log_path.name + ".1", log_path.name + ".2"]
    assert all(p.stat().st_size <= 2048 for p in log_path.parent.glob(log_path.name + "*"))
    lines = ok(berthd.docker("logs", "rot")).stdout.splitlines()
    assert lines[-1] == "line 299" and 0 < len(lines) < 300  # the oldest were rotated away
    assert lines == [f"line {i}" for i in range(300 - len(lines), 300)]
    r = berthd.docker("run", "--rm", "--log-opt", "max-file=0", busybox_image, "true")
    assert r.returncode == 125 and "max-file cannot be less than 1" in r.stderr
    r = berthd.docker("run", "--rm", "--log-opt", "colour=blue", busybox_image, "true")
    assert r.returncode == 125 and "unknown log opt 'colour' for json-file log driver" in r.stderr
