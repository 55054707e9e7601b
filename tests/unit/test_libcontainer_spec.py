"""Parsing an OCI config.json into libcontainer's spec types (no kernel needed)."""

from __future__ import annotations

import resource

import pytest

from berth.libcontainer import ContainerInitError, Mount
from berth.libcontainer import kernel as k
from berth.libcontainer.capabilities import DEFAULT_CAPS, number, parse_caps
from berth.libcontainer.failure import READY
from berth.libcontainer.mountopts import parse_mount_options
from berth.libcontainer.spec import DEFAULT_PATH, IdMap, parse, parse_process
from berth.libcontainer.testing import docker_like_spec


def _config(**over):
    cfg = docker_like_spec("/r", ["sh", "-c", "true"], hostname="h1")
    cfg.update(over)
    return cfg


def test_docker_like_spec_parses_in_full():
    spec = parse(_config())
    assert spec.root_path == "/r"
    assert spec.hostname == "h1"
    assert spec.process.args == ("sh", "-c", "true")
    assert {ns.type for ns in spec.namespaces} == {"pid", "mount", "uts", "ipc", "network"}
    assert all(ns.path is None for ns in spec.namespaces)
    assert spec.mounts[0] == Mount("proc", "proc", "/proc", ("nosuid", "noexec", "nodev"))
    assert "/proc/kcore" in spec.masked_paths and "/proc/sys" in spec.readonly_paths
    caps = spec.process.capabilities
    assert caps is not None and caps.bounding == parse_caps(DEFAULT_CAPS) and len(caps.bounding) == 14
    assert spec.process.rlimits[0].resource == resource.RLIMIT_NOFILE
    assert spec.process.rlimits[0].soft == 1024


def test_hostname_with_a_joined_uts_namespace_is_allowed_like_runc():
    cfg = _config()
    cfg["linux"]["namespaces"] = [{"type": "mount"}, {"type": "uts", "path": "/proc/1/ns/uts"}]
    spec = parse(cfg)
    assert spec.hostname == "h1" and spec.namespace("uts") is not None


def test_namespace_with_path_means_join():
    cfg = _config()
    cfg["linux"]["namespaces"] = [{"type": "mount"}, {"type": "network", "path": "/run/netns/x"}]
    cfg["hostname"] = None
    spec = parse(cfg)
    net = spec.namespace("network")
    assert net is not None and net.path == "/run/netns/x"
    assert spec.namespace("pid") is None


@pytest.mark.parametrize(
    ("mutate", "text"),
    [
        (lambda c: c.pop("root"), "root.path is required"),
        (lambda c: c["process"].update(args=[]), "process.args"),
        (lambda c: c["process"].update(cwd="relative"), "absolute path"),
        (lambda c: c["linux"].update(namespaces=[{"type": "mount"}, {"type": "bogus"}]), "unknown namespace"),
        (lambda c: c["linux"].update(uidMappings=[{"containerID": 0, "hostID": 1, "size": 1}]),
         "need a new user namespace"),
        (
            lambda c: c["linux"].update(namespaces=[{"type": "mount"}]),
            "unable to set hostname without a private UTS namespace",
        ),
        (lambda c: c["linux"].update(rootfsPropagation="sideways"), "rootfsPropagation=sideways"),
        (lambda c: c["process"]["capabilities"].update(bounding=["CAP_NOPE"]), "unknown capability"),
        (
            lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]),
            "unknown rlimit",
        ),
        (lambda c: c["process"]["user"].update(uid="0"), "must be an integer"),
    ],
)
def test_invalid_configs_are_refused_before_any_side_effect(mutate, text):
    cfg = _config()
    mutate(cfg)
    with pytest.raises(ContainerInitError) as info:
        parse(cfg)
    assert text in str(info.value)
    assert info.value.exit_code == 128


def test_mount_options_split_like_runc():
    opts = parse_mount_options(("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"))
    assert opts.flags == k.MS_NOSUID | k.MS_NOEXEC
    assert opts.data == "newinstance,ptmxmode=0666,mode=0620,gid=5"
    assert opts.propagation == 0
    ro_bind = parse_mount_options(("rbind", "ro", "rprivate"))
    assert ro_bind.bind and ro_bind.flags == k.MS_BIND | k.MS_REC | k.MS_RDONLY
    assert ro_bind.propagation == k.MS_PRIVATE | k.MS_REC
    assert parse_mount_options(("ro", "rw")).flags == 0  # the later word wins


def test_recursive_attributes_copyup_and_the_new_flag_words():
    from berth.libcontainer import mountopts as mo

    o = parse_mount_options(("rbind", "rro", "rnosuid", "rnoatime", "rexec", "tmpcopyup", "lazytime"))
    assert o.flags == k.MS_BIND | k.MS_REC | k.MS_LAZYTIME and o.data == "" and o.copyup
    assert o.rec_set == mo.ATTR_RDONLY | mo.ATTR_NOSUID | mo.ATTR_NOATIME
    assert o.rec_clear == mo.ATTR__ATIME | mo.ATTR_NOEXEC  # an atime value clears the atime enum
    assert parse_mount_options(("defaults", "nosymfollow")).flags == k.MS_NOSYMFOLLOW


@pytest.mark.parametrize(
    ("mount", "text"),
    [
        ({"type": "bind", "options": ["rbind", "z"]}, "option 'z' is not a bind mount option"),
        ({"type": "", "options": ["bind", "size=1m", "nosiud"]}, "option 'nosiud' is not a bind mount option"),
        (
            {"type": "bind", "options": ["rbind", "idmap=uids=0-1-1"]},
            "option 'idmap=uids=0-1-1': inline id maps are not supported",
        ),
        ({"type": "bind", "options": ["ridmap"]}, "idmap without uidMappings needs the container's user namespace maps"),
        ({"type": "tmpfs", "options": [], "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]},
         "id-mapped mounts must be bind mounts, not tmpfs"),
        ({"type": "bind", "options": ["rbind"], "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]},
         "an id-mapped mount needs both uidMappings and gidMappings"),
        ({"type": "bind", "options": ["rbind"], "uidMappings": [{"containerID": 0, "hostID": 1, "size": 0}],
          "gidMappings": []}, "uidMappings[0]: 0 1 0 is not a valid id range"),
        ({"type": "proc", "options": ["tmpcopyup"]}, "option 'tmpcopyup' needs a tmpfs mount, not proc"),
        ({"type": "tmpfs", "options": "size=1m"}, "options must be a list of strings"),
    ],
)
def test_mount_options_refused_by_name_before_any_side_effect(mount, text):
    cfg = _config(mounts=[dict(mount, destination="/x", source="/s")])
    with pytest.raises(ContainerInitError) as info:
        parse(cfg)
    assert f"invalid config.json: mount '/x': {text}" in str(info.value)


def test_id_mapped_binds():
    maps = [{"containerID": 100000, "hostID": 165536, "size": 65536}]
    cfg = _config(mounts=[
        {"destination": "/v", "type": "bind", "source": "/s", "options": ["rbind"], "uidMappings": maps, "gidMappings": maps},
        {"destination": "/w", "type": "bind", "source": "/s", "options": ["rbind", "idmap"], "uidMappings": maps, "gidMappings": maps},
    ])
    v, w = parse(cfg).mounts[-2:]
    assert v.idmapped and v.idmap_recursive and v.uid_mappings == (IdMap(100000, 165536, 65536),) and v.tree == -1
    assert w.idmapped and not w.idmap_recursive
    assert parse_mount_options(w.options).data == ""  # no flag for mount(2)
    # idmap without maps of its own: the container's user namespace's (runc's rule)
    own = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    cfg = _config(mounts=[{"destination": "/v", "type": "bind", "source": "/s", "options": ["rbind", "ridmap"]}])
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = cfg["linux"]["gidMappings"] = own
    assert parse(cfg).mounts[-1].gid_mappings == (IdMap(0, 200000, 65536),)


def test_key_value_words_on_a_bind_are_dropped_as_runc_drops_them():
    # runtime-tools' mounts test gives every mount "mode=755,size=1k", binds too: no flag has a
    # value, so such a word cannot be a misspelt flag; the kernel ignores data on a bind
    cfg = _config(mounts=[{"destination": "/x", "source": "/s", "options": ["rbind", "mode=755", "size=1k"]}])
    assert parse(cfg).mounts[-1].options == ("rbind", "mode=755", "size=1k")


def test_docker_and_podman_style_options_are_accepted():
    cfg = _config()
    cfg["mounts"] += [
        {"destination": "/b", "type": "bind", "source": "/s", "options": ["rbind", "ro", "rprivate", "rro"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["rw", "nosuid", "tmpcopyup"]},
        {"destination": "/n", "type": "none", "source": "/s", "options": ["bind", "nosuid", "nodev", "noexec"]},
    ]
    assert len(parse(cfg).mounts) == len(cfg["mounts"])


def test_mount_type_defaults_to_bind_for_bind_options():
    cfg = _config(mounts=[{"destination": "/etc/hosts", "source": "/x/hosts", "options": ["rbind", "ro"]}])
    assert parse(cfg).mounts == (Mount("bind", "/x/hosts", "/etc/hosts", ("rbind", "ro")),)


def test_path_env_last_wins_and_defaults():
    assert parse_process({"args": ["x"]}).path_env == DEFAULT_PATH
    p = parse_process({"args": ["x"], "env": ["PATH=/a", "A=1", "PATH=/b:/c"]})
    assert p.path_env == "/b:/c"


def test_capability_names():
    assert number("CAP_CHOWN") == 0 and number("sys_admin") == 21 and number("CAP_CHECKPOINT_RESTORE") == 40
    with pytest.raises(ValueError):
        number("CAP_FLY")


def test_failure_round_trips_over_the_wire():
    err = ContainerInitError('exec: "foo": executable file not found in $PATH', 127)
    back = ContainerInitError.from_wire(err.to_wire())
    assert (back.message, back.exit_code) == (err.message, 127)
    garbled = ContainerInitError.from_wire(b"\x00nonsense")
    assert garbled.exit_code == 128 and "unreadable" in garbled.message
    assert err.to_wire() != READY


def test_cgroup_mount_reads_mountinfo_and_proc_self_cgroup():
    from berth.libcontainer.cgroup_mount import _inside, own_cgroups, parse_mountinfo_line

    line = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct"
    assert parse_mountinfo_line(line) == (
        "/",
        "/sys/fs/cgroup/cpu,cpuacct",
        "cgroup",
        frozenset({"cpu", "cpuacct"}),
    )
    systemd = "40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd"
    assert parse_mountinfo_line(systemd)[3] == frozenset({"name=systemd"})
    mine = own_cgroups("9:name=systemd:/\n4:memory:/berth/c1\n1:cpu,cpuacct:/berth/c1\n0::/berth/c1\n")
    assert mine[frozenset({"cpu", "cpuacct"})] == "/berth/c1"
    assert mine[frozenset()] == "/berth/c1"
    assert _inside(("/", "/sys/fs/cgroup/memory"), "/berth/c1") == "/sys/fs/cgroup/memory/berth/c1"
    assert _inside(("/berth", "/sys/fs/cgroup/memory"), "/berth/c1") == "/sys/fs/cgroup/memory/c1"
    assert _inside(("/", "/sys/fs/cgroup/memory"), "/") == "/sys/fs/cgroup/memory"


def test_seccomp_profiles_compile_to_bpf_and_bad_ones_are_refused():
    import pytest as _pytest

    from berth.libcontainer import seccomp
    from berth.libcontainer.capabilities import DEFAULT_CAPS
    from berth.libcontainer.seccompprofile import default_profile, to_oci

    profile = to_oci(default_profile(), list(DEFAULT_CAPS))
    assert profile is not None
    try:
        program = seccomp.compile_profile(profile)
    except seccomp.SeccompError as exc:
        _pytest.skip(f"libseccomp not available: {exc}")
    assert program and len(program) % 8 == 0
    assert seccomp.compile_profile(profile) is program  # cached
    odd = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["no_such_call", "read"], "action": "SCMP_ACT_ALLOW"}],
    }
    assert len(seccomp.compile_profile(odd)) % 8 == 0  # unknown names are skipped, as runc does
    with _pytest.raises(seccomp.SeccompError):
        seccomp.compile_profile({"defaultAction": "SCMP_ACT_EXPLODE"})
    with _pytest.raises(seccomp.SeccompError):
        seccomp.compile_profile({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_PDP11"]})
    assert seccomp.action("SCMP_ACT_ERRNO", None) == 0x00050001
    assert seccomp.action("SCMP_ACT_ERRNO", 38) == 0x00050026
    spec = parse(
        _config(
            linux={
                "namespaces": [{"type": "mount"}, {"type": "uts"}],
                "seccomp": {"defaultAction": "SCMP_ACT_ALLOW"},
            }
        )
    )
    assert spec.seccomp == '{"defaultAction": "SCMP_ACT_ALLOW"}'


def test_an_exec_inherits_what_its_process_leaves_out():
    from berth.libcontainer.spec import parse_exec_process

    container = docker_like_spec("/r", ["sleep", "1"], uid=1000, gid=1000, additional_gids=[7])["process"]
    container["noNewPrivileges"] = True
    container["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}]
    container["oomScoreAdj"] = 500
    p = parse_exec_process({"args": ["id"]}, container)
    assert (p.user.uid, p.user.gid, p.user.additional_gids) == (1000, 1000, (7,))
    assert p.capabilities is not None and p.capabilities.bounding == parse_caps(DEFAULT_CAPS)
    assert p.no_new_privileges and p.oom_score_adj == 500
    assert [(r.resource, r.soft, r.hard) for r in p.rlimits] == [(resource.RLIMIT_NOFILE, 10, 20)]
    # what the process says wins
    q = parse_exec_process(
        {"args": ["id"], "user": {"uid": 0}, "capabilities": {"bounding": ["CAP_KILL"]}, "noNewPrivileges": False},
        container,
    )
    assert q.user.uid == 0 and q.capabilities is not None and q.capabilities.bounding == {number("CAP_KILL")}
    assert not q.no_new_privileges
    with pytest.raises(ContainerInitError):
        parse_exec_process("sh", container)
