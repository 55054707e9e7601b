"""The real docker CLI (v28) against a real berthd: the acceptance scenarios of the foundation.

Each test gets its own daemon on private roots (the `berthd` fixture) with busybox imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

import harness

pytestmark = pytest.mark.integration


PIDS_EXIT = 2  # busybox sh, when fork fails: "can't fork"

def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
    return r


def test_version_and_info(berthd: harness.Berthd) -> None:
    v = json.loads(ok(berthd.docker("version", "--format", "{{json .Server}}")).stdout)
    assert v["ApiVersion"] >= "1.44" and v["Os"] == "linux"
    info = ok(berthd.docker("info", "--format", "{{json .}}")).stdout
    data = json.loads(info)
    assert data["DockerRootDir"] == str(berthd.data_root)
    assert data["Driver"] in ("overlay2", "vfs")
    assert data["LoggingDriver"] == "json-file"


def test_run_rm_echo_output_and_exit_codes(berthd: harness.Berthd, busybox_image: str) -> None:
    r = ok(berthd.docker("run", "--rm", busybox_image, "echo", "hi"))
    assert r.stdout == "hi\n"
    assert berthd.docker("run", "--rm", busybox_image, "sh", "-c", "exit 1").returncode == 1
    r = berthd.docker("run", "--rm", busybox_image, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    # 127: the command does not exist, with Docker's text
    r = berthd.docker("run", "--rm", busybox_image, "/no/such/binary")
    assert r.returncode == 127, r.stderr
    assert "no such file or directory" in r.stderr
    # 126: not executable (a directory)
    r = berthd.docker("run", "--rm", busybox_image, "/etc")
    assert r.returncode == 126, r.stderr
    # 137: killed by SIGKILL (not the container's pid 1 itself: pid 1 ignores signals it has no
    # handler for, in Docker too; so the killed process's status is passed on by the shell)
    assert (
        berthd.docker("run", "--rm", busybox_image, "sh", "-c", "sleep 10 & kill -9 $!; wait $!").returncode
        == 137
    )
    cid = ok(berthd.docker("run", "-d", busybox_image, "sleep", "100")).stdout.strip()
    ok(berthd.docker("kill", cid))
    assert ok(berthd.docker("wait", cid)).stdout.strip() == "137"
    ok(berthd.docker("rm", cid))
    # 125: a daemon-side error (no such image)
    r = berthd.docker("run", "--rm", "nosuchimage:1", "true")
    assert r.returncode == 125
    # nothing left behind by --rm
    assert ok(berthd.docker("ps", "-aq")).stdout == ""


def test_run_i_passes_stdin(berthd: harness.Berthd, busybox_image: str) -> None:
    r = ok(berthd.docker("run", "-i", "--rm", busybox_image, "cat", input="line1\nline2\n"))
    assert r.stdout == "line1\nline2\n"


def test_run_it_with_a_pty(berthd: harness.Berthd, busybox_image: str) -> None:
    status, out = harness.pty_run(
        [
            "docker",
            "run",
            "-it",
            "--rm",
            busybox_image,
            "sh",
            "-c",
            "tty; stty size; read x; echo got-$x; exit 4",
        ],
        berthd.env,
        b"hello\r",
    )
    assert status == 4, out
    assert b"got-hello" in out
    assert b"/dev/pts/0\r\n" in out, out  # the container's own devpts, as with runc
    assert b"30 100" in out, out


def test_detached_logs_exec_stop_rm(berthd: harness.Berthd, busybox_image: str) -> None:
    cid = ok(
        berthd.docker(
            "run",
            "-d",
            "--name",
            "web",
            "-e",
            "FOO=bar",
            "-l",
            "app=test",
            "-w",
            "/tmp",
            busybox_image,
            "sh",
            "-c",
            "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done",
        )
    ).stdout.strip()
    assert len(cid) == 64

    def first_two() -> list[str]:
        return ok(berthd.docker("logs", "web")).stdout.splitlines()[:2]

    harness.eventually(lambda: len(first_two()) == 2, timeout=30)
    assert first_two() == ["line 0", "line 1"]
    tail = ok(berthd.docker("logs", "--tail", "1", "-t", "web")).stdout.splitlines()
    assert len(tail) == 1 and tail[0].split(" ", 1)[1].startswith("line ")
    # logs -f follows until the container stops
    follower = subprocess.Popen(
        ["docker", "logs", "-f", "web"],
        env=berthd.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    r = ok(
        berthd.docker(
            "exec",
            "-e",
            "X=1",
            "web",
            "sh",
            "-c",
            "echo $FOO-$X; pwd; echo e >&2; exit 7".replace("exit 7", "true"),
        )
    )
    assert r.stdout == "bar-1\n/tmp\n" and r.stderr == "e\n"
    assert berthd.docker("exec", "web", "sh", "-c", "exit 7").returncode == 7
    r = berthd.docker("exec", "web", "/no/such/binary")
    assert r.returncode == 126, (r.returncode, r.stderr)  # dockerd: the runtime's exec failed
    assert berthd.docker("exec", "-u", "1000:1000", "web", "id", "-u").stdout.strip() == "1000"
    status, out = harness.pty_run(
        ["docker", "exec", "-it", "web", "sh", "-c", "tty; read y; echo got-$y"],
        berthd.env,
        b"abc\r",
    )
    assert status == 0 and b"/dev/pts/" in out and b"got-abc" in out, out
    t0 = time.monotonic()
    ok(berthd.docker("stop", "-t", "1", "web"))
    assert time.monotonic() - t0 < 8
    follower_out, _ = follower.communicate(timeout=20)
    assert follower.returncode == 0
    assert "line 0" in follower_out and len(follower_out.splitlines()) >= 5
    state = json.loads(ok(berthd.docker("inspect", "web")).stdout)[0]["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 137  # sh ignores SIGTERM as pid 1
    ok(berthd.docker("rm", "web"))
    assert berthd.docker("inspect", "web").returncode == 1


def test_ps_filters_inspect_rename(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("run", "-d", "--name", "a1", "-l", "tier=web", busybox_image, "sleep", "100"))
    assert (
        berthd.docker("run", "--name", "a2", "-l", "tier=db", busybox_image, "sh", "-c", "exit 2").returncode
        == 2
    )
    ok(berthd.docker("create", "--name", "a3", busybox_image, "true"))
    names = lambda *a: sorted(ok(berthd.docker("ps", *a, "--format", "{{.Names}}")).stdout.split())  # noqa: E731
    assert names() == ["a1"]
    assert names("-a") == ["a1", "a2", "a3"]
    assert names("-a", "--filter", "status=exited") == ["a2"]
    assert names("-a", "--filter", "exited=2") == ["a2"]
    assert names("-a", "--filter", "status=created") == ["a3"]
    assert names("-a", "--filter", "label=tier=db") == ["a2"]
    assert names("-a", "--filter", "label=tier") == ["a1", "a2"]
    assert names("-a", "--filter", "name=a3") == ["a3"]
    assert names("-a", "--filter", f"ancestor={busybox_image}") == ["a1", "a2", "a3"]
    assert names("-n", "1") == ["a3"] and names("-l") == ["a3"]
    ids = ok(berthd.docker("ps", "-aq")).stdout.split()
    assert len(ids) == 3 and all(len(i) == 12 for i in ids)
    assert names("-a", "--filter", f"id={ids[0]}") and len(names("-a", "--filter", f"id={ids[0]}")) == 1
    table = ok(berthd.docker("ps")).stdout.splitlines()
    assert table[0].split()[:3] == ["CONTAINER", "ID", "IMAGE"] and "Up " in table[1]
    assert (
        ok(berthd.docker("inspect", "-f", "{{.State.Status}} {{.Config.Labels.tier}}", "a1")).stdout
        == "running web\n"
    )
    log_type = ok(berthd.docker("inspect", "-f", "{{.HostConfig.LogConfig.Type}}", "a1")).stdout
    assert log_type == "json-file\n"
    ok(berthd.docker("rename", "a3", "a4"))
    assert names("-a", "--filter", "status=created") == ["a4"]
    r = berthd.docker("rm", "a1")
    assert r.returncode == 1 and "cannot remove a running container" in r.stderr
    ok(berthd.docker("rm", "-f", "a1"))


def test_pause_unpause_wait_kill_restart(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(
        berthd.docker(
            "run",
            "-d",
            "--name",
            "pz",
            busybox_image,
            "sh",
            "-c",
            "trap 'exit 42' USR1; while true; do date +%s%N; sleep 0.1; done",
        )
    )

    def lines() -> int:
        return len(ok(berthd.docker("logs", "pz")).stdout.splitlines())

    harness.eventually(lambda: lines() >= 2, timeout=30)
    ok(berthd.docker("pause", "pz"))
    assert ok(berthd.docker("inspect", "-f", "{{.State.Status}}", "pz")).stdout.strip() == "paused"

    def settled() -> int:  # lines written just before the freeze may still be on their way to the log
        first = lines()
        time.sleep(0.3)
        return first if lines() == first else 0

    n1 = harness.eventually(settled, timeout=10)
    time.sleep(0.6)
    n2 = lines()
    assert n1 == n2, "a paused container kept writing"
    ok(berthd.docker("unpause", "pz"))
    harness.eventually(lambda: lines() > n2, timeout=30)
    ok(berthd.docker("restart", "-t", "1", "pz"))
    assert ok(berthd.docker("inspect", "-f", "{{.State.Status}}", "pz")).stdout.strip() == "running"
    n3 = lines()
    # the restarted shell prints only after its trap is set: a pid 1 without one ignores USR1
    harness.eventually(lambda: lines() > n3, timeout=30)
    waiter = subprocess.Popen(["docker", "wait", "pz"], env=berthd.env, stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    ok(berthd.docker("kill", "-s", "USR1", "pz"))  # pid 1 gets only signals it handles, as in Docker
    out, _ = waiter.communicate(timeout=20)
    assert out.strip() == "42"
    r = berthd.docker("kill", "pz")
    assert r.returncode == 1 and "is not running" in r.stderr


def test_limits_are_enforced(berthd: harness.Berthd, busybox_image: str) -> None:
    # memory: allocate past the limit in a tmpfs-free way: a shell variable growing to ~64 MB
    r = berthd.docker(
        "run",
        "--name",
        "oom",
        "-m",
        "16m",
        busybox_image,
        "sh",
        "-c",
        "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived ${#x}",
    )
    assert r.returncode == 137, (r.returncode, r.stdout, r.stderr)
    assert ok(berthd.docker("inspect", "-f", "{{.State.OOMKilled}}", "oom")).stdout.strip() == "true"
    # pids: a fork loop stops at the limit
    script = "i=0; while [ $i -lt 30 ]; do sleep 3 & i=$((i+1)); done; echo all-started"
    r = berthd.docker("run", "--rm", "--pids-limit", "10", busybox_image, "sh", "-c", script)
    assert r.returncode == PIDS_EXIT and "all-started" not in r.stdout and "fork" in r.stderr, r
    r = berthd.docker("run", "--rm", busybox_image, "sh", "-c", script)
    assert r.returncode == 0 and "all-started" in r.stdout, r


def test_images_tag_rmi(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("tag", busybox_image, "mybox:v1"))
    rows = ok(berthd.docker("images", "--format", "{{.Repository}}:{{.Tag}}")).stdout.split()
    assert sorted(rows) == ["busybox:latest", "mybox:v1"]
    assert ok(berthd.docker("images", "--filter", "reference=my*", "-q")).stdout.strip()
    ids = {
        ok(berthd.docker("image", "inspect", "-f", "{{.Id}}", ref)).stdout.strip()
        for ref in ("busybox", "mybox:v1")
    }
    assert len(ids) == 1 and next(iter(ids)).startswith("sha256:")
    ok(berthd.docker("create", "--name", "user", "mybox:v1", "true"))
    r = berthd.docker("rmi", "mybox:v1")  # another tag remains: just untag
    assert r.returncode == 0 and "Untagged: mybox:v1" in r.stdout
    r = berthd.docker("rmi", busybox_image)
    assert r.returncode == 1 and "conflict" in r.stderr and "is using its referenced image" in r.stderr
    ok(berthd.docker("rm", "user"))
    ok(berthd.docker("run", "-d", "--name", "runner", busybox_image, "sleep", "60"))
    image_id = next(iter(ids))
    r = berthd.docker("rmi", "-f", image_id)  # the image itself: refused while a container runs it
    assert r.returncode == 1 and "image is being used by running container" in r.stderr
    # by name, as dockerd: the last name goes, the image stays (test_dockerpy_suite_fixes compares)
    assert ok(berthd.docker("rmi", "-f", busybox_image)).stdout == f"Untagged: {busybox_image}\n"
    ok(berthd.docker("rm", "-f", "runner"))
    r = ok(berthd.docker("rmi", image_id))
    assert "Deleted: sha256:" in r.stdout
    assert ok(berthd.docker("images", "-q")).stdout == ""
    r = berthd.docker("image", "inspect", "busybox")
    assert r.returncode == 1 and "No such image" in r.stderr


def test_bad_input_errors(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("create", "--name", "dup", busybox_image, "true"))
    r = berthd.docker("create", "--name", "dup", busybox_image, "true")
    assert r.returncode == 1 and "is already in use by container" in r.stderr, (r.returncode, r.stderr)
    status, body = berthd.api("POST", "/v1.45/containers/create", b"{not json")
    assert status == 400 and "invalid JSON" in body["message"]
    status, body = berthd.api(
        "POST", "/v1.45/containers/create", {"Image": busybox_image, "Cmd": ["true"], "Tty": "yes"}
    )
    assert status == 400 and "Tty" in body["message"]
    status, body = berthd.api("POST", "/v1.45/containers/create", {"Image": "nosuch", "Cmd": ["true"]})
    assert status == 404 and body["message"].startswith("No such image")
    status, body = berthd.api("GET", "/v1.45/containers/nosuch/json")
    assert status == 404 and body == {"message": "No such container: nosuch"}
    status, body = berthd.api("GET", "/v1.45/no/such/route")
    assert status == 404 and body == {"message": "page not found"}
    r = berthd.docker("start", "nosuch")
    assert r.returncode == 1 and "No such container: nosuch" in r.stderr


def test_import_garbage_leaves_nothing(berthd: harness.Berthd, busybox_tar, tmp_path) -> None:  # type: ignore[no-untyped-def]
    before = sorted(p.name for p in (berthd.data_root).rglob("*"))
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(os.urandom(10000))
    r = berthd.docker("import", str(garbage), "junk:1")
    assert r.returncode == 1, (r.returncode, r.stderr)
    truncated = tmp_path / "trunc.tar"
    data = busybox_tar.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    r = berthd.docker("import", str(truncated), "junk:2")
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert ok(berthd.docker("images", "-aq")).stdout == ""
    after = sorted(p.name for p in (berthd.data_root).rglob("*"))
    assert [p for p in after if p not in before and not p.startswith("berth.db")] == []
