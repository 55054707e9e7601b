"""The harness itself against a real berthd: start, ping, the docker CLI, restart, stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

import harness


def test_berthd_answers_ping_and_docker_version(berthd: harness.Berthd) -> None:
    assert harness.ping(berthd.sock)
    assert berthd.pid is not None and berthd.pidfile.read_text().strip() == str(berthd.pid)

    r = berthd.docker("version", "--format", "{{json .}}")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["Client"]["Version"].split(".")[0] >= "20"
    assert info["Server"] is not None, "docker version got no server section from berthd"
    assert info["Server"]["ApiVersion"], info["Server"]


def test_env_points_the_cli_at_this_daemon_only(berthd: harness.Berthd) -> None:
    env = berthd.env
    assert env["DOCKER_HOST"] == env["BERTH_HOST"] == f"unix://{berthd.sock}"
    assert os.listdir(env["DOCKER_CONFIG"]) == []
    assert len(berthd.sock.encode()) <= harness.SOCKET_PATH_MAX


def test_restart_and_stop(berthd: harness.Berthd) -> None:
    first = berthd.pid
    berthd.restart()
    assert berthd.pid is not None and berthd.pid != first
    assert harness.ping(berthd.sock)
    rc = berthd.stop()
    assert rc in (0, -signal.SIGTERM), berthd.log_tail()
    assert berthd.pid is None and not harness.ping(berthd.sock)


def test_teardown_reports_a_leaked_mount(berthd_factory) -> None:
    d = berthd_factory()
    leak = d.data_root / "leak"
    leak.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(leak)], check=True)
    assert harness.mounts_under(d.root) == [str(leak)]
    problems = d.teardown()
    assert any("mounts left behind" in p and str(leak) in p for p in problems), problems
    assert not d.root.exists()
    assert harness.mounts_under(d.root) == []


def test_docker_py_client(berthd: harness.Berthd) -> None:
    client = berthd.client()
    assert client.ping() is True


def test_busybox_image_imports(berthd: harness.Berthd, busybox_image: str) -> None:
    r = berthd.docker("image", "inspect", busybox_image, "--format", "{{json .Config.Cmd}}")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == ["sh"]


@pytest.mark.parametrize("driver", ["vfs"])
def test_factory_passes_storage_driver(berthd_factory, driver: str) -> None:
    d = berthd_factory(storage_driver=driver)
    assert ["--storage-driver", driver] == d.command()[d.command().index("--storage-driver") :][:2]
    r = d.docker("info", "--format", "{{.Driver}}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == driver


def test_tcp_tls_listener(berthd_factory, tmp_path) -> None:
    tls = harness.make_tls(tmp_path / "tls")
    d = berthd_factory(tcp_port=harness.free_tcp_port(), tls=tls)
    r = d.docker("version", "--format", "{{.Server.APIVersion}}", env=d.tcp_env)
    assert r.returncode == 0, r.stderr + d.log_tail()
    assert r.stdout.strip()
    # Without a client certificate, --tlsverify must refuse the connection.
    env = d.tcp_env
    env.pop("DOCKER_CERT_PATH")
    env.pop("DOCKER_TLS_VERIFY")
    r = d.docker("version", "--format", "{{.Server.APIVersion}}", env=env, timeout=30)
    assert r.returncode == 1, (r.returncode, r.stderr)


@pytest.mark.conformance
def test_reference_dockerd_runs_the_same_image(
    berthd: harness.Berthd, dockerd: harness.Dockerd, busybox_tar
) -> None:
    """The same tar, imported into berthd and the reference, runs with the same output and status."""
    for d in (berthd, dockerd):
        d.import_image(busybox_tar)
    argv = ("run", "--rm", "--network", "none", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    got = {d.name: d.docker(*argv) for d in (berthd, dockerd)}
    assert got["berth"].returncode == got["docker"].returncode == 3, got
    assert got["berth"].stdout == got["docker"].stdout == "out\n", got
    assert got["berth"].stderr == got["docker"].stderr == "err\n", got
    # dockerd really is in its own network namespace, not the host's
    assert os.readlink(f"/proc/{dockerd.pid}/ns/net") != os.readlink("/proc/self/ns/net")


def test_teardown_reports_and_ends_a_leaked_process(berthd_factory) -> None:
    d = berthd_factory()
    env = {**os.environ, harness.MARKER_VAR: str(d.root)}
    leak = subprocess.Popen(["sleep", "1000"], env=env, start_new_session=True)
    try:
        problems = d.teardown()
        assert any("processes left running" in p and str(leak.pid) in p for p in problems), problems
        assert leak.wait(timeout=10) == -9
    finally:
        if leak.poll() is None:
            leak.kill()
            leak.wait()
