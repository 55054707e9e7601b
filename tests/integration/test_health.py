"""Health checks (image HEALTHCHECK, --health-*, --no-healthcheck: status in inspect, ps and
--filter health=, health_status events) and --stop-signal / --stop-timeout, side by side with
dockerd where the outcome does not depend on timing."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import harness

pytestmark = pytest.mark.integration


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
    return r


def health(d: harness.Daemon, name: str) -> dict[str, Any] | None:
    out = ok(d.docker("inspect", "-f", "{{json .State.Health}}", name)).stdout.strip()
    return None if out == "null" else json.loads(out)  # type: ignore[no-any-return]


def names(d: harness.Daemon, *filters: str) -> list[str]:
    args = [a for f in filters for a in ("--filter", f)]
    return sorted(ok(d.docker("ps", "-a", *args, "--format", "{{.Names}}")).stdout.split())


def events(d: harness.Daemon, name: str) -> list[str]:
    r = ok(d.docker("events", "--since", "0", "--until", f"{time.time():.3f}", "--filter", f"container={name}",
                    "--format", "{{.Action}}"))
    return r.stdout.splitlines()


RUN = ("run", "-d", "--network", "none")


def test_health_states_events_and_filters(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker(*RUN, "--name", "good", "--health-cmd", "echo probing; exit 0", "--health-interval", "300ms",
                     busybox_image, "sleep", "300"))
    ok(berthd.docker(*RUN, "--name", "bad", "--health-cmd", "echo bad >&2; exit 1", "--health-interval", "300ms",
                     "--health-retries", "2", busybox_image, "sleep", "300"))
    ok(berthd.docker(*RUN, "--name", "slow", "--health-cmd", "sleep 5", "--health-interval", "300ms",
                     "--health-timeout", "200ms", "--health-retries", "1", busybox_image, "sleep", "300"))
    ok(berthd.docker(*RUN, "--name", "late", "--health-cmd", "exit 1", "--health-interval", "300ms",
                     "--health-start-period", "60s", busybox_image, "sleep", "300"))
    ok(berthd.docker(*RUN, "--name", "plain", busybox_image, "sleep", "300"))
    ok(berthd.docker(*RUN, "--name", "waiting", "--health-cmd", "true", "--health-interval", "60s", busybox_image,
                     "sleep", "300"))
    assert health(berthd, "waiting") == {"Status": "starting", "FailingStreak": 0, "Log": []}
    assert "(health: starting)" in ok(berthd.docker("ps", "--filter", "name=waiting", "--format", "{{.Status}}")).stdout
    harness.eventually(lambda: names(berthd, "health=healthy") == ["good"], timeout=20)
    harness.eventually(lambda: names(berthd, "health=unhealthy") == ["bad", "slow"], timeout=20)
    assert names(berthd, "health=none") == ["plain"]
    assert names(berthd, "health=starting") == ["late", "waiting"]  # failures in the start period do not count
    assert health(berthd, "late")["FailingStreak"] == 0  # type: ignore[index]
    good, bad, slow = health(berthd, "good"), health(berthd, "bad"), health(berthd, "slow")
    assert good and bad and slow
    assert good["Log"][-1]["Output"] == "probing\n" and good["Log"][-1]["ExitCode"] == 0
    assert set(good["Log"][-1]) == {"Start", "End", "ExitCode", "Output"}
    assert bad["Log"][-1] == dict(bad["Log"][-1], ExitCode=1, Output="bad\n") and bad["FailingStreak"] >= 2
    assert slow["Log"][-1]["ExitCode"] == -1
    assert slow["Log"][-1]["Output"] == "Health check exceeded timeout (200ms)"
    harness.eventually(lambda: len(health(berthd, "good")["Log"]) == 5, timeout=20)  # type: ignore[index]
    statuses = ok(berthd.docker("ps", "--format", "{{.Names}} {{.Status}}")).stdout
    assert "(healthy)" in statuses and "(unhealthy)" in statuses
    r = berthd.docker("ps", "--filter", "health=bogus")
    assert r.returncode == 1 and "Unrecognised filter value for health: bogus" in r.stderr
    seen = events(berthd, "bad")
    assert "health_status: unhealthy" in seen
    assert "exec_create: /bin/sh -c echo bad >&2; exit 1" in seen and "exec_die" in seen
    assert "health_status: healthy" in events(berthd, "good")
    # the probe that timed out was killed: no sleep 5 left in the container
    harness.eventually(lambda: "sleep 5" not in ok(berthd.docker("top", "slow")).stdout, timeout=10)
    # stopped: the check ends, and the status says unhealthy (dockerd's rule)
    ok(berthd.docker("stop", "-t", "0", "good"))
    assert health(berthd, "good")["Status"] == "unhealthy"  # type: ignore[index]
    ok(berthd.docker("start", "good"))
    assert health(berthd, "good")["Status"] == "starting"  # type: ignore[index]
    harness.eventually(lambda: health(berthd, "good")["Status"] == "healthy", timeout=20)  # type: ignore[index]


def test_image_healthcheck_and_overrides(berthd: harness.Berthd, busybox_tar: Path) -> None:
    berthd.import_image(busybox_tar)
    ok(berthd.docker("import", "-c", 'HEALTHCHECK --interval=300ms --retries=1 CMD ["false"]', "-c", 'CMD ["sh"]',
                     str(busybox_tar), "checked:1"))
    ok(berthd.docker(*RUN, "--name", "inherits", "checked:1", "sleep", "300"))
    ok(berthd.docker(*RUN, "--name", "disabled", "--no-healthcheck", "checked:1", "sleep", "300"))
    ok(berthd.docker(*RUN, "--name", "own-cmd", "--health-cmd", "true", "checked:1", "sleep", "300"))
    config = json.loads(ok(berthd.docker("inspect", "-f", "{{json .Config.Healthcheck}}", "inherits")).stdout)
    assert config["Test"] == ["CMD", "false"] and config["Interval"] == 300_000_000 and config["Retries"] == 1
    assert json.loads(ok(berthd.docker("inspect", "-f", "{{json .Config.Healthcheck}}", "disabled")).stdout) == {
        "Test": ["NONE"], "Interval": 300_000_000, "Retries": 1}  # as dockerd merges it
    harness.eventually(lambda: names(berthd, "health=unhealthy") == ["inherits"], timeout=20)
    harness.eventually(lambda: names(berthd, "health=healthy") == ["own-cmd"], timeout=20)  # the image's interval
    assert health(berthd, "disabled") is None and "disabled" in names(berthd, "health=none")


def test_healthcheck_survives_a_daemon_restart(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker(*RUN, "--name", "hc", "--health-cmd", "true", "--health-interval", "300ms", busybox_image,
                     "sleep", "300"))
    harness.eventually(lambda: health(berthd, "hc")["Status"] == "healthy", timeout=20)  # type: ignore[index]
    berthd.restart()
    assert health(berthd, "hc")["Status"] == "starting"  # type: ignore[index]
    harness.eventually(lambda: health(berthd, "hc")["Status"] == "healthy", timeout=20)  # type: ignore[index]


TRAP = "trap 'echo got-$0; exit 7' USR1; trap 'echo got-TERM; exit 8' TERM; echo ready; while true; do sleep 0.1; done"


@pytest.mark.conformance
def test_stop_signal_timeout_and_health_match_dockerd(
    berthd: harness.Berthd, dockerd: harness.Dockerd, busybox_tar: Path
) -> None:
    got: dict[str, list[Any]] = {}
    for d in (berthd, dockerd):
        d.import_image(busybox_tar)
        ok(d.docker(*RUN, "--name", "sig", "--stop-signal", "USR1", "busybox", "sh", "-c", TRAP))
        ok(d.docker(*RUN, "--name", "term", "busybox", "sh", "-c", TRAP))
        ok(d.docker(*RUN, "--name", "deaf", "--stop-timeout", "1", "busybox", "sh", "-c",
                    "trap '' TERM; echo ready; while true; do sleep 0.1; done"))
        ok(d.docker(*RUN, "--name", "hbad", "--health-cmd", "exit 3", "--health-interval", "300ms",
                    "--health-retries", "1", "busybox", "sleep", "300"))
        for name in ("sig", "term", "deaf"):
            harness.eventually(lambda d=d, name=name: "ready" in d.docker("logs", name).stdout)
        started = time.monotonic()
        ok(d.docker("stop", "deaf"))
        took = time.monotonic() - started
        ok(d.docker("stop", "sig", "term"))
        harness.eventually(lambda d=d: health(d, "hbad")["Status"] == "unhealthy", timeout=20)  # type: ignore[index]
        results: list[Any] = [1 <= took < 5]
        for name in ("sig", "term", "deaf"):
            results.append(ok(d.docker("inspect", "-f", "{{.State.ExitCode}} {{.Config.StopSignal}} "
                                       "{{.Config.StopTimeout}}", name)).stdout)
            results.append(ok(d.docker("logs", name)).stdout)
        h = health(d, "hbad")
        assert h is not None
        results += [h["Status"], h["FailingStreak"] >= 1, sorted(h["Log"][-1]), h["Log"][-1]["ExitCode"],
                    ok(d.docker("inspect", "-f", "{{json .Config.Healthcheck}}", "hbad")).stdout,
                    names(d, "health=unhealthy"), names(d, "health=none"),
                    "health_status: unhealthy" in events(d, "hbad")]
        got[d.__class__.__name__] = results
    assert got["Berthd"] == got["Dockerd"]
