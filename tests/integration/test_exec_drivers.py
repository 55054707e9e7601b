"""One container-behaviour suite, run against the ``native`` exec driver and the ``oci`` one.

The same scenarios go through the real docker CLI against one berthd, once with ``--runtime
native`` (berth's libcontainer) and once with ``--runtime runc`` (Debian's runc driven by the
monitor, :mod:`berth.shim.oci`), and the results must be equal -- and what Docker shows (each test
also checks the expected values, so two equally wrong answers fail too): isolation
(capabilities, seccomp, no_new_privs, ids of the init and of an exec), limits (-m,
--pids-limit, --cpus in the cgroup files), exit codes (0/1/126/127/137), signals (stop, kill),
terminals (-t, -it) and exec (exit codes, stdin, -t, -it, a missing program).

crun and berth-runtime run a shorter pass (:func:`test_other_oci_runtimes`): crun refuses
cgroups on a hybrid (v1 + unified) host like this one, and is skipped there with its reason; it
runs the pass in a mount namespace of its own without the unified hierarchy (``crun-v1``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import harness

pytestmark = pytest.mark.integration

RUNC = shutil.which("runc")
RUNTIMES = ("native", "runc")
STATUS_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Uid", "Gid", "Groups")
STATUS = "grep -E '^(" + "|".join(STATUS_FIELDS) + "):' /proc/self/status"
SIGNAL_LOOP = ("trap 'echo got-term; exit 42' TERM; trap 'echo got-usr1; exit 43' USR1; echo ready; "
               "while true; do sleep 0.1; done")

needs_runc = pytest.mark.skipif(RUNC is None, reason="runc not installed (apt-get install runc)")


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
    return r


def both(scenario):  # type: ignore[no-untyped-def]
    """Run ``scenario(runtime)`` for every runtime; the results, which must all be equal."""
    got = {rt: scenario(rt) for rt in RUNTIMES}
    assert got["runc"] == got["native"], json.dumps(got, indent=1)
    return got["native"]


def _status(text: str) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in text.strip().splitlines())


@needs_runc
@pytest.mark.parametrize(
    "flags",
    [[], ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"], ["--cap-add", "SYS_ADMIN"],
     ["--privileged"], ["--user", "1000:1000", "--group-add", "10"]],
    ids=["default", "cap-drop-all-nnp", "cap-add-sys-admin", "privileged", "user"],
)
def test_isolation_of_init_and_exec(berthd: harness.Berthd, busybox_image: str, flags: list[str]) -> None:
    def scenario(rt: str) -> dict[str, object]:
        init = _status(ok(berthd.docker("run", "--rm", "--runtime", rt, *flags, busybox_image, "sh", "-c", STATUS)).stdout)
        name = f"iso-{rt}"
        ok(berthd.docker("run", "-d", "--name", name, "--runtime", rt, *flags, busybox_image, "sleep", "600"))
        execd = _status(ok(berthd.docker("exec", name, "sh", "-c", STATUS)).stdout)
        # the namespaces an exec is in are the init's
        ns = ok(berthd.docker("exec", name, "sh", "-c",
                              "for n in mnt pid net uts ipc; do [ $(readlink /proc/1/ns/$n) = $(readlink /proc/self/ns/$n) ]"
                              " && echo same-$n; done; hostname; cat /proc/1/comm")).stdout.split()
        # the same cgroups, in every hierarchy (the container's id in the path made a placeholder)
        cid = ok(berthd.docker("inspect", "-f", "{{.Id}}", name)).stdout.strip()
        cgroups = sorted(ok(berthd.docker("exec", name, "cat", "/proc/self/cgroup")).stdout.replace(cid, "ID").split())
        ok(berthd.docker("rm", "-f", name))
        return {"init": init, "exec": execd, "ns": ns[:5], "pid1": ns[-1], "cgroups": cgroups}

    got = both(scenario)
    assert got["init"] == got["exec"]  # every way in gets the same walls
    assert got["ns"] == ["same-mnt", "same-pid", "same-net", "same-uts", "same-ipc"] and got["pid1"] == "sleep"
    assert all(line.endswith(f"/{berthd.cgroup_parent}/ID") for line in got["cgroups"]), got["cgroups"]
    status = got["init"]
    if "--privileged" in flags:
        assert status["Seccomp"] == "0" and status["CapEff"] == status["CapBnd"] != "0000000000000000"
    else:
        assert status["Seccomp"] == "2"
    if "--cap-drop" in flags:
        assert status["CapEff"] == status["CapBnd"] == "0000000000000000" and status["NoNewPrivs"] == "1"
    if not flags:
        assert status["CapEff"] == "00000000a80425fb" and status["NoNewPrivs"] == "0"  # Docker's 14
    if "--user" in flags:
        assert status["Uid"].split()[0] == "1000" and "10" in status["Groups"].split() and status["CapEff"] == "0" * 16


@needs_runc
def test_limits_in_the_cgroup_files(berthd: harness.Berthd, busybox_image: str) -> None:
    from berth.libcontainer.cgroups import is_unified

    if is_unified():
        script = "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max"
        want = ["67108864", "50", "50000", "100000"]
    else:
        script = ("cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max "
                  "/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us")
        want = ["67108864", "50", "50000", "100000"]

    def scenario(rt: str) -> dict[str, object]:
        flags = ("-m", "64m", "--pids-limit", "50", "--cpus", "0.5")
        inside = ok(berthd.docker("run", "--rm", "--runtime", rt, *flags, busybox_image, "sh", "-c", script)).stdout.split()
        # the pids limit holds: a fork bomb of 80 sleeps gets at most 50 processes
        forks = berthd.docker("run", "--rm", "--runtime", rt, "--pids-limit", "20", busybox_image, "sh", "-c",
                              "for i in $(seq 40); do sleep 5 & done 2>/dev/null; sleep 0.5; ls /proc | grep -c '^[0-9]'")
        # docker stats / top read the same cgroup
        name = f"lim-{rt}"
        ok(berthd.docker("run", "-d", "--name", name, "--runtime", rt, *flags, busybox_image, "sleep", "600"))
        stats = json.loads(ok(berthd.docker("stats", "--no-stream", "--format", "{{json .}}", name)).stdout)
        top = ok(berthd.docker("top", name)).stdout
        ok(berthd.docker("update", "--pids-limit", "60", name))
        updated = ok(berthd.docker("exec", name, "sh", "-c", script)).stdout.split()[1]
        ok(berthd.docker("rm", "-f", name))
        return {"inside": inside, "forks_capped": int(forks.stdout.strip() or 0) <= 20,
                "stats_limit": stats["MemUsage"].split("/")[1].strip(), "top_sleep": "sleep 600" in top,
                "updated": updated}

    got = both(scenario)
    assert got == {"inside": want, "forks_capped": True, "stats_limit": "64MiB", "top_sleep": True, "updated": "60"}


@needs_runc
def test_exit_codes(berthd: harness.Berthd, busybox_image: str) -> None:
    def scenario(rt: str) -> dict[str, object]:
        out: dict[str, object] = {}
        for label, cmd in (("true", ["true"]), ("false", ["false"]), ("exit-3", ["sh", "-c", "exit 3"]),
                           ("missing", ["nosuchprogram"]), ("not-executable", ["/etc/passwd"]),
                           ("sigkill", ["sh", "-c", "sleep 60 & kill -9 $!; wait $!"])):
            # (pid 1 cannot SIGKILL itself: a child's death by SIGKILL gives the 137)
            r = berthd.docker("run", "--rm", "--runtime", rt, busybox_image, *cmd)
            out[label] = r.returncode
            if label == "missing":
                out["missing-text"] = "executable file not found" in r.stderr
        # a failed start is recorded (exit code) and leaves nothing mounted or running
        r = berthd.docker("run", "--name", f"bad-{rt}", "--runtime", rt, busybox_image, "nosuchprogram")
        out["recorded"] = ok(berthd.docker("inspect", "-f", "{{.State.ExitCode}} {{.State.Status}}", f"bad-{rt}")).stdout.strip()
        ok(berthd.docker("rm", f"bad-{rt}"))
        return out

    got = both(scenario)
    assert got == {"true": 0, "false": 1, "exit-3": 3, "missing": 127, "missing-text": True, "not-executable": 126,
                   "sigkill": 137, "recorded": "127 created"}


@needs_runc
def test_signals_stop_kill_and_wait(berthd: harness.Berthd, busybox_image: str) -> None:
    def scenario(rt: str) -> dict[str, object]:
        out: dict[str, object] = {}
        for label, action in (("stop", ("stop",)), ("kill-usr1", ("kill", "-s", "USR1")), ("kill", ("kill",)),
                              ("stop-t1-ignored", ("stop", "-t", "1"))):
            name = f"sig-{rt}-{label}"
            script = "trap '' TERM; echo ready; while true; do sleep 0.1; done" if label.endswith("ignored") else SIGNAL_LOOP
            ok(berthd.docker("run", "-d", "--name", name, "--runtime", rt, busybox_image, "sh", "-c", script))
            harness.eventually(lambda n=name: "ready" in berthd.docker("logs", n).stdout, timeout=20)
            ok(berthd.docker(*action, name))
            out[label] = ok(berthd.docker("wait", name)).stdout.strip()
            out[label + "-log"] = berthd.docker("logs", name).stdout.split()[1:]
            ok(berthd.docker("rm", name))
        # pause / unpause freeze and thaw the container
        name = f"pause-{rt}"
        ok(berthd.docker("run", "-d", "--name", name, "--runtime", rt, busybox_image, "sleep", "600"))
        ok(berthd.docker("pause", name))
        out["paused"] = ok(berthd.docker("inspect", "-f", "{{.State.Status}}", name)).stdout.strip()
        out["exec-paused"] = berthd.docker("exec", name, "true").returncode
        ok(berthd.docker("unpause", name))
        out["exec-unpaused"] = berthd.docker("exec", name, "true").returncode
        ok(berthd.docker("pause", name))
        ok(berthd.docker("rm", "-f", name))  # a frozen container is thawed to be killed
        out["removed-paused"] = berthd.docker("inspect", name).returncode
        return out

    got = both(scenario)
    assert got == {"stop": "42", "stop-log": ["got-term"], "kill-usr1": "43", "kill-usr1-log": ["got-usr1"],
                   "kill": "137", "kill-log": [], "stop-t1-ignored": "137", "stop-t1-ignored-log": [],
                   "paused": "paused", "exec-paused": 1, "exec-unpaused": 0, "removed-paused": 1}
    harness.no_mounts_under(berthd.data_root)


@needs_runc
def test_terminals(berthd: harness.Berthd, busybox_image: str) -> None:
    def scenario(rt: str) -> dict[str, object]:
        out: dict[str, object] = {}
        out["run-t"] = ok(berthd.docker("run", "--rm", "-t", "--runtime", rt, busybox_image, "tty")).stdout
        code, text = harness.pty_run(
            ["docker", "run", "-it", "--rm", "--runtime", rt, busybox_image, "sh", "-c",
             "tty; stty size; read x; echo got-$x; exit 4"], berthd.env, b"hello\r")
        out["run-it"] = (code, b"/dev/pts/0\r\n" in text, b"30 100" in text, b"got-hello" in text)
        name = f"tty-{rt}"
        ok(berthd.docker("run", "-d", "--name", name, "--runtime", rt, busybox_image, "sleep", "600"))
        out["exec-t"] = ok(berthd.docker("exec", "-t", name, "tty")).stdout
        code, text = harness.pty_run(
            ["docker", "exec", "-it", name, "sh", "-c", "tty; stty size; read x; echo got-$x; exit 5"],
            berthd.env, b"there\r")
        out["exec-it"] = (code, b"/dev/pts/" in text, b"30 100" in text, b"got-there" in text)
        ok(berthd.docker("rm", "-f", name))
        return out

    got = both(scenario)
    assert got == {"run-t": "/dev/pts/0\n", "run-it": (4, True, True, True), "exec-t": "/dev/pts/0\n",
                   "exec-it": (5, True, True, True)}


@needs_runc
def test_exec(berthd: harness.Berthd, busybox_image: str) -> None:
    def scenario(rt: str) -> dict[str, object]:
        name = f"ex-{rt}"
        ok(berthd.docker("run", "-d", "--name", name, "--runtime", rt, "-e", "FOO=bar", busybox_image, "sleep", "600"))
        out: dict[str, object] = {}
        for label, cmd in (("zero", ["true"]), ("three", ["sh", "-c", "exit 3"]), ("missing", ["nosuchprogram"]),
                           ("killed", ["sh", "-c", "kill -9 $$"])):
            out[label] = berthd.docker("exec", name, *cmd).returncode
        out["stdin"] = ok(berthd.docker("exec", "-i", name, "cat", input="a\nb\n")).stdout
        out["env"] = sorted(e for e in ok(berthd.docker("exec", "-e", "X=1", name, "env")).stdout.split()
                            if not e.startswith("HOSTNAME="))
        out["user"] = ok(berthd.docker("exec", "-u", "1000", "-w", "/tmp", name, "sh", "-c", "id -u; pwd")).stdout.split()
        # a detached exec runs on; docker top sees it
        ok(berthd.docker("exec", "-d", name, "sleep", "77"))
        harness.eventually(lambda: "sleep 77" in berthd.docker("top", name).stdout, timeout=20)
        ok(berthd.docker("rm", "-f", name))
        return out

    got = both(scenario)
    assert got == {"zero": 0, "three": 3, "missing": 126, "killed": 137, "stdin": "a\nb\n",
                   "env": ["FOO=bar", "HOME=/root", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "X=1"],
                   "user": ["1000", "/tmp"]}


def _crun_without_unified(tmp_path: Path) -> str | None:
    """crun in a mount namespace of its own without the unified hierarchy (the v1 hierarchies
    alone, which crun accepts): how crun can run on a hybrid host at all (bench/runtime.py too)."""
    crun = shutil.which("crun")
    if crun is None:
        return None
    script = tmp_path / "crun-v1"
    script.write_text("#!/bin/sh\nexec unshare --mount --propagation private sh -c "
                      "'umount /sys/fs/cgroup/unified 2>/dev/null; exec \"$0\" \"$@\"' " + crun + ' "$@"\n')
    script.chmod(0o755)
    tmp_path.chmod(0o755)
    return str(script)


@pytest.mark.parametrize("name", ["crun", "crun-v1", "berth-runtime"])
def test_other_oci_runtimes(berthd_factory, busybox_tar: Path, tmp_path: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    paths = {"crun": shutil.which("crun"), "crun-v1": _crun_without_unified(tmp_path),
             "berth-runtime": str(harness.VENV_BIN / "berth-runtime")}
    path = paths[name]
    if path is None or not Path(path).exists():
        pytest.skip(f"{name} is not installed")
    d = berthd_factory(extra_args=("--add-runtime", f"{name}={path}"))
    d.import_image(busybox_tar)
    first = d.docker("run", "--rm", "--runtime", name, "busybox", "true")
    if name == "crun" and first.returncode != 0 and "hybrid" in (first.stderr + first.stdout).lower():
        pytest.skip(f"crun refuses this cgroup hybrid (v1 + unified) host: {first.stderr.strip()}")
    assert first.returncode == 0, first.stderr
    init = _status(ok(d.docker("run", "--rm", "--runtime", name, "busybox", "sh", "-c", STATUS)).stdout)
    native = _status(ok(d.docker("run", "--rm", "--runtime", "native", "busybox", "sh", "-c", STATUS)).stdout)
    assert init == native
    ok(d.docker("run", "-d", "--name", "c1", "--runtime", name, "-m", "64m", "busybox", "sleep", "600"))
    assert _status(ok(d.docker("exec", "c1", "sh", "-c", STATUS)).stdout) == native
    assert d.docker("exec", "c1", "sh", "-c", "exit 7").returncode == 7
    assert ok(d.docker("exec", "-t", "c1", "tty")).stdout.startswith("/dev/pts/")
    assert ok(d.docker("run", "--rm", "-t", "--runtime", name, "busybox", "tty")).stdout == "/dev/pts/0\n"
    missing = d.docker("run", "--rm", "--runtime", name, "busybox", "nosuchprogram")
    assert "nosuchprogram" in missing.stderr and "not found" in missing.stderr
    # the docker CLI keys 127 on the lowercase "no such file or directory"; crun writes "No such
    # file or directory", so with crun the CLI exits 125 (as it would with dockerd and crun)
    assert missing.returncode == (125 if name.startswith("crun") else 127), missing.stderr
    ok(d.docker("stop", "-t", "1", "c1"))
    assert ok(d.docker("inspect", "-f", "{{.State.ExitCode}} {{.HostConfig.Runtime}}", "c1")).stdout == f"137 {name}\n"
    ok(d.docker("rm", "c1"))


@needs_runc
def test_stdin_cp_restart_and_oom(berthd: harness.Berthd, busybox_image: str, tmp_path: Path) -> None:
    def scenario(rt: str) -> dict[str, object]:
        out: dict[str, object] = {}
        out["run-i"] = ok(berthd.docker("run", "--rm", "-i", "--runtime", rt, busybox_image, "cat", input="x\ny\n")).stdout
        name = f"more-{rt}"
        ok(berthd.docker("run", "-d", "--name", name, "--runtime", rt, busybox_image, "sh", "-c",
                         "echo hello > /tmp/f; sleep 600"))
        harness.eventually(lambda: berthd.docker("exec", name, "cat", "/tmp/f").stdout == "hello\n", timeout=20)
        # docker cp out of and into the running container
        ok(berthd.docker("cp", f"{name}:/tmp/f", str(tmp_path / f"f-{rt}")))
        out["cp-out"] = (tmp_path / f"f-{rt}").read_text()
        (tmp_path / f"in-{rt}").write_text("in\n")
        ok(berthd.docker("cp", str(tmp_path / f"in-{rt}"), f"{name}:/tmp/in"))
        out["cp-in"] = ok(berthd.docker("exec", name, "cat", "/tmp/in")).stdout
        # restart: a new run of the same container, its writable layer kept
        ok(berthd.docker("restart", "-t", "1", name))
        out["after-restart"] = ok(berthd.docker("exec", name, "cat", "/tmp/in")).stdout
        ok(berthd.docker("rm", "-f", name))
        # the OOM killer: the exit is 137 and recorded as OOMKilled
        oom = f"oom-{rt}"
        berthd.docker("run", "--name", oom, "--runtime", rt, "-m", "8m", "--memory-swap", "8m", busybox_image,
                      "sh", "-c", "x=$(head -c 64m /dev/zero | tr '\\0' a); echo survived", timeout=120)
        out["oom"] = ok(berthd.docker("inspect", "-f", "{{.State.ExitCode}} {{.State.OOMKilled}}", oom)).stdout.strip()
        ok(berthd.docker("rm", oom))
        return out

    got = both(scenario)
    assert got == {"run-i": "x\ny\n", "cp-out": "hello\n", "cp-in": "in\n", "after-restart": "in\n", "oom": "137 true"}
    harness.no_mounts_under(berthd.data_root)


@needs_runc
def test_mounts_volumes_and_read_only_root(berthd: harness.Berthd, busybox_image: str, tmp_path: Path) -> None:
    host = tmp_path / "bind"
    host.mkdir()
    (host / "h").write_text("from-host\n")

    def scenario(rt: str) -> dict[str, object]:
        vol = f"vol-{rt}"
        script = ("cat /b/h; echo data > /v/x; echo t > /t/x && echo tmpfs-ok; touch /root-file 2>/dev/null || echo ro-root; "
                  "grep -E ' /(v|t|b) ' /proc/self/mounts | awk '{print $2, $3}' | sort")
        first = ok(berthd.docker("run", "--rm", "--runtime", rt, "--read-only", "--tmpfs", "/t", "-v", f"{vol}:/v",
                                 "-v", f"{host}:/b:ro", busybox_image, "sh", "-c", script)).stdout.splitlines()
        again = ok(berthd.docker("run", "--rm", "--runtime", rt, "-v", f"{vol}:/v", busybox_image, "cat", "/v/x")).stdout
        with_init = ok(berthd.docker("run", "--rm", "--runtime", rt, "--init", busybox_image, "sh", "-c",
                                     "cat /proc/1/comm")).stdout.strip()
        ok(berthd.docker("volume", "rm", vol))
        return {"first": first, "again": again, "init": with_init}

    got = both(scenario)
    assert got["first"][:3] == ["from-host", "tmpfs-ok", "ro-root"]
    assert [line.split()[0] for line in got["first"][3:]] == ["/b", "/t", "/v"] and "/t tmpfs" in got["first"]
    assert got["again"] == "data\n" and got["init"] != "sh"  # the volume kept its data; --init is pid 1
    harness.no_mounts_under(berthd.data_root)


def test_a_runtime_binary_that_is_not_there(berthd_factory, busybox_tar: Path) -> None:  # type: ignore[no-untyped-def]
    d = berthd_factory(extra_args=("--add-runtime", "gone=/nonexistent/runtime"))
    d.import_image(busybox_tar)
    r = d.docker("run", "--rm", "--runtime", "gone", "busybox", "true")
    assert r.returncode == 125 and "/nonexistent/runtime" in r.stderr, r.stderr
    assert ok(d.docker("ps", "-aq")).stdout == ""  # --rm removed it
    harness.no_mounts_under(d.data_root)
    info = json.loads(ok(d.docker("info", "--format", "{{json .Runtimes}}")).stdout)
    assert info["gone"] == {"path": "/nonexistent/runtime"}


@needs_runc
def test_daemon_json_runtimes_and_the_default(berthd_factory, busybox_tar: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    conf = tmp_path / "daemon.json"
    conf.write_text(json.dumps({"runtimes": {"brt": {"path": str(harness.VENV_BIN / "berth-runtime"),
                                                       "runtimeArgs": ["--debug"]}},
                                "default-runtime": "runc"}))
    d = berthd_factory(extra_args=("--config-file", str(conf)))
    d.import_image(busybox_tar)
    info = json.loads(ok(d.docker("info", "--format", "{{json .}}")).stdout)
    assert info["DefaultRuntime"] == "runc"
    assert info["Runtimes"]["brt"] == {"path": str(harness.VENV_BIN / "berth-runtime"), "runtimeArgs": ["--debug"]}
    # no --runtime: the daemon's default, recorded and used (runc keeps its state under runtime-runc)
    cid = ok(d.docker("run", "-d", "--name", "dflt", "busybox", "sleep", "600")).stdout.strip()
    assert ok(d.docker("inspect", "-f", "{{.HostConfig.Runtime}}", "dflt")).stdout == "runc\n"
    assert (d.exec_root / "runtime-runc" / cid).is_dir()
    ok(d.docker("rm", "-f", "dflt"))
    # a runtime from daemon.json, with its runtimeArgs, and native still there by name
    assert ok(d.docker("run", "--rm", "--runtime", "brt", "busybox", "echo", "via-brt")).stdout == "via-brt\n"
    assert ok(d.docker("run", "--rm", "--runtime", "native", "busybox", "echo", "via-native")).stdout == "via-native\n"
    # a default that is not configured stops berthd at start, with dockerd's words
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"default-runtime": "nope"}))
    r = subprocess.run([str(harness.BERTHD), "--config-file", str(bad), "--data-root", str(tmp_path / "d"),
                        "--exec-root", str(tmp_path / "e")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "specified default runtime 'nope' does not exist" in r.stderr, r.stderr
