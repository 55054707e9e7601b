"""Create bodies checked as dockerd 20.10 checks them: Go's decoding errors for a wrong shape
(texts captured from the reference dockerd), then the settings (texts from dockerd and runc)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from berth.daemon import createchecks, createschema, platforms, specconv, storageopt
from berth.errors import InvalidParameter, Unimplemented
from berth.libcontainer import sysctl

GO = "json: cannot unmarshal "
SHAPES: list[tuple[Any, str]] = [
    ({"HostConfig": {"Memory": 99999999999999999999999}},
     "number 99999999999999999999999 into Go struct field HostConfig.HostConfig.Memory of type int64"),
    ({"HostConfig": {"Memory": 9223372036854775808}},
     "number 9223372036854775808 into Go struct field HostConfig.HostConfig.Memory of type int64"),
    ({"HostConfig": {"Memory": 1.5}}, "number 1.5 into Go struct field HostConfig.HostConfig.Memory of type int64"),
    ({"HostConfig": {"Memory": "1"}}, "string into Go struct field HostConfig.HostConfig.Memory of type int64"),
    ({"HostConfig": {"CapAdd": [1]}}, "array into Go struct field HostConfig.HostConfig.CapAdd of type string"),
    ({"HostConfig": {"Ulimits": ["a"]}}, "string into Go struct field HostConfig.HostConfig.Ulimits of type units.Ulimit"),
    ({"HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": "a"}]}},
     "string into Go struct field Ulimit.HostConfig.Ulimits.Soft of type int64"),
    ({"HostConfig": {"BlkioWeight": 70000}}, "number 70000 into Go struct field HostConfig.HostConfig.BlkioWeight of type uint16"),
    ({"HostConfig": {"BlkioWeight": -1}}, "number -1 into Go struct field HostConfig.HostConfig.BlkioWeight of type uint16"),
    ({"HostConfig": {"ConsoleSize": [-1, 2]}}, "number -1 into Go struct field HostConfig.HostConfig.ConsoleSize of type uint"),
    ({"HostConfig": {"Sysctls": {"a": 1}}}, "number into Go struct field HostConfig.HostConfig.Sysctls of type string"),
    ({"HostConfig": {"Mounts": [1]}}, "number into Go struct field HostConfig.HostConfig.Mounts of type mount.Mount"),
    ({"HostConfig": {"RestartPolicy": {"MaximumRetryCount": 1e100}}},
     "number 1e100 into Go struct field RestartPolicy.HostConfig.RestartPolicy.MaximumRetryCount of type int"),
    ({"HostConfig": []}, "array into Go struct field ContainerConfigWrapper.HostConfig of type container.HostConfig"),
    ({"HostConfig": {"Binds": "a"}}, "string into Go struct field HostConfig.HostConfig.Binds of type []string"),
    ({"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": 1}]}}},
     "number into Go struct field PortBinding.HostConfig.PortBindings.HostPort of type string"),
    ({"HostConfig": {"Devices": [{"PathOnHost": 1}]}},
     "number into Go struct field DeviceMapping.HostConfig.Devices.PathOnHost of type string"),
    ({"HostConfig": {"LogConfig": {"Config": {"a": 1}}}},
     "number into Go struct field LogConfig.HostConfig.LogConfig.Config of type string"),
    ({"NetworkingConfig": {"EndpointsConfig": {"a": 1}}},
     "number into Go struct field NetworkingConfig.NetworkingConfig.EndpointsConfig of type network.EndpointSettings"),
    ({"Env": [1]}, "number into Go struct field ContainerConfigWrapper.Env of type string"),
    ({"Env": "a"}, "string into Go struct field ContainerConfigWrapper.Env of type []string"),
    ({"StopTimeout": 1e30}, "number 1e30 into Go struct field ContainerConfigWrapper.StopTimeout of type int"),
    ({"Tty": "x"}, "string into Go struct field ContainerConfigWrapper.Tty of type bool"),
    ({"Labels": {"a": 1}}, "number into Go struct field ContainerConfigWrapper.Labels of type string"),
    ({"Cmd": [1]}, "array into Go struct field ContainerConfigWrapper.Cmd of type string"),
    ({"Cmd": {}}, "object into Go struct field ContainerConfigWrapper.Cmd of type string"),
    ({"ExposedPorts": {"80/tcp": 1}}, "number into Go struct field ContainerConfigWrapper.ExposedPorts of type struct {}"),
    ({"Volumes": {"/a": 1}}, "number into Go struct field ContainerConfigWrapper.Volumes of type struct {}"),
    ([], "array into Go value of type runconfig.ContainerConfigWrapper"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "message"), SHAPES)
def test_shapes_have_gos_errors(body: Any, message: str) -> None:
    if isinstance(body, dict):
        body = {"Image": "busybox", **body}
    with pytest.raises(InvalidParameter) as err:
        createschema.check(body)
    assert err.value.message == GO + message


def test_shapes_that_go_accepts() -> None:
    for body in (
        {"HostConfig": {"Memory": 9223372036854775807, "CapDrop": [None], "CapAdd": "NET_ADMIN"}},
        {"Volumes": {"/a": {"x": 1}}, "Cmd": "echo hi", "HostConfig": None, "Unknown": [1]},
        {"HostConfig": {"ConsoleSize": [1, 2, -3]}},  # a Go array drops what does not fit
    ):
        createschema.check({"Image": "busybox", **body})


SETTINGS: list[tuple[dict[str, Any], str]] = [
    ({"HostConfig": {"Memory": -5}}, "Minimum memory limit allowed is 6MB"),
    ({"HostConfig": {"Memory": 5}}, "Minimum memory limit allowed is 6MB"),
    ({"HostConfig": {"Memory": 10000000, "MemorySwap": 5000000}},
     "Minimum memoryswap limit should be larger than memory limit, see usage"),
    ({"HostConfig": {"MemorySwap": 50000000}},
     "You should always set the Memory limit when using Memoryswap limit, see usage"),
    ({"HostConfig": {"MemorySwappiness": 200}}, "Invalid value: 200, valid memory swappiness range is 0-100"),
    ({"HostConfig": {"MemoryReservation": 5}}, "Minimum memory reservation allowed is 6MB"),
    ({"HostConfig": {"KernelMemory": 5}}, "Minimum kernel memory limit allowed is 6MB"),
    ({"HostConfig": {"CpuPeriod": 5}}, "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"),
    ({"HostConfig": {"CpuQuota": 5}}, "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
    ({"HostConfig": {"NanoCpus": 1000000000, "CpuPeriod": 100000}},
     "Conflicting options: Nano CPUs and CPU Period cannot both be set"),
    ({"HostConfig": {"OomScoreAdj": 5000}}, "Invalid value 5000, range for oom score adj is [-1000, 1000]"),
    ({"HostConfig": {"ShmSize": -1}}, "SHM size can not be less than 0"),
    ({"HostConfig": {"IOMaximumBandwidth": 5}},
     "Invalid QoS settings: linux does not support configuration of maximum bandwidth"),
    ({"HostConfig": {"CapAdd": ["CAP_FOO"]}}, 'invalid CapAdd: unknown capability: "CAP_FOO"'),
    ({"HostConfig": {"CapAdd": ["foo"]}}, 'invalid CapAdd: unknown capability: "CAP_FOO"'),
    ({"HostConfig": {"CapDrop": [None]}}, 'invalid CapDrop: unknown capability: "CAP_"'),
    ({"Env": [""]}, "invalid environment variable: "),
    ({"Env": ["="]}, "invalid environment variable: ="),
    ({"Env": ["=foo"]}, "invalid environment variable: =foo"),
    ({"WorkingDir": "x"}, "the working directory 'x' is invalid, it needs to be an absolute path"),
    ({"Healthcheck": {"Interval": 1}}, "Interval in Healthcheck cannot be less than 1ms"),
    ({"HostConfig": {"Links": ["a:b"], "NetworkMode": "host"}},
     "conflicting options: host type networking can't be used with links. This would result in undefined behavior"),
    ({"HostConfig": {"Links": ["a:b:c"]}}, "bad format for links: a:b:c"),
    ({"HostConfig": {"NetworkMode": "host", "Sysctls": {"net.ipv4.ip_forward": "1"}}},
     'sysctl "net.ipv4.ip_forward" not allowed in host network namespace'),
    ({"HostConfig": {"Sysctls": {"kernel.printk_ratelimit_burst": "10"}}},
     'sysctl "kernel.printk_ratelimit_burst" is not in a separate kernel namespace'),
    ({"HostConfig": {"Sysctls": {"kernel.hostname": "x"}}},
     'sysctl "kernel.hostname" is not allowed as it conflicts with the OCI "hostname" field'),
    ({"HostConfig": {"IpcMode": "host", "Sysctls": {"kernel.shmmax": "1000"}}},
     'sysctl "kernel.shmmax" is not allowed in the hosts ipc namespace'),
    ({"HostConfig": {"UTSMode": "host", "Sysctls": {"kernel.domainname": "x"}}},
     'sysctl "kernel.domainname" is not in a separate kernel namespace'),
    ({"HostConfig": {"Sysctls": {"net.ipv4.//.x": "1"}}}, "sysctl 'net.ipv4.//.x' is not a valid sysctl name"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "message"), SETTINGS)
def test_settings_have_dockerds_errors(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidParameter) as err:
        createchecks.verify({"Image": "busybox", **body})
    assert err.value.message == message


def test_settings_that_dockerd_accepts() -> None:
    for body in (
        {"HostConfig": {"Memory": 9223372036854775807, "MemorySwap": -1, "CpuShares": -5, "PidsLimit": -5}},
        {"HostConfig": {"CapAdd": ["net_admin", "cap_sys_time", "ALL"], "CapDrop": ["all"]}},
        {"HostConfig": {"Sysctls": {"net.ipv4.ip_forward": "0", "kernel.shmmax": "1000", "kernel.domainname": "x",
                                    "fs.mqueue.msg_max": "20", "net/ipv4/conf/eth0.100/forwarding": "0"}}},
        {"Env": ["A=", "B"], "WorkingDir": "/x", "HostConfig": {"MemorySwappiness": -1}},
    ):  # fmt: skip
        assert createchecks.verify({"Image": "busybox", **body}) in ([], [createchecks.update.BLKIO_WARNING])


def test_sysctl_paths_stay_in_proc_sys() -> None:
    assert sysctl.proc_path("net/ipv4/conf/eth0.100/forwarding") == "/proc/sys/net/ipv4/conf/eth0.100/forwarding"
    for bad in ("net.ipv4.//.x", "net/ipv4/../../kernel/x", "net..x", "", "net.ipv4.a b"):
        with pytest.raises(sysctl.SysctlError):
            sysctl.proc_path(bad)


def test_default_network_sysctls(tmp_path: Path) -> None:
    (tmp_path / "net/ipv4").mkdir(parents=True)
    (tmp_path / "net/ipv4/ping_group_range").write_text("1 0\n")
    got = specconv.sysctls({"kernel.shmmax": "1"}, private_network=True, proc_sys=tmp_path)
    # only what the kernel has; the user's values win (dotted or slashed)
    assert got == (("kernel.shmmax", "1"), ("net.ipv4.ping_group_range", "0 2147483647"))
    assert specconv.sysctls({"net/ipv4/ping_group_range": "1 1"}, True, tmp_path) == (("net/ipv4/ping_group_range", "1 1"),)
    assert specconv.sysctls({}, private_network=False, proc_sys=tmp_path) == ()


def test_cgroups_path() -> None:
    assert specconv.cgroups_path("", "berth-1", "abc") == "berth-1/abc"
    assert specconv.cgroups_path("/mine/sub", "berth-1", "abc") == "mine/sub/abc"
    assert specconv.cgroups_path("../../etc", "berth-1", "abc") == "etc/abc"  # stays under the root
    assert specconv.cgroups_path("/", "berth-1", "abc") == "abc"


def test_platforms() -> None:
    amd64 = {"os": "linux", "architecture": "amd64"}
    assert platforms.matches(platforms.parse("linux/amd64"), amd64)
    assert platforms.matches(platforms.parse("LINUX/x86_64"), amd64)
    assert platforms.matches(platforms.parse("linux/amd64/v3"), amd64)
    assert not platforms.matches(platforms.parse("linux/arm64"), amd64)
    assert platforms.parse("windows").format() == f"windows/{platforms.host_arch()}"
    assert platforms.parse("linux/arm").format() == "linux/arm/v7"
    with pytest.raises(InvalidParameter, match='^"bogus": unknown operating system or architecture: invalid argument$'):
        platforms.parse("bogus")
    with pytest.raises(InvalidParameter, match="cannot parse platform specifier"):
        platforms.parse("a/b/c/d")


def test_storage_opt(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("rootfs / ext4 rw 0 0\n/dev/x /data xfs rw,prjquota 0 0\n")
    assert storageopt.backing_mount(Path("/data/berth"), str(mounts)) == ("xfs", {"rw", "prjquota"})
    assert storageopt.backing_mount(Path("/database"), str(mounts))[0] == "ext4"
    storageopt.check({}, "overlay2", tmp_path)
    with pytest.raises(InvalidParameter, match="^Unknown option foo$"):
        storageopt.check({"foo": "1"}, "overlay2", tmp_path)
    if storageopt.backing_mount(tmp_path)[0] != "xfs":
        with pytest.raises(InvalidParameter) as err:
            storageopt.check({"size": "1G"}, "overlay2", tmp_path)
        assert err.value.message == storageopt.OVERLAY_NO_QUOTA
    else:
        with pytest.raises((InvalidParameter, Unimplemented)):
            storageopt.check({"size": "1G"}, "overlay2", tmp_path)


def test_limits_the_hosts_cgroups_lack_are_dropped_with_dockerds_warnings(tmp_path) -> None:
    from berth.daemon.createchecks import _discard_unsupported

    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    (v1 / "blkio").mkdir(parents=True)
    (v1 / "blkio" / "blkio.throttle.read_bps_device").write_text("")
    v2.mkdir()
    (v2 / "cgroup.controllers").write_text("cpu memory io pids\n")
    asked = {"OomKillDisable": True, "MemorySwappiness": 10, "BlkioWeightDevice": [{"Path": "/dev/vda", "Weight": 300}],
             "BlkioDeviceReadBps": [{"Path": "/dev/vda", "Rate": 1}], "BlkioDeviceWriteBps": [{"Path": "/dev/vda", "Rate": 1}]}
    host = dict(asked)
    warnings = _discard_unsupported(host, v1)
    assert warnings == [
        "OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.",
        "Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded.",
        "Your kernel does not support BPS Block I/O write limit or the cgroup is not mounted. Block I/O BPS write limit discarded.",
    ]
    assert host["OomKillDisable"] and host["MemorySwappiness"] == 10 and host["BlkioDeviceReadBps"] and not host["BlkioDeviceWriteBps"]
    host = dict(asked, Memory=64 << 20)
    warnings = _discard_unsupported(host, v2)
    assert warnings[:2] == [
        "Your kernel does not support OomKillDisable. OomKillDisable discarded.",
        "Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded.",
    ]
    assert host["OomKillDisable"] is False and host["MemorySwappiness"] is None
    assert len(warnings) == 2 and host["BlkioWeightDevice"]  # v2 with io weighs devices
