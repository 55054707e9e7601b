"""build_spec: berth's container settings -> the OCI config.json Docker would hand runc."""

from __future__ import annotations

import pytest

from berth.drivers.exec.spec import (
    DEFAULT_CAPS,
    DEFAULT_PATH,
    MASKED_PATHS,
    READONLY_PATHS,
    SpecInput,
    build_spec,
)
from berth.errors import InvalidParameter
from berth.libcontainer.cgroups import Resources
from berth.libcontainer.spec import parse


def spec_for(**kw: object) -> dict:
    base: dict[str, object] = {"args": ("sh", "-c", "echo hi"), "rootfs": "/var/lib/berth/c/merged"}
    base.update(kw)
    return build_spec(SpecInput(**base))  # type: ignore[arg-type]


def test_defaults_match_docker() -> None:
    spec = spec_for(hostname="abc123")
    proc = spec["process"]
    assert proc["args"] == ["sh", "-c", "echo hi"] and proc["cwd"] == "/" and proc["terminal"] is False
    assert proc["user"] == {"uid": 0, "gid": 0, "additionalGids": []}
    assert proc["env"] == [DEFAULT_PATH, "HOSTNAME=abc123"]
    assert proc["capabilities"]["bounding"] == list(DEFAULT_CAPS) == proc["capabilities"]["effective"]
    assert len(DEFAULT_CAPS) == 14 and "CAP_SYS_ADMIN" not in DEFAULT_CAPS
    assert spec["root"] == {"path": "/var/lib/berth/c/merged", "readonly": False}
    assert spec["hostname"] == "abc123"
    linux = spec["linux"]
    assert [n["type"] for n in linux["namespaces"]] == ["mount", "network", "uts", "pid", "ipc"]
    assert linux["maskedPaths"] == list(MASKED_PATHS) and "/proc/kcore" in MASKED_PATHS
    assert linux["readonlyPaths"] == list(READONLY_PATHS) and "/proc/sys" in READONLY_PATHS
    assert linux["resources"]["devices"][0] == {"allow": False, "access": "rwm"}
    dests = [m["destination"] for m in spec["mounts"]]
    assert dests == ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm"]
    cgroup = next(m for m in spec["mounts"] if m["destination"] == "/sys/fs/cgroup")
    assert cgroup["type"] == "cgroup" and "ro" in cgroup["options"]
    assert "/sys/fs/cgroup" not in [m["destination"] for m in spec_for(mount_cgroups=False)["mounts"]]
    sysfs = next(m for m in spec["mounts"] if m["destination"] == "/sys")
    assert "ro" in sysfs["options"]
    shm = next(m for m in spec["mounts"] if m["destination"] == "/dev/shm")
    assert "size=67108864" in shm["options"]


def test_the_spec_parses_in_libcontainer() -> None:
    spec = spec_for(
        hosts_path="/h/hosts",
        resolv_conf_path="/h/resolv.conf",
        hostname_path="/h/hostname",
        tty=True,
        uid=1000,
        gid=1000,
        additional_gids=(10,),
        cwd="/tmp",
    )
    parsed = parse(spec)
    assert parsed.process.args == ("sh", "-c", "echo hi")
    assert parsed.namespace("pid") is not None


def test_env_defaults_and_overrides() -> None:
    env = spec_for(env=("PATH=/custom", "A=1"), hostname="h", tty=True)["process"]["env"]
    assert env == ["HOSTNAME=h", "TERM=xterm", "PATH=/custom", "A=1"]
    env = spec_for(env=("HOSTNAME=mine", "TERM=vt100"), hostname="h", tty=True)["process"]["env"]
    assert env == [DEFAULT_PATH, "HOSTNAME=mine", "TERM=vt100"]


def test_user_and_non_root_capabilities() -> None:
    proc = spec_for(uid=1000, gid=100, additional_gids=(10, 20))["process"]
    assert proc["user"] == {"uid": 1000, "gid": 100, "additionalGids": [10, 20]}
    assert proc["capabilities"]["bounding"] == list(DEFAULT_CAPS)
    assert proc["capabilities"]["effective"] == [] == proc["capabilities"]["permitted"]


def test_network_modes() -> None:
    ns = lambda **kw: [n for n in spec_for(**kw)["linux"]["namespaces"] if n["type"] == "network"]  # noqa: E731
    assert ns(network="none") == [{"type": "network"}]
    assert ns(network="host") == []
    assert ns(network="/run/netns/berth-1") == [{"type": "network", "path": "/run/netns/berth-1"}]
    with pytest.raises(InvalidParameter, match="network 'bridge'"):
        spec_for(network="bridge")


def test_bind_mounted_host_files() -> None:
    mounts = spec_for(hosts_path="/c/hosts", resolv_conf_path="/c/resolv.conf", hostname_path="/c/hostname")[
        "mounts"
    ]
    binds = [(m["destination"], m["source"], m["options"]) for m in mounts if m["type"] == "bind"]
    assert binds == [
        ("/etc/resolv.conf", "/c/resolv.conf", ["rbind", "rprivate"]),
        ("/etc/hostname", "/c/hostname", ["rbind", "rprivate"]),
        ("/etc/hosts", "/c/hosts", ["rbind", "rprivate"]),
    ]
    extra = {"destination": "/data", "type": "bind", "source": "/v/_data", "options": ["rbind"]}
    assert spec_for(mounts=(extra,))["mounts"][-1] == extra


def test_resources() -> None:
    res = spec_for(
        resources=Resources(memory=64 << 20, nano_cpus=1_500_000_000, pids_limit=100, cpu_shares=512)
    )
    r = res["linux"]["resources"]
    assert r["memory"] == {"limit": 64 << 20}
    assert r["cpu"] == {"shares": 512, "quota": 150_000, "period": 100_000}
    assert r["pids"] == {"limit": 100}
    assert "memory" not in spec_for(resources=Resources())["linux"]["resources"]


def test_readonly_rootfs_cgroups_path_and_cgroupns() -> None:
    spec = spec_for(readonly_rootfs=True, cgroups_path="berth-x/abc", cgroup_ns=True, mount_cgroups=True)
    assert spec["root"]["readonly"] is True
    assert spec["linux"]["cgroupsPath"] == "berth-x/abc"
    assert {"type": "cgroup"} in spec["linux"]["namespaces"]
    assert any(m["type"] == "cgroup" and "ro" in m["options"] for m in spec["mounts"])


def test_privileged() -> None:
    spec = spec_for(privileged=True)
    assert "CAP_SYS_ADMIN" in spec["process"]["capabilities"]["effective"]
    assert spec["linux"]["maskedPaths"] == [] == spec["linux"]["readonlyPaths"]
    assert spec["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    sysfs = next(m for m in spec["mounts"] if m["destination"] == "/sys")
    assert "ro" not in sysfs["options"]


@pytest.mark.parametrize(
    ("kw", "text"),
    [
        ({"args": ()}, "no command specified"),
        ({"rootfs": "relative"}, "not an absolute path"),
        ({"cwd": "tmp"}, "working directory 'tmp'"),
        ({"env": ("=x",)}, "bad environment entry"),
        ({"mounts": ({"destination": "data"},)}, "mount destination 'data'"),
    ],
)
def test_invalid_input(kw: dict, text: str) -> None:
    with pytest.raises(InvalidParameter, match=text):
        spec_for(**kw)


def test_cap_add_and_drop() -> None:
    caps = spec_for(cap_add=("net_admin", "CAP_SYS_PTRACE"), cap_drop=("MKNOD",))["process"]["capabilities"]
    assert "CAP_NET_ADMIN" in caps["bounding"] and "CAP_SYS_PTRACE" in caps["effective"]
    assert "CAP_MKNOD" not in caps["bounding"]
    only = spec_for(cap_drop=("ALL",), cap_add=("CHOWN",))["process"]["capabilities"]["bounding"]
    assert only == ["CAP_CHOWN"]
    assert "CAP_SYS_ADMIN" in spec_for(cap_add=("ALL",))["process"]["capabilities"]["bounding"]
    with pytest.raises(InvalidParameter, match="unknown capability: 'FLY'"):
        spec_for(cap_add=("FLY",))


def test_capabilities_follow_mobys_rules() -> None:
    """moby's TweakCapabilities, checked against dockerd 20.10 (test_isolation_conformance)."""
    from berth.drivers.exec.spec import ALL_CAPS, DEFAULT_CAPS, capabilities

    # ALL added wins over ALL dropped (the docker CLI sends both as given)
    assert capabilities(False, ("ALL",), ("ALL",)) == list(ALL_CAPS)
    assert capabilities(False, ("all", "SYS_ADMIN"), ("ALL",)) == list(ALL_CAPS)
    # ALL added: every one but the dropped
    assert capabilities(False, ("ALL",), ("chown",)) == [c for c in ALL_CAPS if c != "CAP_CHOWN"]
    # ALL dropped: exactly the added ones
    assert capabilities(False, ("NET_ADMIN",), ("ALL",)) == ["CAP_NET_ADMIN"]
    # privileged: all of them, drops ignored (dockerd does the same)
    assert capabilities(True, (), ("SYS_ADMIN",)) == list(ALL_CAPS)
    # a capability both dropped and added stays (the add is applied last)
    assert set(capabilities(False, ("CHOWN",), ("CHOWN",))) == set(DEFAULT_CAPS)


def test_read_only_root_makes_the_network_files_read_only() -> None:
    files = {"hosts_path": "/c/hosts", "resolv_conf_path": "/c/resolv.conf", "hostname_path": "/c/hostname"}
    ro = {m["destination"]: m["options"] for m in spec_for(readonly_rootfs=True, **files)["mounts"]}
    rw = {m["destination"]: m["options"] for m in spec_for(**files)["mounts"]}
    for dest in ("/etc/hosts", "/etc/resolv.conf", "/etc/hostname"):
        assert "ro" in ro[dest] and "ro" not in rw[dest]


def test_ulimits_sysctls_oom_nnp_and_host_namespaces() -> None:
    spec = spec_for(
        rlimits=(("nofile", 1024, 2048),),
        sysctls=(("net.ipv4.ip_forward", "1"),),
        oom_score_adj=500,
        no_new_privileges=True,
        pid_host=True,
        ipc_host=True,
    )
    assert spec["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048}]
    assert spec["linux"]["sysctl"] == {"net.ipv4.ip_forward": "1"}
    assert spec["process"]["oomScoreAdj"] == 500 and spec["process"]["noNewPrivileges"] is True
    assert [n["type"] for n in spec["linux"]["namespaces"]] == ["mount", "network", "uts"]
    assert "rlimits" not in spec_for()["process"]  # Docker sets none by default: the daemon's apply
    with pytest.raises(InvalidParameter, match="soft limit 10 is above hard limit 5"):
        spec_for(rlimits=(("nofile", 10, 5),))


def test_seccomp_default_unconfined_custom() -> None:
    from berth.drivers.exec.spec import DEFAULT_CAPS
    from berth.libcontainer.seccompprofile import default_profile, to_oci

    default = spec_for()["linux"]["seccomp"]
    assert default == to_oci(default_profile(), list(DEFAULT_CAPS))
    assert default["defaultAction"] == "SCMP_ACT_ERRNO" and default["defaultErrnoRet"] == 1
    assert spec_for()["linux"]["seccomp"] is default  # resolved once per bounding set, shared
    assert spec_for(cap_add=("SYS_ADMIN",))["linux"]["seccomp"] != default
    assert "seccomp" not in spec_for(seccomp="unconfined")["linux"]
    assert "seccomp" not in spec_for(privileged=True)["linux"]
    custom = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    assert spec_for(seccomp=custom)["linux"]["seccomp"] == custom
    # Docker: a profile given with --privileged still applies
    assert spec_for(seccomp=custom, privileged=True)["linux"]["seccomp"] == custom
    with pytest.raises(InvalidParameter, match="seccomp 'strict'"):
        spec_for(seccomp="strict")
    with pytest.raises(InvalidParameter, match="no defaultAction"):
        spec_for(seccomp={"syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]})
    assert "seccomp" not in spec_for(seccomp={})["linux"]  # Docker: an empty profile is no filter


def test_seccomp_default_profile_follows_the_capabilities() -> None:
    def allowed(**kw: object) -> set[str]:
        rules = spec_for(**kw)["linux"]["seccomp"]["syscalls"]
        return {n for r in rules if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args") for n in r["names"]}

    plain = allowed()
    assert not {"mount", "unshare", "setns", "kcmp", "reboot"} & plain and "chroot" in plain
    assert {"mount", "unshare", "setns", "clone", "clone3"} <= allowed(cap_add=("SYS_ADMIN",))
    assert {"kcmp", "pidfd_getfd", "process_vm_readv"} <= allowed(cap_add=("SYS_PTRACE",))
    assert "chroot" not in allowed(cap_drop=("SYS_CHROOT",))


def test_one_capability_rule_for_init_and_exec() -> None:
    from berth.drivers.exec.spec import ALL_CAPS, exec_process_spec, process_capabilities

    assert process_capabilities(["CAP_KILL"], 0, False) == {
        "bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]
    }
    assert process_capabilities(["CAP_KILL"], 1000, False)["effective"] == []
    assert process_capabilities(["CAP_KILL"], 1000, True)["effective"] == ["CAP_KILL"]
    container = spec_for(cap_drop=("ALL",), cap_add=("NET_ADMIN",), no_new_privileges=True, uid=0,
                         additional_gids=(10, 20), rlimits=(("nofile", 10, 20),), oom_score_adj=300)["process"]
    same = exec_process_spec(container, ["id"], ["PATH=/bin"], "/srv", True)
    # the exec's walls are the container's; only the command, env, cwd and terminal are its own
    for key in ("user", "capabilities", "noNewPrivileges", "rlimits", "oomScoreAdj"):
        assert same[key] == container[key], key
    assert (same["args"], same["env"], same["cwd"], same["terminal"]) == (["id"], ["PATH=/bin"], "/srv", True)
    as_user = exec_process_spec(container, ["id"], [], "/", False, user=(1000, 1000, [5]))
    assert as_user["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [5]}
    assert as_user["capabilities"] == {"bounding": ["CAP_NET_ADMIN"], "effective": [], "permitted": []}
    assert as_user["noNewPrivileges"] is True
    priv = exec_process_spec(container, ["id"], [], "/", False, privileged=True)
    assert priv["capabilities"]["bounding"] == priv["capabilities"]["effective"] == list(ALL_CAPS)
    assert container["capabilities"]["bounding"] == ["CAP_NET_ADMIN"]  # not modified in place


def test_joined_namespaces_shm_and_uts_host() -> None:
    spec = spec_for(joined=(("pid", "/proc/7/ns/pid"), ("ipc", "/proc/7/ns/ipc")), shm="/proc/7/root/dev/shm")
    kinds = {n["type"]: n.get("path") for n in spec["linux"]["namespaces"]}
    assert kinds["pid"] == "/proc/7/ns/pid" and kinds["ipc"] == "/proc/7/ns/ipc" and kinds["uts"] is None
    shm = [m for m in spec["mounts"] if m["destination"] == "/dev/shm"]
    assert shm == [{"destination": "/dev/shm", "type": "bind", "source": "/proc/7/root/dev/shm", "options": ["rbind", "rprivate"]}]
    assert not [m for m in spec_for(shm="none")["mounts"] if m["destination"] == "/dev/shm"]
    assert [m["type"] for m in spec_for()["mounts"] if m["destination"] == "/dev/shm"] == ["tmpfs"]
    # --uts host: no UTS namespace and no hostname (runc refuses one without it)
    host_uts = spec_for(uts_host=True, hostname="abc")
    assert "hostname" not in host_uts and "uts" not in {n["type"] for n in host_uts["linux"]["namespaces"]}
    assert spec_for(cgroup_ns=True)["linux"]["namespaces"][-1] == {"type": "cgroup"}
    with pytest.raises(InvalidParameter, match="cannot join net namespace"):
        spec_for(joined=(("net", "/x"),))
    with pytest.raises(InvalidParameter, match="shm 'tmp' is not private"):
        spec_for(shm="tmp")


def test_oom_kill_disable_and_swappiness_reach_the_spec() -> None:
    from berth.libcontainer.cgroups import Resources, resources_from_oci

    res = Resources(memory=64 << 20, memory_swappiness=10, oom_kill_disable=True)
    memory = spec_for(resources=res)["linux"]["resources"]["memory"]
    assert memory["swappiness"] == 10 and memory["disableOOMKiller"] is True
    back = resources_from_oci(spec_for(resources=res)["linux"]["resources"])  # what the monitor reads
    assert back.memory_swappiness == 10 and back.oom_kill_disable
    assert "disableOOMKiller" not in spec_for(resources=Resources(memory=64 << 20))["linux"]["resources"]["memory"]
