"""--device, --device-cgroup-rule, CDI specs and --gpus (berth.drivers.device, berth.daemon.devices)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from berth.daemon import devices
from berth.drivers.device import cdi, requests
from berth.drivers.device.nodes import DeviceError, check_mapping, devices_from_path, parse_cgroup_rule
from berth.errors import InvalidParameter

# A spec shaped like what `nvidia-ctk cdi generate` writes (YAML), with the host's /dev/null
# and /dev/zero standing in for the GPU nodes (no GPU on these machines).
NVIDIA_LIKE = """\
---
cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
- name: "0"
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
      hostPath: /dev/null
- name: GPU-6cf5b1c9-0e03-41b8-9e28-0c1d5a8d3a2f
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
      hostPath: /dev/null
- name: "1"
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia1
      hostPath: /dev/zero
      permissions: rw
- name: all
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
      hostPath: /dev/null
    - path: /dev/nvidia1
      hostPath: /dev/zero
containerEdits:
  env:
  - NVIDIA_VISIBLE_DEVICES=void
  deviceNodes:
  - path: /dev/nvidiactl
    hostPath: /dev/full
  hooks:
  - hookName: createContainer
    path: /usr/bin/nvidia-cdi-hook
    args: [nvidia-cdi-hook, update-ldcache, --folder, /usr/lib/x86_64-linux-gnu]
    env: [NVIDIA_CTK_DEBUG=false]
  mounts:
  - hostPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15
    containerPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15
    options: [ro, nosuid, nodev, bind]
  - hostPath: /run/nvidia-persistenced/socket
    containerPath: /run/nvidia-persistenced/socket
    options: [ro, nosuid, nodev, bind, noexec]
"""


def base_spec() -> dict:
    return {
        "process": {"env": ["PATH=/bin", "NVIDIA_VISIBLE_DEVICES=all"], "user": {"uid": 0, "gid": 0}},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts"},
        ],
        "linux": {"resources": {"devices": [{"allow": False, "access": "rwm"}]}},
    }


@pytest.fixture
def specdir(tmp_path: Path) -> Path:
    (tmp_path / "nvidia.yaml").write_text(NVIDIA_LIKE)
    return tmp_path


def test_nvidia_like_spec_edits(specdir: Path) -> None:
    registry = cdi.Registry([specdir])
    assert registry.errors == []
    assert "nvidia.com/gpu=all" in registry.names() and "nvidia.com/gpu=1" in registry.names()
    spec = cdi.apply(base_spec(), registry.resolve(["nvidia.com/gpu=all"]))
    # env: the spec's value replaces the container's own
    assert spec["process"]["env"] == ["PATH=/bin", "NVIDIA_VISIBLE_DEVICES=void"]
    # device nodes: numbers, type and mode filled in from the host node
    nodes = {d["path"]: d for d in spec["linux"]["devices"]}
    null, zero, full = (os.stat(p) for p in ("/dev/null", "/dev/zero", "/dev/full"))
    assert nodes["/dev/nvidia0"] == {
        "path": "/dev/nvidia0", "type": "c", "major": os.major(null.st_rdev), "minor": os.minor(null.st_rdev),
        "fileMode": null.st_mode & 0o7777,
    }
    assert (nodes["/dev/nvidia1"]["major"], nodes["/dev/nvidia1"]["minor"]) == (os.major(zero.st_rdev), os.minor(zero.st_rdev))
    assert (nodes["/dev/nvidiactl"]["major"], nodes["/dev/nvidiactl"]["minor"]) == (os.major(full.st_rdev), os.minor(full.st_rdev))
    # each node allowed in the device cgroup, after the spec's own rules
    rules = spec["linux"]["resources"]["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"} in rules
    # mounts: bind mounts, sorted by depth after the existing ones
    dests = [m["destination"] for m in spec["mounts"]]
    assert dests[:2] == ["/proc", "/dev"] and dests[-1] == "/usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15"
    lib = spec["mounts"][-1]
    assert lib["type"] == "bind" and lib["options"] == ["ro", "nosuid", "nodev", "bind"]
    # hooks: in their phase, with args and env
    assert spec["hooks"] == {
        "createContainer": [{
            "path": "/usr/bin/nvidia-cdi-hook",
            "args": ["nvidia-cdi-hook", "update-ldcache", "--folder", "/usr/lib/x86_64-linux-gnu"],
            "env": ["NVIDIA_CTK_DEBUG=false"],
        }]
    }


def test_permissions_uid_and_replacing(specdir: Path) -> None:
    spec = base_spec()
    spec["process"]["user"] = {"uid": 1000, "gid": 1000}
    spec["linux"]["devices"] = [{"path": "/dev/nvidia1", "type": "c", "major": 9, "minor": 9}]
    cdi.apply(spec, cdi.Registry([specdir]).resolve(["nvidia.com/gpu=1"]))
    nodes = [d for d in spec["linux"]["devices"] if d["path"] == "/dev/nvidia1"]
    assert len(nodes) == 1 and nodes[0]["major"] == 1 and nodes[0]["minor"] == 5
    assert nodes[0]["uid"] == 1000 and nodes[0]["gid"] == 1000  # a non-root user owns its devices
    assert {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rw"} in spec["linux"]["resources"]["devices"]


def test_common_edits_once_and_unknown_devices(specdir: Path) -> None:
    registry = cdi.Registry([specdir])
    edits = registry.resolve(["nvidia.com/gpu=0", "nvidia.com/gpu=1"])
    assert len(edits) == 3  # the spec's common edits, then each device's
    with pytest.raises(DeviceError, match="unresolvable CDI devices nvidia.com/gpu=7"):
        registry.resolve(["nvidia.com/gpu=7"])
    with pytest.raises(DeviceError, match="invalid CDI device name"):
        registry.resolve(["gpu0"])


def test_later_directory_wins_and_bad_files_are_skipped(tmp_path: Path) -> None:
    etc, run = tmp_path / "etc", tmp_path / "run"
    etc.mkdir()
    run.mkdir()
    doc = {"cdiVersion": "0.6.0", "kind": "vendor.com/dev", "devices": [{"name": "x", "containerEdits": {"env": ["A=etc"]}}]}
    (etc / "v.json").write_text(json.dumps(doc))
    doc["devices"][0]["containerEdits"]["env"] = ["A=run"]
    (run / "v.json").write_text(json.dumps(doc))
    (run / "bad.json").write_text("{not json")
    (run / "bad2.yaml").write_text("cdiVersion: 0.6.0\nkind: vendor.com/y\ndevices:\n- name: z\n  containerEdits:\n    deviceNodes:\n    - path: relative\n")
    (run / "notes.txt").write_text("ignored")
    registry = cdi.Registry([etc, run])
    spec = cdi.apply(base_spec(), registry.resolve(["vendor.com/dev=x"]))
    assert "A=run" in spec["process"]["env"]
    assert len(registry.errors) == 2
    assert any("bad.json: not valid JSON" in e for e in registry.errors)
    assert any("deviceNodes[0].path: 'relative' is not an absolute path" in e for e in registry.errors)


@pytest.mark.parametrize(
    ("doc", "text"),
    [
        ({"kind": "a.com/b", "devices": [{"name": "x"}]}, "cdiVersion: missing"),
        ({"cdiVersion": "0.6.0", "kind": "nodomain", "devices": [{"name": "x"}]}, "is not vendor.com/class"),
        ({"cdiVersion": "0.6.0", "kind": "a.com/b", "devices": []}, "defines no device"),
        ({"cdiVersion": "0.6.0", "kind": "a.com/b", "devices": [{"name": "x"}, {"name": "x"}]}, "defined twice"),
        ({"cdiVersion": "0.6.0", "kind": "a.com/b", "devices": [{"name": "x", "containerEdits": {"env": ["=v"]}}]},
         "is not NAME=value"),
        ({"cdiVersion": "0.6.0", "kind": "a.com/b",
          "devices": [{"name": "x", "containerEdits": {"hooks": [{"hookName": "later", "path": "/h"}]}}]},
         "'later' is not one of"),
        ({"cdiVersion": "0.6.0", "kind": "a.com/b",
          "devices": [{"name": "x", "containerEdits": {"deviceNodes": [{"path": "/dev/x", "permissions": "rx"}]}}]},
         "'rx' is not made of r, w and m"),
        ({"cdiVersion": "0.6.0", "kind": "a.com/b",
          "devices": [{"name": "x", "containerEdits": {"mounts": [{"hostPath": "/a", "containerPath": "/b", "options": "ro"}]}}]},
         "expected a list"),
    ],
)
def test_malformed_specs_are_refused_by_field(doc: dict, text: str) -> None:
    with pytest.raises(cdi.SpecError, match=text):
        cdi.parse_spec(doc, "/etc/cdi/x.json")


def test_gpu_requests_become_cdi_names() -> None:
    offered = ["nvidia.com/gpu=0", "nvidia.com/gpu=1", "nvidia.com/gpu=GPU-abc", "nvidia.com/gpu=all", "vendor.com/dev=x"]
    gpu = [["gpu"]]
    assert requests.cdi_names([{"Count": -1, "Capabilities": gpu}], offered) == ["nvidia.com/gpu=all"]
    assert requests.cdi_names([{"Count": 2, "Capabilities": gpu}], offered) == ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]
    assert requests.cdi_names([{"DeviceIDs": ["GPU-abc", "0"], "Capabilities": [["gpu", "compute"]]}], offered) == [
        "nvidia.com/gpu=GPU-abc", "nvidia.com/gpu=0"]
    both = [{"Driver": "cdi", "DeviceIDs": ["vendor.com/dev=x"]}, {"Driver": "nvidia", "Count": -1, "Capabilities": gpu}]
    assert requests.cdi_names(both, offered) == ["vendor.com/dev=x", "nvidia.com/gpu=all"]
    # without "all" in the spec, --gpus all is every GPU it defines
    assert requests.cdi_names([{"Count": -1, "Capabilities": gpu}], offered[:2]) == ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]
    with pytest.raises(DeviceError, match="could not select 3 GPUs"):
        requests.cdi_names([{"Count": 3, "Capabilities": gpu}], offered)
    # no GPU in any spec, or another capability: dockerd's text
    with pytest.raises(DeviceError, match=r'could not select device driver "" with capabilities: \[\[gpu\]\]'):
        requests.cdi_names([{"Count": -1, "Capabilities": gpu}], ["vendor.com/dev=x"])
    with pytest.raises(DeviceError, match=r'device driver "acme" with capabilities: \[\[tpu fast\]\]'):
        requests.cdi_names([{"Driver": "acme", "Capabilities": [["tpu", "fast"]]}], offered)


def test_request_checks_at_create() -> None:
    with pytest.raises(InvalidParameter, match="cannot set both Count and DeviceIDs"):
        requests.check([{"Count": 1, "DeviceIDs": ["0"], "Capabilities": [["gpu"]]}])
    with pytest.raises(InvalidParameter, match="unexpected count in CDI device request"):
        requests.check([{"Driver": "cdi", "Count": -1}])
    with pytest.raises(InvalidParameter, match="invalid CDI device name 'gpu0'"):
        requests.check([{"Driver": "cdi", "DeviceIDs": ["gpu0"]}])
    requests.check([{"Driver": "cdi", "DeviceIDs": ["vendor.com/dev=x"]}])


def test_cgroup_rules_and_mappings() -> None:
    assert parse_cgroup_rule("a *:* rwm") == {"allow": True, "type": "a", "access": "rwm"}
    assert parse_cgroup_rule("c 10:200 m") == {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "m"}
    for bad in ("c 1:x rwm", "x 1:2 r", "c 1:2 rwx", "c 1:2", "c  1:2 r"):
        with pytest.raises(InvalidParameter, match="invalid device cgroup rule format"):
            parse_cgroup_rule(bad)
    assert check_mapping({"PathOnHost": "/dev/fuse"}) == ("/dev/fuse", "/dev/fuse", "rwm")
    with pytest.raises(InvalidParameter, match="PathInContainer 'rel' is not an absolute path"):
        check_mapping({"PathOnHost": "/dev/null", "PathInContainer": "rel"})
    with pytest.raises(InvalidParameter, match="CgroupPermissions 'xyz'"):
        check_mapping({"PathOnHost": "/dev/null", "PathInContainer": "/dev/n", "CgroupPermissions": "xyz"})


def test_devices_from_host_paths(tmp_path: Path) -> None:
    nodes, rules = devices_from_path("/dev/null", "/dev/mynull", "r")
    assert nodes[0]["path"] == "/dev/mynull" and (nodes[0]["major"], nodes[0]["minor"]) == (1, 3)
    assert rules == [{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"}]
    # a symlink on the host is followed; a directory gives the nodes inside it
    (tmp_path / "link").symlink_to("/dev/zero")
    assert devices_from_path(str(tmp_path / "link"), "/dev/z", "rwm")[0][0]["minor"] == 5
    if os.path.isdir("/dev/pts") and any(n.isdigit() for n in os.listdir("/dev/pts")):
        found, _ = devices_from_path("/dev/pts", "/dev/hostpts", "rw")
        assert found and all(n["path"].startswith("/dev/hostpts/") for n in found)
    with pytest.raises(DeviceError, match='adding custom device "/nonexistent": no such file or directory'):
        devices_from_path("/nonexistent", "/dev/x", "rwm")
    with pytest.raises(DeviceError, match='adding custom device "/etc/hostname": not a device node'):
        devices_from_path("/etc/hostname", "/dev/x", "rwm")


def test_daemon_apply_adds_nodes_rules_and_cdi(specdir: Path) -> None:
    host = {
        "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull", "CgroupPermissions": "r"}],
        "DeviceCgroupRules": ["c 1:11 rwm"],
        "DeviceRequests": [{"Driver": "cdi", "DeviceIDs": ["nvidia.com/gpu=1"]}],
    }
    devices.check(host)
    spec = devices.apply(host, base_spec(), [str(specdir)])
    paths = [d["path"] for d in spec["linux"]["devices"]]
    assert paths == ["/dev/mynull", "/dev/nvidiactl", "/dev/nvidia1"]
    access = [(r.get("major"), r.get("minor"), r["access"]) for r in spec["linux"]["resources"]["devices"][1:]]
    assert access[:2] == [(1, 3, "r"), (1, 11, "rwm")]
    # privileged: the host's nodes come from build_spec; --device is ignored, CDI still applies
    spec = devices.apply({**host, "Privileged": True}, base_spec(), [str(specdir)])
    assert [d["path"] for d in spec["linux"]["devices"]] == ["/dev/nvidiactl", "/dev/nvidia1"]


def test_block_io_throttles_from_host_paths() -> None:
    host = {
        "BlkioDeviceReadBps": [{"Path": "/dev/null", "Rate": 1048576}],
        "BlkioDeviceWriteIOps": [{"Path": "/dev/zero", "Rate": 200}],
        "BlkioWeightDevice": [{"Path": "/dev/null", "Weight": 300}],
    }
    assert devices.block_io_throttles(host) == {
        "throttleReadBpsDevice": [{"major": 1, "minor": 3, "rate": 1048576}],
        "throttleWriteIOPSDevice": [{"major": 1, "minor": 5, "rate": 200}],
        "weightDevice": [{"major": 1, "minor": 3, "weight": 300}],
    }
    spec = devices.apply(host, base_spec())
    assert spec["linux"]["resources"]["blockIO"]["throttleReadBpsDevice"][0]["rate"] == 1048576
    with pytest.raises(DeviceError, match="stat /dev/nonexistent: no such file or directory"):
        devices.block_io_throttles({"BlkioDeviceReadBps": [{"Path": "/dev/nonexistent", "Rate": 1}]})
