"""run/create flags -> the create body docker sends."""

from __future__ import annotations

import pytest

from berth.cli.containerspec import build_create_body, parse_run, start_error_exit_code
from berth.cli.flagvalues import parse_mount, parse_publish
from berth.errors import InvalidParameter


def body(*argv, env=None, console=None):
    return build_create_body(parse_run(list(argv)), env or {}, console)


def test_plain_run_matches_dockers_defaults():
    b = body("busybox", "echo", "hi")
    assert b["Image"] == "busybox" and b["Cmd"] == ["echo", "hi"]
    assert (b["AttachStdin"], b["AttachStdout"], b["AttachStderr"]) == (False, True, True)
    assert (b["Tty"], b["OpenStdin"], b["StdinOnce"]) == (False, False, False)
    assert b["Env"] is None and b["Entrypoint"] is None and b["Labels"] == {}
    hc = b["HostConfig"]
    assert hc["NetworkMode"] == "default" and hc["AutoRemove"] is False
    assert hc["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert hc["ConsoleSize"] == [0, 0]
    assert list(b["NetworkingConfig"]["EndpointsConfig"]) == ["default"]
    assert "ExposedPorts" not in b


def test_interactive_tty_rm_and_detach():
    b = body("-it", "--rm", "busybox", "sh", console=(40, 120))
    assert (b["AttachStdin"], b["Tty"], b["OpenStdin"], b["StdinOnce"]) == (True, True, True, True)
    assert b["HostConfig"]["AutoRemove"] and b["HostConfig"]["ConsoleSize"] == [40, 120]
    d = body("-d", "-i", "busybox")
    assert (d["AttachStdin"], d["AttachStdout"], d["AttachStderr"], d["StdinOnce"]) == (
        False,
        False,
        False,
        False,
    )
    assert d["OpenStdin"] is True and d["Cmd"] is None


def test_env_labels_and_files(tmp_path):
    envf = tmp_path / "env"
    envf.write_text("# comment\n\nFROM_FILE=1\nPASSED\n")
    labf = tmp_path / "labels"
    labf.write_text("team=core\n")
    b = body(
        "-e",
        "A=1",
        "-e",
        "HOME",
        "-e",
        "UNSET",
        "--env-file",
        str(envf),
        "-l",
        "x=y",
        "--label-file",
        str(labf),
        "busybox",
        env={"HOME": "/root", "PASSED": "p"},
    )
    assert b["Env"] == ["FROM_FILE=1", "PASSED=p", "A=1", "HOME=/root"]
    assert b["Labels"] == {"team": "core", "x": "y"}


def test_resources_user_workdir_entrypoint_network():
    b = body(
        "-m",
        "512m",
        "--cpus",
        "1.5",
        "--pids-limit",
        "64",
        "-u",
        "1000:1000",
        "-w",
        "/tmp",
        "--entrypoint",
        "",
        "--network",
        "none",
        "--network-alias",
        "svc",
        "--hostname",
        "box",
        "--init",
        "--restart",
        "on-failure:2",
        "busybox",
    )
    hc = b["HostConfig"]
    assert (hc["Memory"], hc["NanoCpus"], hc["PidsLimit"]) == (512 * 1024**2, 1_500_000_000, 64)
    assert (b["User"], b["WorkingDir"], b["Entrypoint"], b["Hostname"]) == ("1000:1000", "/tmp", [""], "box")
    assert hc["NetworkMode"] == "none" and b["NetworkingConfig"]["EndpointsConfig"]["none"]["Aliases"] == [
        "svc"
    ]
    assert hc["Init"] is True
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert body("--entrypoint", "/bin/sh", "busybox")["Entrypoint"] == ["/bin/sh"]


def test_publish_forms():
    assert parse_publish("127.0.0.1:8080:80") == [("80/tcp", {"HostIp": "127.0.0.1", "HostPort": "8080"})]
    assert parse_publish("8080:80/udp") == [("80/udp", {"HostIp": "", "HostPort": "8080"})]
    assert parse_publish("80") == [("80/tcp", {"HostIp": "", "HostPort": ""})]
    assert parse_publish("127.0.0.1::80") == [("80/tcp", {"HostIp": "127.0.0.1", "HostPort": ""})]
    assert parse_publish("[::1]:8080:80") == [("80/tcp", {"HostIp": "::1", "HostPort": "8080"})]
    assert [p for p, _ in parse_publish("8000-8001:80-81")] == ["80/tcp", "81/tcp"]
    assert [b["HostPort"] for _, b in parse_publish("8000-8001:80-81")] == ["8000", "8001"]
    for bad in ("80/xyz", "1:2:3:4", "8000-8002:80-81", "abc"):
        with pytest.raises(InvalidParameter):
            parse_publish(bad)
    b = body("-p", "127.0.0.1:8080:80", "-p", "127.0.0.1:8081:80", "--expose", "90-91", "busybox")
    assert b["ExposedPorts"] == {"80/tcp": {}, "90/tcp": {}, "91/tcp": {}}
    assert len(b["HostConfig"]["PortBindings"]["80/tcp"]) == 2


def test_volumes_mounts_tmpfs_ulimits():
    b = body(
        "-v",
        "data:/data",
        "-v",
        "/anon",
        "--mount",
        "type=bind,src=/a,dst=/b,readonly",
        "--tmpfs",
        "/run:size=1m",
        "--ulimit",
        "nofile=1024:2048",
        "busybox",
    )
    hc = b["HostConfig"]
    assert hc["Binds"] == ["data:/data"] and b["Volumes"] == {"/anon": {}}
    assert hc["Mounts"] == [{"Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": True}]
    assert hc["Tmpfs"] == {"/run": "size=1m"}
    assert hc["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]
    with pytest.raises(InvalidParameter):
        parse_mount("type=bind,src=/a")


def test_attach_flags_and_conflicts():
    b = body("-a", "stdout", "busybox")
    assert (b["AttachStdin"], b["AttachStdout"], b["AttachStderr"]) == (False, True, False)
    with pytest.raises(InvalidParameter):
        body("-a", "stdmiddle", "busybox")
    with pytest.raises(InvalidParameter):
        body("-d", "-a", "stdout", "busybox")


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ('exec: "/no/such/binary": stat /no/such/binary: no such file or directory', 127),
        ('exec: "foo": executable file not found in $PATH', 127),
        ("exec /etc: permission denied", 126),
        ("exec: /etc is a directory", 126),
        ("network testnet not found", 125),
    ],
)
def test_start_error_exit_codes(message, code):
    assert start_error_exit_code(message) == code
