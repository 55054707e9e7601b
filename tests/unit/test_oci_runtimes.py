"""The oci exec driver's pure parts: the runtime table (names, flags, daemon.json) and the spec
as an OCI runtime binary gets it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from berth.daemon.config import parse_args
from berth.daemon.runtimes import Runtimes
from berth.errors import InvalidParameter
from berth.shim import ocispec


def test_known_names_default_and_unknown() -> None:
    table = Runtimes()
    assert table.check("") == table.check(None) == "native"
    assert table.check("runc") == "runc" and table.check("io.containerd.runc.v2") == "io.containerd.runc.v2"
    assert table.binary("native") is None
    runc = table.binary("runc")
    assert runc is not None and runc.path.endswith("/runc") and runc.name == "runc"
    v2 = table.binary("io.containerd.runc.v2")
    assert v2 is not None and v2.path == runc.path and v2.name == "runc"  # the same runc, the same state
    with pytest.raises(InvalidParameter, match="^unknown or invalid runtime name: crun$"):
        table.check("crun")
    assert set(table.info()) == {"native", "runc", "io.containerd.runc.v2"}


def test_added_runtimes_and_the_default() -> None:
    table = Runtimes({"crun": {"path": "/usr/bin/crun", "runtimeArgs": ["--debug"]}}, "crun")
    assert table.check("") == "crun" and table.default == "crun"
    b = table.binary("crun")
    assert b is not None and (b.path, b.args) == ("/usr/bin/crun", ("--debug",))
    assert table.info()["crun"] == {"path": "/usr/bin/crun", "runtimeArgs": ["--debug"]}
    for added, default, text in (
        ({"runc": {"path": "/x"}}, "", "runtime name 'runc' is reserved"),
        ({"a/b": {"path": "/x"}}, "", "invalid runtime name"),
        ({"x": {}}, "", "a path is required"),
        ({"x": {"path": "/x", "runtimeArgs": "--a"}}, "", "runtimeArgs must be a list"),
        ({}, "nope", "specified default runtime 'nope' does not exist"),
    ):
        with pytest.raises(InvalidParameter, match=text):
            Runtimes(added, default)


def test_flags_and_daemon_json(tmp_path: Path) -> None:
    cfg = parse_args(["--add-runtime", "crun=/usr/bin/crun", "--default-runtime", "runc"])
    assert cfg.runtime_table.check("") == "runc" and cfg.runtime_table.check("crun") == "crun"
    f = tmp_path / "daemon.json"
    f.write_text(json.dumps({"runtimes": {"mine": {"path": "/opt/mine", "runtimeArgs": ["--x"]}},
                             "default-runtime": "mine"}))
    cfg = parse_args(["--config-file", str(f)])
    mine = cfg.runtime_table.binary("")
    assert mine is not None and (mine.name, mine.path, mine.args) == ("mine", "/opt/mine", ("--x",))
    with pytest.raises(InvalidParameter, match="expected NAME=PATH"):
        parse_args(["--add-runtime", "crun"])
    with pytest.raises(InvalidParameter, match="given twice"):
        parse_args(["--config-file", str(f), "--add-runtime", "mine=/y"])


def test_runtime_spec_makes_the_cgroup_absolute_and_trims_capabilities() -> None:
    spec = {"process": {"args": ["sh"], "capabilities": {k: ["CAP_CHOWN", "CAP_SYS_RESOURCE"] for k in ocispec.CAP_SETS}},
            "linux": {"cgroupsPath": "berth-x/c1"}, "root": {"path": "/r"}}
    out = ocispec.runtime_spec(spec, "berth-x/c1", {"CAP_CHOWN"})
    assert out["linux"]["cgroupsPath"] == "/berth-x/c1"
    assert all(out["process"]["capabilities"][k] == ["CAP_CHOWN"] for k in ocispec.CAP_SETS)
    assert spec["process"]["capabilities"]["bounding"] == ["CAP_CHOWN", "CAP_SYS_RESOURCE"]  # a copy


def test_exec_process_inherits_the_containers_walls() -> None:
    container = {"user": {"uid": 5, "gid": 5}, "capabilities": {"bounding": ["CAP_KILL", "CAP_BPF"]},
                 "noNewPrivileges": True, "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 9, "hard": 9}]}
    out = ocispec.exec_process({"args": ["id"], "env": ["A=1"], "rlimits": []}, container, {"CAP_KILL"})
    assert out["user"] == {"uid": 5, "gid": 5} and out["noNewPrivileges"] is True
    assert out["capabilities"] == {"bounding": ["CAP_KILL"]} and out["rlimits"][0]["soft"] == 9
    assert out["cwd"] == "/" and out["args"] == ["id"]
    # what the exec says itself wins
    out = ocispec.exec_process({"args": ["id"], "user": {"uid": 1, "gid": 1}}, container, {"CAP_KILL"})
    assert out["user"] == {"uid": 1, "gid": 1}


def test_held_capabilities_and_errors() -> None:
    assert ocispec.held_capabilities("Name:\tx\nCapBnd:\t0000000000000003\n") == {"CAP_CHOWN", "CAP_DAC_OVERRIDE"}
    log = '{"level":"warning","msg":"w"}\n{"level":"error","msg":"runc create failed: exec: \\"x\\": executable file not found in $PATH"}\n'
    msg = ocispec.last_error(log)
    assert msg.startswith("runc create failed") and ocispec.exit_code_for(msg) == 127
    assert ocispec.exit_code_for("exec: \"/etc/passwd\": permission denied") == 126
    assert ocispec.exit_code_for("cgroups in hybrid mode not supported") == 128
    assert ocispec.last_error("plain text error\n") == "plain text error"


def test_console_socket_with_a_path_too_long_goes_in_a_private_directory(tmp_path: Path) -> None:
    """The directory tempfile.mkdtemp made (tempfile is not imported in the fork server): 0700,
    new each time, removed by close()."""
    import stat

    from berth.shim.oci import SUN_PATH_MAX, ConsoleSocket

    deep = tmp_path / ("d" * (SUN_PATH_MAX + 1 - len(str(tmp_path))))
    deep.mkdir()
    one, two = ConsoleSocket(str(deep), "tty.sock"), ConsoleSocket(str(deep), "tty.sock")
    try:
        for sock in (one, two):
            assert sock.tmp.startswith("/tmp/berth-tty-") and sock.path == f"{sock.tmp}/tty.sock"
            assert stat.S_IMODE(Path(sock.tmp).stat().st_mode) == 0o700
            assert stat.S_ISSOCK(Path(sock.path).stat().st_mode)
        assert one.tmp != two.tmp
    finally:
        one.close()
        two.close()
    assert not Path(one.tmp).exists() and not Path(two.tmp).exists()
