"""--device, --device-cgroup-rule, CDI devices and --gpus through the real docker CLI.

The comparisons with dockerd are in test_isolation_conformance.py; here: CDI (dockerd 20.10 has
none), bad input, and what the device cgroup does to a process. There is no GPU on these
machines: a fake CDI spec exposes /dev/null and /dev/zero as ``vendor.com/dev`` and
``nvidia.com/gpu`` devices, which is all a vendor spec is to the engine.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import harness


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r


@pytest.fixture
def cdi_berthd(
    berthd_factory: Callable[..., harness.Berthd], busybox_tar: Path, tmp_path: Path
) -> tuple[harness.Berthd, Path]:
    """berthd reading CDI specs from two directories of the test's own (etc, then run)."""
    etc, run = tmp_path / "etc-cdi", tmp_path / "run-cdi"
    etc.mkdir()
    run.mkdir()
    shared = tmp_path / "vendor-share"
    shared.mkdir()
    (shared / "firmware.txt").write_text("vendor data\n")
    (etc / "vendor.json").write_text(json.dumps({
        "cdiVersion": "0.6.0",
        "kind": "vendor.com/dev",
        "devices": [
            {"name": "x", "containerEdits": {
                "deviceNodes": [{"path": "/dev/vendor-x", "hostPath": "/dev/null", "permissions": "rw"}],
                "env": ["VENDOR_DEVICE=x"]}},
            {"name": "y", "containerEdits": {"deviceNodes": [{"path": "/dev/vendor-y", "hostPath": "/dev/zero"}]}},
        ],
        "containerEdits": {
            "env": ["VENDOR_SDK=1"],
            "mounts": [{"hostPath": str(shared), "containerPath": "/opt/vendor", "options": ["ro", "bind"]}],
            "additionalGids": [4242],
        },
    }))
    (run / "nvidia.yaml").write_text(
        "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n"
        "- name: '0'\n  containerEdits:\n    deviceNodes:\n    - {path: /dev/nvidia0, hostPath: /dev/null}\n"
        "- name: '1'\n  containerEdits:\n    deviceNodes:\n    - {path: /dev/nvidia1, hostPath: /dev/zero}\n"
        "- name: all\n  containerEdits:\n    deviceNodes:\n    - {path: /dev/nvidia0, hostPath: /dev/null}\n"
        "    - {path: /dev/nvidia1, hostPath: /dev/zero}\n"
        "containerEdits:\n  env: [NVIDIA_VISIBLE_DEVICES=void]\n"
        "  deviceNodes:\n  - {path: /dev/nvidiactl, hostPath: /dev/full}\n"
    )
    d = berthd_factory(extra_args=("--cdi-spec-dir", str(etc), "--cdi-spec-dir", str(run)))
    d.import_image(busybox_tar)
    return d, shared


def test_cdi_device_through_the_docker_cli(cdi_berthd: tuple[harness.Berthd, Path]) -> None:
    d, _ = cdi_berthd
    script = "ls -ln /dev/vendor-x | cut -c1-10; echo $VENDOR_DEVICE $VENDOR_SDK; cat /opt/vendor/firmware.txt; id -G;" \
             " echo hi > /dev/vendor-x && echo written; touch /opt/vendor/x 2>/dev/null || echo ro-mount"
    r = ok(d.docker("run", "--rm", "--device", "vendor.com/dev=x", "busybox", "sh", "-c", script))
    assert r.stdout.split("\n") == ["crw-rw-rw-", "x 1", "vendor data", "0 10 4242", "written", "ro-mount", ""], r.stdout
    # two devices of one spec: both nodes, the common edits once
    r = ok(d.docker("run", "--rm", "--device", "vendor.com/dev=x", "--device", "vendor.com/dev=y", "busybox",
                    "sh", "-c", "ls /dev | grep vendor; head -c 3 /dev/vendor-y | od -An -tx1"))
    assert r.stdout.split() == ["vendor-x", "vendor-y", "00", "00", "00"]
    # the record keeps the request as the CLI sent it
    cid = ok(d.docker("create", "--device", "vendor.com/dev=y", "busybox", "true")).stdout.strip()
    info = json.loads(ok(d.docker("inspect", cid)).stdout)[0]
    assert info["HostConfig"]["DeviceRequests"] == [
        {"Driver": "cdi", "Count": 0, "DeviceIDs": ["vendor.com/dev=y"], "Capabilities": None, "Options": None}]


def test_gpus_all_through_cdi(cdi_berthd: tuple[harness.Berthd, Path]) -> None:
    d, _ = cdi_berthd
    r = ok(d.docker("run", "--rm", "--gpus", "all", "busybox", "sh", "-c", "ls /dev | grep nvidia; echo $NVIDIA_VISIBLE_DEVICES"))
    assert r.stdout.split() == ["nvidia0", "nvidia1", "nvidiactl", "void"]
    r = ok(d.docker("run", "--rm", "--gpus", "1", "busybox", "sh", "-c", "ls /dev | grep nvidia"))
    assert r.stdout.split() == ["nvidia0", "nvidiactl"]
    r = ok(d.docker("run", "--rm", "--gpus", "device=1", "busybox", "sh", "-c", "ls /dev | grep nvidia"))
    assert r.stdout.split() == ["nvidia1", "nvidiactl"]
    r = d.docker("run", "--rm", "--gpus", "3", "busybox", "true")
    assert r.returncode == 125 and "could not select 3 GPUs" in r.stderr, r.stderr


def test_unknown_cdi_device_and_no_gpu(berthd: harness.Berthd, busybox_image: str, tmp_path: Path) -> None:
    # this daemon reads the default /etc/cdi and /var/run/cdi, which this machine does not have
    r = berthd.docker("run", "--rm", "--device", "vendor.com/dev=nope", "busybox", "true")
    assert r.returncode == 125 and "unresolvable CDI devices vendor.com/dev=nope" in r.stderr, r.stderr
    r = berthd.docker("run", "--rm", "--gpus", "all", "busybox", "true")
    assert r.returncode == 125 and 'could not select device driver "" with capabilities: [[gpu]]' in r.stderr, r.stderr


def test_device_permissions_and_rules(berthd: harness.Berthd, busybox_image: str) -> None:
    """The device cgroup lets a process open a node only as the rule says."""
    r = ok(berthd.docker("run", "--rm", "--device", "/dev/zero:/dev/myzero:r", "--device-cgroup-rule", "c 1:9 r",
                         "busybox", "sh", "-c",
                         "head -c1 /dev/myzero >/dev/null && echo read; : > /dev/myzero && echo written;"
                         " mknod /dev/u c 1 9 && head -c1 /dev/u >/dev/null && echo rule-read"))
    # /dev/zero (1:5) is one of the default devices (rwm), so the node is writable whatever :r says,
    # as with dockerd; 1:9 (urandom) too; the rule adds nothing they did not have
    assert r.stdout.split() == ["read", "written", "rule-read"]
    r = berthd.docker("run", "--rm", "--device", "/dev/full:/dev/f:r", "busybox", "sh", "-c", "mknod /dev/k c 1 11 && cat /dev/k")
    assert r.returncode != 0 and "Operation not permitted" in r.stderr, r.stderr  # 1:11 is not allowed


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ({"DeviceCgroupRules": ["c 1:x rwm"]}, "invalid device cgroup rule format: 'c 1:x rwm'"),
        ({"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "rel", "CgroupPermissions": "rwm"}]},
         "PathInContainer 'rel' is not an absolute path"),
        ({"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/n", "CgroupPermissions": "xyz"}]},
         "CgroupPermissions 'xyz' is not made of r, w and m"),
        ({"DeviceRequests": [{"Driver": "cdi", "DeviceIDs": ["gpu0"]}]}, "invalid CDI device name 'gpu0'"),
        ({"DeviceRequests": [{"Driver": "cdi", "Count": -1}]}, "unexpected count in CDI device request"),
    ],
)
def test_bad_device_input_is_a_400_and_creates_nothing(
    berthd: harness.Berthd, busybox_image: str, host: dict, message: str
) -> None:
    status, body = berthd.api("POST", "/containers/create?name=baddev", {"Image": busybox_image, "HostConfig": host})
    assert status == 400 and message in body["message"], body
    assert ok(berthd.docker("ps", "-aq")).stdout == ""


def test_missing_host_device_fails_the_start_as_dockerd(berthd: harness.Berthd, busybox_image: str) -> None:
    r = berthd.docker("run", "--rm", "--device", "/dev/nonexistent-dev", "busybox", "true")
    assert r.returncode == 127, r.stderr  # the CLI's reading of "no such file or directory", as with dockerd
    assert 'error gathering device information while adding custom device "/dev/nonexistent-dev": no such file or directory' in r.stderr
    r = berthd.docker("run", "--rm", "--device", "/etc/hostname:/dev/x", "busybox", "true")
    assert r.returncode == 125 and "not a device node" in r.stderr, r.stderr
    assert ok(berthd.docker("ps", "-aq")).stdout == ""  # --rm removed them


def test_cdi_hooks_run_in_the_container(berthd_factory: Callable[..., harness.Berthd], busybox_tar: Path,
                                        tmp_path: Path) -> None:
    """A CDI createContainer hook (NVIDIA's update-ldcache and create-symlinks are such) runs with
    the container's OCI state on stdin, after its mounts and before pivot_root."""
    specs, out = tmp_path / "cdi", tmp_path / "out"
    specs.mkdir()
    out.mkdir()
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\ncat > {out}/state.json\necho \"$@\" > {out}/args\n")
    hook.chmod(0o755)
    tmp_path.chmod(0o755)
    edits = {"deviceNodes": [{"path": "/dev/vendor-x", "hostPath": "/dev/null"}],
             "hooks": [{"hookName": "createContainer", "path": str(hook), "args": ["hook.sh", "update-ldcache", "--folder", "/lib"]}]}
    (specs / "v.json").write_text(json.dumps({"cdiVersion": "0.6.0", "kind": "vendor.com/dev", "devices": [
        {"name": "x", "containerEdits": edits},
        {"name": "late", "containerEdits": {"hooks": [{"hookName": "poststop", "path": str(hook)}]}},
    ]}))
    d = berthd_factory(extra_args=("--cdi-spec-dir", str(specs)))
    d.import_image(busybox_tar)
    cid = ok(d.docker("run", "-d", "--device", "vendor.com/dev=x", "busybox", "sleep", "60")).stdout.strip()
    state = json.loads((out / "state.json").read_text())
    assert state["id"] == cid and state["status"] == "created" and state["pid"] > 0 and state["bundle"]
    assert (out / "args").read_text() == "update-ldcache --folder /lib\n"


def test_cdi_hooks_of_every_phase_run_at_their_moment(berthd_factory: Callable[..., harness.Berthd],
                                                      busybox_tar: Path, tmp_path: Path) -> None:
    """A CDI device with a hook in each of the six OCI phases, through `docker run --device`: each
    runs once, in the runtime spec's order, with the state of its phase; prestart and
    createRuntime see the init before pivot_root (its root still the host's), startContainer
    runs inside the container before the process; a failing prestart hook fails the run with its
    name and leaves nothing running."""
    specs, out = tmp_path / "cdi", tmp_path / "out"
    specs.mkdir()
    out.mkdir()
    tmp_path.chmod(0o755)
    log = out / "order.log"
    hook = tmp_path / "hook.sh"
    # PHASE: its state on stdin, saved; then a line: phase, status, pid, /proc/<pid>/root
    hook.write_text(
        "#!/bin/sh\n"
        f"cat > {out}/$1.json\n"
        f"p=$(sed 's/.*\"pid\": *\\([0-9]*\\).*/\\1/' {out}/$1.json)\n"
        f"s=$(sed 's/.*\"status\": *\"\\([a-z]*\\)\".*/\\1/' {out}/$1.json)\n"
        f"echo $1 $s $p $(readlink /proc/$p/root 2>/dev/null || echo -) >> {log}\n"
    )
    hook.chmod(0o755)
    hooks = [{"hookName": p, "path": str(hook), "args": ["hook.sh", p]}
             for p in ("prestart", "createRuntime", "createContainer", "poststart", "poststop")]
    hooks.insert(3, {"hookName": "startContainer", "path": "/bin/sh",
                     "args": ["sh", "-c", "echo startContainer $(cat | grep -c running) > /inside.log"]})
    failing = [{"hookName": "prestart", "path": "/bin/false"}]
    (specs / "v.json").write_text(json.dumps({"cdiVersion": "0.6.0", "kind": "vendor.com/dev", "devices": [
        {"name": "all", "containerEdits": {"hooks": hooks}},
        {"name": "bad", "containerEdits": {"hooks": failing}},
    ]}))
    d = berthd_factory(extra_args=("--cdi-spec-dir", str(specs)))
    d.import_image(busybox_tar)
    r = ok(d.docker("run", "--name", "hooked", "--device", "vendor.com/dev=all", "busybox", "cat", "/inside.log"))
    assert r.stdout == "startContainer 1\n"  # ran in the container, before the process, state "running"
    cid = ok(d.docker("inspect", "-f", "{{.Id}}", "hooked")).stdout.strip()
    ok(d.docker("rm", "hooked"))
    deadline = time.monotonic() + 10  # poststop runs as the container's monitor deletes it
    while "poststop" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, log.read_text() if log.exists() else "no hook ran"
        time.sleep(0.05)
    lines = [line.split() for line in log.read_text().splitlines()]
    assert [w[:2] for w in lines] == [["prestart", "created"], ["createRuntime", "created"],
                                      ["createContainer", "created"], ["poststart", "running"],
                                      ["poststop", "stopped"]], lines
    init = lines[0][2]
    assert int(init) > 0 and all(w[2] == init for w in lines[:4]) and lines[4][2] == "0"
    assert lines[0][3] == lines[1][3] == "/"  # before pivot_root: the init's root is the host's
    for phase in ("prestart", "createRuntime", "createContainer", "poststart", "poststop"):
        state = json.loads((out / f"{phase}.json").read_text())
        assert state["id"] == cid and state["bundle"], (phase, state)
    r = d.docker("run", "--rm", "--device", "vendor.com/dev=bad", "busybox", "true")
    assert r.returncode != 0 and "prestart hook /bin/false" in r.stderr, r.stderr
    assert ok(d.docker("ps", "-aq")).stdout == ""
