"""Container record → SpecInput: Docker's HostConfig knobs land in the right fields."""

from __future__ import annotations

from berth.container.record import Container
from berth.daemon.createconfig import merge
from berth.daemon.specconv import resources, spec_input


def _container(host: dict, **config: object) -> Container:  # type: ignore[type-arg]
    cfg, hc = merge({"Image": "busybox", "Cmd": ["sh"], "HostConfig": host, **config}, {"Env": ["PATH=/bin"]})
    return Container(
        id="c" * 64,
        name="web",
        created="2026-11-28T00:00:00Z",
        image="busybox",
        image_id="sha256:" + "0" * 64,
        path="sh",
        args=[],
        config=cfg,
        host_config=hc,
        driver="overlay2",
        dir="/var/lib/berth/containers/c",
    )


def test_defaults() -> None:
    inp = spec_input(_container({}), "/r", (0, 0, []), "berth-x")
    assert inp.args == ("sh",) and inp.cwd == "/" and inp.hostname == "c" * 12
    assert inp.network == "none" and inp.hosts_path == "/var/lib/berth/containers/c/hosts"
    assert inp.cgroups_path == "berth-x/" + "c" * 64
    assert inp.resources is not None and inp.resources.memory is None and not inp.privileged


def test_host_config_knobs() -> None:
    c = _container(
        {
            "NetworkMode": "host",
            "Memory": 64 << 20,
            "NanoCpus": 500_000_000,
            "PidsLimit": 10,
            "Privileged": True,
            "CapAdd": ["NET_ADMIN"],
            "SecurityOpt": ["no-new-privileges:true"],
            "PidMode": "host",
            "Ulimits": [{"Name": "nofile", "Soft": 512, "Hard": 1024}],
            "Sysctls": {"net.ipv4.ip_forward": "1"},
            "ReadonlyRootfs": True,
        },
        User="1000",
        WorkingDir="/srv",
        Hostname="h",
    )
    inp = spec_input(c, "/r", (1000, 1000, [50]), "p", netns="host")
    # host mode: no network namespace; /etc/hosts is the network driver's copy of the host's
    assert inp.network == "host" and inp.hosts_path.endswith("/hosts") and inp.hostname == "h" and inp.cwd == "/srv"
    assert (inp.uid, inp.gid, inp.additional_gids) == (1000, 1000, (50,))
    assert inp.privileged and inp.cap_add == ("NET_ADMIN",) and inp.no_new_privileges and inp.pid_host
    assert inp.rlimits == (("nofile", 512, 1024),) and inp.sysctls == (("net.ipv4.ip_forward", "1"),)
    assert inp.readonly_rootfs
    assert inp.resources is not None
    assert (inp.resources.memory, inp.resources.nano_cpus, inp.resources.pids_limit) == (
        64 << 20,
        500_000_000,
        10,
    )


def test_resources_follow_docker() -> None:
    r = resources({"CpuQuota": 50000, "CpuPeriod": 100000})  # written as given, as dockerd
    assert (r.cpu_quota, r.cpu_period, r.nano_cpus) == (50000, 100000, None)
    assert resources({"Memory": 1 << 30, "MemorySwap": -1}).memory_swap == -1
    assert resources({"Memory": 1 << 30}).memory_swap is None  # no swap beyond the limit
    assert resources({"MemorySwap": 1 << 30}).memory_swap is None  # swap without memory means nothing


def test_recorded_mounts_become_oci_bind_mounts_after_the_standard_ones() -> None:
    from berth.drivers.exec.spec import build_spec

    c = _container({"Binds": ["/h:/srv:ro"]})
    c.mounts = [
        {"Type": "bind", "Source": "/h", "Destination": "/srv", "Mode": "ro", "RW": False, "Propagation": "rprivate"},
        {"Type": "volume", "Name": "vv", "Source": "/v/_data", "Destination": "/data", "Driver": "local",
         "Mode": "z", "RW": True, "Propagation": ""},
    ]
    inp = spec_input(c, "/r", (0, 0, []), "berth-x")
    assert inp.mounts == (
        {"destination": "/data", "type": "bind", "source": "/v/_data", "options": ["rbind", "rw", "rprivate"]},
        {"destination": "/srv", "type": "bind", "source": "/h", "options": ["rbind", "ro", "rprivate"]},
    )
    assert build_spec(inp)["mounts"][-2:] == list(inp.mounts)


def test_security_options_masked_paths_and_privileged_devices() -> None:
    import pytest

    from berth.errors import InvalidParameter
    from berth.libcontainer.cgroups import ALLOW_ALL_DEVICES, DEFAULT_DEVICE_RULES

    dev = ({"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11},)
    inp = spec_input(_container({}), "/r", (0, 0, []), "p", dev)
    assert inp.seccomp == "default" and not inp.no_new_privileges and inp.devices == ()
    assert inp.masked_paths is not None and "/proc/keys" in inp.masked_paths  # Docker's, recorded at create
    assert inp.resources is not None and inp.resources.device_rules == DEFAULT_DEVICE_RULES
    profile = '{"defaultAction": "SCMP_ACT_ALLOW"}'
    opts = ["seccomp=" + profile, "no-new-privileges=false", "label=disable", "apparmor=unconfined"]
    inp = spec_input(_container({"SecurityOpt": opts, "MaskedPaths": ["/proc/version"], "ReadonlyPaths": []}), "/r", (0, 0, []), "p")
    assert inp.seccomp == {"defaultAction": "SCMP_ACT_ALLOW"} and not inp.no_new_privileges
    assert inp.masked_paths == ("/proc/version",) and inp.readonly_paths == ()
    assert spec_input(_container({"SecurityOpt": ["seccomp:unconfined"]}), "/r", (0, 0, []), "p").seccomp == "unconfined"
    assert spec_input(_container({"SecurityOpt": ["seccomp=builtin"]}), "/r", (0, 0, []), "p").seccomp == "default"
    inp = spec_input(_container({"Privileged": True}), "/r", (0, 0, []), "p", dev)
    assert inp.devices == dev and inp.masked_paths is None  # none recorded: privileged masks nothing
    assert inp.resources is not None and inp.resources.device_rules == ALLOW_ALL_DEVICES
    for bad, text in (("seccomp={oops", "Decoding seccomp profile failed"), ("bogus=1", "invalid --security-opt 2")):
        with pytest.raises(InvalidParameter, match=text):
            spec_input(_container({"SecurityOpt": [bad]}), "/r", (0, 0, []), "p")


def test_runtime_is_checked_and_recorded() -> None:
    import pytest

    from berth.errors import InvalidParameter

    assert _container({}).host_config["Runtime"] == "native"
    assert _container({"Runtime": "native"}).host_config["Runtime"] == "native"
    assert _container({"Runtime": "runc"}).host_config["Runtime"] == "runc"
    with pytest.raises(InvalidParameter, match="^unknown or invalid runtime name: bogus$"):
        _container({"Runtime": "bogus"})
