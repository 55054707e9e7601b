"""berth-runtime's package: the state store and bundle reading, without root (the commands
themselves run in tests/root/test_libcontainer_runtime*.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from berth.runtime.bundle import cgroup_name, load_bundle, spec_annotations
from berth.runtime.errors import CommandError
from berth.runtime.state import Store, start_time


def test_a_state_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    assert store.ids() == []
    d = Path(store.make("c1"))
    assert d.is_dir() and (d.stat().st_mode & 0o777) == 0o700
    with pytest.raises(CommandError, match="container with id exists: c1"):
        store.make("c1")
    me = {"id": "c1", "pid": os.getpid(), "start_time": start_time(os.getpid()), "bundle": "/b", "rootfs": "/b/r",
          "created": "2026-01-01T00:00:00Z", "cgroup": "berth-runtime-test-none/c1", "annotations": {"a": "b"}}
    store.save(me)
    assert store.load("c1") == me and store.ids() == ["c1"]
    (d / "exec.fifo").touch()
    assert store.status(me) == "created"  # alive, its FIFO not yet written
    (d / "exec.fifo").unlink()
    assert store.status(me) == "running"
    assert store.oci_state("c1")["annotations"] == {"a": "b"} and store.oci_state("c1")["pid"] == os.getpid()
    gone = dict(me, start_time="0")  # the pid now names another process: the container is gone
    assert store.status(gone) == "stopped"
    store.remove("c1")
    assert store.ids() == [] and not d.exists()
    with pytest.raises(CommandError, match="container c1 does not exist"):
        store.load("c1")


@pytest.mark.parametrize("cid", ["", ".", "..", "a/b"])
def test_bad_ids_are_refused(tmp_path: Path, cid: str) -> None:
    with pytest.raises(CommandError, match="invalid container id"):
        Store(tmp_path).dir(cid)


def test_bundle(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"root": {"path": "rootfs"}, "annotations": {"k": "v"}}))
    spec = load_bundle(tmp_path)
    assert spec["root"]["path"] == str((tmp_path / "rootfs").resolve())
    assert cgroup_name(spec, "c1") == "berth-runtime/c1"
    assert cgroup_name({"linux": {"cgroupsPath": "/a/b/"}}, "c1") == "a/b"
    with pytest.raises(CommandError, match="systemd cgroup paths"):
        cgroup_name({"linux": {"cgroupsPath": "system.slice:x:y"}}, "c1")
    assert spec_annotations(spec) == {"k": "v"}
    with pytest.raises(CommandError, match="annotations"):
        spec_annotations({"annotations": {"k": 1}})
    with pytest.raises(CommandError, match="read bundle config"):
        load_bundle(tmp_path / "nope")


def test_the_library_does_not_load_the_command_line() -> None:
    code = ("import sys, berth.libcontainer, berth.libcontainer.process, berth.libcontainer.cgroups; "
            "print(sorted(m for m in sys.modules if m.startswith('berth.runtime')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_command_and_the_module_are_the_same() -> None:
    bindir = Path(sys.executable).parent
    for cmd in ([str(bindir / "berth-runtime")], [sys.executable, "-m", "berth.runtime"]):
        res = subprocess.run([*cmd, "--root", "/nonexistent-berth-runtime", "state", "nope"], capture_output=True,
                             text=True)
        assert res.returncode == 1 and res.stderr == "berth-runtime: container nope does not exist\n"
