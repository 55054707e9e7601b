"""berthd as a process: listeners, one daemon per data root, side-by-side daemons, jobs, events."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import pytest

import harness

pytestmark = pytest.mark.integration


def test_second_daemon_on_same_root_refuses(berthd: harness.Berthd) -> None:
    r = subprocess.run(
        [
            str(harness.BERTHD),
            "--data-root",
            str(berthd.data_root),
            "--exec-root",
            str(berthd.root / "exec2"),
            "-H",
            f"unix://{berthd.root}/other.sock",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 1
    assert f"another berthd (pid {berthd.pid}) is using the data root {berthd.data_root}" in r.stderr


def test_two_daemons_side_by_side(berthd_factory, busybox_tar) -> None:  # type: ignore[no-untyped-def]
    a = berthd_factory()
    b = berthd_factory(storage_driver="vfs")
    for d in (a, b):
        d.import_image(busybox_tar)
    assert a.docker("run", "-d", "--name", "only-a", "busybox", "sleep", "60").returncode == 0
    assert b.docker("run", "--rm", "busybox", "echo", "from-b").stdout == "from-b\n"
    assert a.docker("ps", "--format", "{{.Names}}").stdout.split() == ["only-a"]
    assert b.docker("ps", "-a", "--format", "{{.Names}}").stdout.split() == []
    assert json.loads(b.docker("info", "--format", "{{json .Driver}}").stdout) == "vfs"


def test_non_loopback_tcp_needs_tls(berthd_factory) -> None:  # type: ignore[no-untyped-def]
    d = berthd_factory(start=False, extra_args=("-H", "tcp://0.0.0.0:0"))
    with pytest.raises(harness.DaemonError) as err:
        d.start()
    assert "refusing to listen on tcp://0.0.0.0:0 without TLS" in str(err.value)


def test_fd_socket_activation(tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = harness.Berthd.create()
    listener = socket.socket(socket.AF_UNIX)
    sock_path = str(d.root / "act.sock")
    listener.bind(sock_path)
    listener.listen(16)
    argv = " ".join(
        [
            "exec",
            str(harness.BERTHD),
            "--data-root",
            str(d.data_root),
            "--exec-root",
            str(d.exec_root),
            "-H",
            "fd://",
            "--pidfile",
            str(d.pidfile),
        ]
    )
    # LISTEN_PID must be berthd's own pid: sh's $$ is, after exec.
    proc = subprocess.Popen(
        ["sh", "-c", f"LISTEN_FDS=1 LISTEN_PID=$$ {argv}"],
        preexec_fn=lambda: os.dup2(listener.fileno(), 3),  # systemd's first socket is fd 3
        close_fds=False,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while not harness.ping(sock_path) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
        assert harness.ping(sock_path)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        if proc.stderr is not None:
            proc.stderr.close()
        listener.close()
        d.teardown()


def test_jobs_api_and_events(berthd: harness.Berthd, busybox_image: str) -> None:
    since = time.time()
    assert berthd.docker("run", "--rm", "--name", "evt", busybox_image, "true").returncode == 0
    status, jobs = berthd.api("GET", "/berth/v1/jobs?all=1")
    assert status == 200
    names = [j["Name"] for j in jobs]
    for name in ("container.create", "container.attach", "container.wait", "container.start", "serveapi"):
        assert name in names, names
    serve = next(j for j in jobs if j["Name"] == "serveapi")
    assert serve["Status"] == "running" and serve["DurationMs"] is None
    create = next(j for j in jobs if j["Name"] == "container.create")
    assert create["Status"] == "ok" and create["DurationMs"] > 0
    r = berthd.docker(
        "events",
        "--since",
        str(since),
        "--until",
        str(time.time() + 0.5),
        "--filter",
        "container=evt",
        "--format",
        "{{.Action}}",
    )
    assert r.returncode == 0, r.stderr
    actions = r.stdout.split()
    assert actions[:2] == ["create", "attach"], actions
    assert {"start", "die", "destroy"} <= set(actions), actions
    assert actions.index("die") < actions.index("destroy")


def test_sigterm_shuts_down_cleanly(berthd: harness.Berthd) -> None:
    pidfile = berthd.pidfile
    assert pidfile.exists()
    assert berthd.stop() == 0
    assert not pidfile.exists()
    assert not (berthd.exec_root / "berth.sock").exists()


def test_config_file(berthd_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = berthd_factory(start=False)
    cfg = tmp_path / "daemon.json"
    cfg.write_text(json.dumps({"storage-driver": "vfs", "debug": True}))
    d.extra_args = ("--config-file", str(cfg))
    d.storage_driver = "vfs"
    d.start()
    assert json.loads(d.docker("info", "--format", "{{json .Driver}}").stdout) == "vfs"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"no-such-key": 1}))
    r = subprocess.run(
        [str(harness.BERTHD), "--config-file", str(bad)], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 1 and "unknown keys no-such-key" in r.stderr


def test_attach_and_exec_over_tls(berthd_factory, busybox_tar, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The docker CLI half-closes a hijacked TLS stream (close_notify); output must still come."""
    tls = harness.make_tls(tmp_path / "tls")
    d = berthd_factory(tcp_port=harness.free_tcp_port(), tls=tls)
    d.import_image(busybox_tar)
    env = d.tcp_env

    def docker(*args: str, input: str | None = None) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
        return subprocess.run(
            ["docker", *args], env=env, input=input, capture_output=True, text=True, timeout=60
        )

    r = docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    assert docker("run", "-i", "--rm", "busybox", "cat", input="piped\n").stdout == "piped\n"
    assert docker("run", "-d", "--name", "tlsexec", "busybox", "sleep", "60").returncode == 0
    r = docker("exec", "tlsexec", "sh", "-c", "echo from-exec; exit 4")
    assert (r.returncode, r.stdout) == (4, "from-exec\n")
    assert docker("rm", "-f", "tlsexec").returncode == 0
    # berth's own CLI with its TLS flags and with its environment variables
    client = tls.client_dir
    assert client is not None
    flags = [
        "--tlsverify",
        "--tlscacert",
        str(client / "ca.pem"),
        "--tlscert",
        str(client / "cert.pem"),
        "--tlskey",
        str(client / "key.pem"),
        "-H",
        f"tcp://127.0.0.1:{d.tcp_port}",
    ]
    r = subprocess.run(
        [str(harness.BERTH), *flags, "run", "--rm", "busybox", "echo", "via-berth"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (r.returncode, r.stdout) == (0, "via-berth\n"), r.stderr
    benv = dict(env, BERTH_TLS_VERIFY="1", BERTH_CERT_PATH=str(client))
    r = subprocess.run([str(harness.BERTH), "ps", "-a"], env=benv, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("CONTAINER ID"), r.stderr
    r = subprocess.run(
        [str(harness.BERTH), "-H", f"tcp://127.0.0.1:{d.tcp_port}", "ps"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0, "a client without a certificate must be refused"


def _fork_server_nice(daemon_pid: int) -> int:
    """The nice value of the daemon's fork server (its child named berth-forksrv)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        rest = stat[stat.rindex(")") + 2 :].split()  # from field 3 (state) on
        if comm == "berth-forksrv" and int(rest[1]) == daemon_pid:
            return int(rest[16])  # field 19: nice
    raise AssertionError(f"no fork server under berthd {daemon_pid}")


def test_the_daemon_serves_while_its_fork_server_boots_and_a_run_waits_for_it(  # type: ignore[no-untyped-def]
    berthd_factory, busybox_tar
) -> None:
    """The fork server's boot (its warm-ups) does not hold the daemon's start-up: GET /version, ps,
    images and an image load are served while it still boots; it was given its normal priority
    back once the daemon served; a run during its boot waits for it, then works."""
    pause = 8.0
    d = berthd_factory(start=False, env_extra={"BERTH_TEST_FORKSERVER_PAUSE": str(pause)})
    d.start()  # returns once GET /version answered
    assert d.pid is not None
    assert time.monotonic() - d.spawned_at < pause - 3, "the daemon waited for its fork server to serve"
    assert _fork_server_nice(d.pid) == 0, "the daemon serves: the fork server's warm-ups must not yield any more"
    for args in (("ps", "-a"), ("images",)):
        r = d.docker(*args)
        assert r.returncode == 0, r.stderr
    d.import_image(busybox_tar)
    issued = time.monotonic() - d.spawned_at
    assert issued < pause - 0.5, f"the run came {issued:.1f} s after the spawn: the fork server was ready already"
    r = d.docker("run", "--rm", "--network", "none", "busybox", "echo", "waited")
    done = time.monotonic() - d.spawned_at
    assert (r.returncode, r.stdout) == (0, "waited\n"), r.stderr
    assert done >= pause, f"the run was done {done:.1f} s after the spawn, before its fork server was ready"


def test_ping_answers_while_the_daemon_starts_and_other_requests_wait(berthd_factory) -> None:  # type: ignore[no-untyped-def]
    """berthd answers /_ping as soon as it is spawned (its unix socket is bound before the
    server is imported); a request that needs the daemon waits for the start-up, then works."""
    d = berthd_factory(start=False, env_extra={"BERTH_TEST_STARTUP_PAUSE": "3"})
    d.start()  # returns once GET /version answered (harness: the daemon serves)
    assert d.first_ping < 2.5, f"/_ping took {d.first_ping:.1f} s: it waited for the start-up"
    served = time.monotonic() - d.spawned_at
    assert served >= 3.0, f"GET /version was answered after {served:.1f} s, before the start-up was done"
    r = d.docker("version", "--format", "{{.Server.Version}}")
    assert (r.returncode, r.stdout.strip()) == (0, "0.1.0"), r.stderr
