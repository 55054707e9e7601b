"""Restart policies (`--restart`): dockerd's back-off, RestartCount, stop/kill/start, `docker
update --restart`, and the policies applied again when berthd starts; side by side with dockerd."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

import harness

pytestmark = pytest.mark.integration


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
    return r


def state(d: harness.Daemon, name: str) -> dict[str, Any]:
    out = ok(d.docker("inspect", "-f", "{{json .State}}|{{.RestartCount}}", name)).stdout.strip()
    st, count = out.rsplit("|", 1)
    return dict(json.loads(st), RestartCount=int(count))


def events(d: harness.Daemon, name: str, since: float) -> list[tuple[str, float]]:
    status, _ = d.api("GET", "/_ping")
    assert status == 200
    conn = harness.UnixHTTPConnection(d.sock, timeout=30)
    filters = urllib.parse.quote(json.dumps({"container": [name]}))
    conn.request("GET", f"/v1.41/events?since={since:.3f}&until={time.time():.3f}&filters={filters}")
    lines = conn.getresponse().read().decode().splitlines()
    conn.close()
    return [(e["Action"], e["timeNano"] / 1e9) for e in map(json.loads, lines)]


def test_bad_restart_policies_are_400(berthd: harness.Berthd, busybox_image: str) -> None:
    cases = [
        ({"Name": "on-failure", "MaximumRetryCount": -1}, "maximum retry count cannot be negative"),
        ({"Name": "always", "MaximumRetryCount": 3}, "maximum retry count cannot be used with restart policy 'always'"),
        ({"Name": "unless-stopped", "MaximumRetryCount": 1},
         "maximum retry count cannot be used with restart policy 'unless-stopped'"),
        ({"Name": "bogus"}, "invalid restart policy 'bogus'"),
    ]
    for policy, text in cases:
        status, body = berthd.api("POST", "/containers/create", {"Image": busybox_image, "Cmd": ["true"],
                                                                  "HostConfig": {"RestartPolicy": policy}})
        assert (status, body["message"]) == (400, text)
    r = berthd.docker("create", "--restart", "on-failure:-2", busybox_image, "true")
    assert r.returncode == 1 and "maximum retry count cannot be negative" in r.stderr
    ok(berthd.docker("create", "--name", "up1", busybox_image, "true"))
    r = berthd.docker("update", "--restart", "always:2", "up1")
    assert r.returncode == 1 and "maximum retry count cannot be used with restart policy 'always'" in r.stderr
    status, body = berthd.api("POST", "/containers/create", {
        "Image": busybox_image, "Cmd": ["true"], "HostConfig": {"AutoRemove": True, "RestartPolicy": {"Name": "always"}}})
    assert status == 400 and "AutoRemove" in body["message"]


def test_on_failure_backoff_and_count(berthd: harness.Berthd, busybox_image: str) -> None:
    since = time.time()
    ok(berthd.docker("run", "-d", "--name", "of", "--restart", "on-failure:3", busybox_image, "sh", "-c", "exit 3"))
    harness.eventually(lambda: state(berthd, "of")["Status"] == "exited" and state(berthd, "of")["RestartCount"] == 3)
    st = state(berthd, "of")
    assert (st["ExitCode"], st["Restarting"], st["Running"]) == (3, False, False)
    seen = events(berthd, "of", since)
    actions = [a for a, _ in seen if a in ("start", "die")]
    assert actions == ["start", "die"] * 4
    # the back-off: 100 ms, then doubled (200, 400) between an exit and the policy's start
    gaps = [t2 - t1 for (a1, t1), (a2, t2) in zip(seen, seen[1:], strict=False) if a1 == "die" and a2 == "start"]
    assert len(gaps) == 3
    for gap, want in zip(gaps, (0.1, 0.2, 0.4), strict=True):
        assert want <= gap < want + 0.5, gaps
    # a user's start begins afresh: RestartCount 0 again
    ok(berthd.docker("start", "of"))
    harness.eventually(lambda: state(berthd, "of")["RestartCount"] >= 1)
    harness.eventually(lambda: state(berthd, "of")["Status"] == "exited")
    assert state(berthd, "of")["RestartCount"] == 3


def test_always_stop_kill_and_restarting_state(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("run", "-d", "--name", "al", "--restart", "always", busybox_image, "sh", "-c", "sleep 0.3"))
    harness.eventually(lambda: state(berthd, "al")["RestartCount"] >= 2, timeout=20)
    # restarting: in ps without -a, Running and Restarting in inspect, `Restarting (0) ...`
    def restarting() -> bool:
        return "Restarting (0)" in ok(berthd.docker("ps", "--format", "{{.Names}} {{.Status}}")).stdout
    harness.eventually(restarting, timeout=20, interval=0.01)
    r = berthd.docker("rm", "al")
    assert r.returncode == 1 and ("You cannot remove a restarting container" in r.stderr
                                  or "You cannot remove a running container" in r.stderr)
    ok(berthd.docker("stop", "al"))
    count = state(berthd, "al")["RestartCount"]
    time.sleep(1.5)
    st = state(berthd, "al")
    assert (st["Status"], st["RestartCount"]) == ("exited", count)
    ok(berthd.docker("start", "al"))
    assert state(berthd, "al")["RestartCount"] == 0
    ok(berthd.docker("kill", "al"))
    harness.eventually(lambda: state(berthd, "al")["Status"] == "exited", timeout=20)
    time.sleep(1)  # and it stays so: a killed container is not restarted
    assert state(berthd, "al")["Status"] == "exited"
    # `docker update --restart` applies at the next exit of the running container
    ok(berthd.docker("run", "-d", "--name", "upd", busybox_image, "sh", "-c", "sleep 1; exit 2"))
    ok(berthd.docker("update", "--restart", "on-failure:1", "upd"))
    harness.eventually(lambda: state(berthd, "upd")["RestartCount"] == 1, timeout=20)
    harness.eventually(lambda: state(berthd, "upd")["Status"] == "exited", timeout=20)


def test_policies_apply_when_berthd_starts(berthd: harness.Berthd, busybox_image: str) -> None:
    """dockerd's rules at start-up: always comes back even when stopped by hand, unless-stopped
    only if it was not, on-failure after a failure under its count, no never."""
    run = ("run", "-d", "--network", "none")
    ok(berthd.docker(*run, "--name", "always-stopped", "--restart", "always", busybox_image, "sleep", "300"))
    ok(berthd.docker(*run, "--name", "unless-stopped", "--restart", "unless-stopped", busybox_image, "sleep", "300"))
    ok(berthd.docker(*run, "--name", "unless-exited", "--restart", "unless-stopped", busybox_image, "sleep", "300"))
    ok(berthd.docker(*run, "--name", "failed", "--restart", "on-failure:5", busybox_image, "sleep", "300"))
    ok(berthd.docker(*run, "--name", "no-policy", busybox_image, "sleep", "300"))
    ok(berthd.docker("stop", "-t", "0", "always-stopped", "unless-stopped"))
    berthd.stop()
    # while berthd is away, the three running containers end (their inits killed from outside)
    sleepers = [pid for pid in harness.pids_in_cgroup(berthd.cgroup_parent)
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep")]
    assert len(sleepers) == 3
    harness.kill_and_wait(sleepers)
    berthd.start()

    def statuses() -> dict[str, str]:
        out = ok(berthd.docker("ps", "-a", "--format", "{{.Names}} {{.State}}")).stdout.split()
        return dict(zip(out[::2], out[1::2], strict=True))

    want = {"always-stopped": "running", "unless-stopped": "exited", "unless-exited": "running",
            "failed": "running", "no-policy": "exited"}
    harness.eventually(lambda: statuses() == want, timeout=20)
    assert state(berthd, "always-stopped")["RestartCount"] == 0


@pytest.mark.conformance
def test_restart_policies_match_dockerd(berthd: harness.Berthd, dockerd: harness.Dockerd, busybox_tar: Path) -> None:
    got = {}
    for d in (berthd, dockerd):
        d.import_image(busybox_tar)
        since = time.time()
        ok(d.docker("run", "-d", "--name", "of", "--network", "none", "--restart", "on-failure:2", "busybox", "sh",
                    "-c", "exit 1"))
        harness.eventually(lambda d=d: state(d, "of")["Status"] == "exited" and state(d, "of")["RestartCount"] == 2)
        ok(d.docker("run", "-d", "--name", "al", "--network", "none", "--restart", "always", "busybox", "sh", "-c",
                    "sleep 0.5; exit 4"))
        harness.eventually(lambda d=d: state(d, "al")["RestartCount"] >= 1)
        ok(d.docker("stop", "al"))
        time.sleep(1)
        results: list[Any] = []
        for name in ("of", "al"):
            st = state(d, name)
            results.append({k: st[k] for k in ("Status", "Running", "Restarting", "ExitCode", "Pid")})
        results.append(state(d, "of")["RestartCount"])
        results.append([a for a, _ in events(d, "of", since) if a in ("create", "start", "die")])
        results.append(ok(d.docker("ps", "--format", "{{.Names}}")).stdout)
        got[d.__class__.__name__] = results
    assert got["Berthd"] == got["Dockerd"]
