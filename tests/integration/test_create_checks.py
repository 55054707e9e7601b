"""Create-time checks and settings through a real berthd, the docker CLI, docker-py and raw HTTP:
sysctls that would reach the host's kernel are refused (and the host's values stay), Go's decoding
errors for wrong shapes and out-of-range numbers, dockerd's setting checks, platform, links,
storage options, the empty IpcMode default, the UTS domain name, Docker's default network
sysctls, HostConfig.CgroupParent, and tags that would read as image ids."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

import harness

pytestmark = pytest.mark.integration


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
    return r


def create(d: harness.Daemon, body: dict[str, Any], query: str = "") -> tuple[int, Any]:
    return d.api("POST", "/v1.41/containers/create" + query, {"Image": "busybox", "Cmd": ["true"], **body})


def read_sysctl(name: str) -> str:
    return Path("/proc/sys/" + name.replace(".", "/")).read_text().strip()


def write_sysctl(name: str, value: str) -> None:
    Path("/proc/sys/" + name.replace(".", "/")).write_text(value)


def test_sysctls_never_reach_the_host(berthd: harness.Berthd, busybox_image: str) -> None:
    """--network host with a net.* sysctl, and a sysctl no namespace isolates: 400 at create;
    the host's values are what they were."""
    cases = [
        ("net.ipv4.tcp_keepalive_probes", "host", "not allowed in host network namespace"),
        ("kernel.printk_ratelimit_burst", "none", "is not in a separate kernel namespace"),
        ("kernel.printk_ratelimit_burst", "host", "is not in a separate kernel namespace"),
    ]
    before = {name: read_sysctl(name) for name, _, _ in cases}
    try:
        # the docker CLI refuses non-namespaced kernel.* names itself; net.* reaches the daemon
        value = str(int(before["net.ipv4.tcp_keepalive_probes"]) + 1)
        r = berthd.docker("run", "--rm", "--network", "host", "--sysctl", f"net.ipv4.tcp_keepalive_probes={value}",
                          busybox_image, "true")
        assert r.returncode == 125, r
        assert 'Error response from daemon: sysctl "net.ipv4.tcp_keepalive_probes" not allowed in host network namespace' in r.stderr
        for name, mode, text in cases:
            value = str(int(before[name]) + 1)
            status, body = create(berthd, {"HostConfig": {"NetworkMode": mode, "Sysctls": {name: value}}})
            assert (status, body) == (400, {"message": f'sysctl "{name}" {text}'})
            assert read_sysctl(name) == before[name]
        import docker  # docker-py

        with pytest.raises(docker.errors.APIError) as err:
            berthd.client().containers.run(busybox_image, "true", network_mode="host",
                                           sysctls={"net.ipv4.tcp_keepalive_probes": "1"}, remove=True)
        assert err.value.status_code == 400
        assert read_sysctl("net.ipv4.tcp_keepalive_probes") == before["net.ipv4.tcp_keepalive_probes"]
        assert ok(berthd.docker("ps", "-aq")).stdout == ""  # nothing was created
        # the namespaced ones work, in the container only
        host_probes = read_sysctl("net.ipv4.tcp_keepalive_probes")
        r = ok(berthd.docker(
            "run", "--rm", "--sysctl", "net.ipv4.tcp_keepalive_probes=3", "--sysctl", "kernel.shmmni=1000",
            busybox_image, "cat", "/proc/sys/net/ipv4/tcp_keepalive_probes", "/proc/sys/kernel/shmmni",
        ))
        assert r.stdout.split() == ["3", "1000"]
        assert read_sysctl("net.ipv4.tcp_keepalive_probes") == host_probes
        r = berthd.docker("run", "--rm", "--ipc", "host", "--sysctl", "kernel.shmmni=1000", busybox_image, "true")
        assert r.returncode == 125 and "is not allowed in the hosts ipc namespace" in r.stderr
    finally:
        for name, value in before.items():
            if read_sysctl(name) != value:
                write_sysctl(name, value)


def test_default_network_sysctls_and_domainname(berthd: harness.Berthd, busybox_image: str) -> None:
    script = "cd /proc/sys; cat net/ipv4/ping_group_range net/ipv4/ip_unprivileged_port_start kernel/domainname"
    r = ok(berthd.docker("run", "--rm", "--domainname", "example.org", busybox_image, "sh", "-c", script))
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["0", "2147483647"] and lines[1] == "0"
    assert lines[2] == "example.org"
    # the user's value wins
    r = ok(berthd.docker("run", "--rm", "--sysctl", "net.ipv4.ip_unprivileged_port_start=1024", busybox_image,
                         "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"))
    assert r.stdout.strip() == "1024"
    # with the host's network nothing is set: the host's own values show
    host_range = " ".join(read_sysctl("net.ipv4.ping_group_range").split())
    r = ok(berthd.docker("run", "--rm", "--network", "host", busybox_image, "cat", "/proc/sys/net/ipv4/ping_group_range"))
    assert " ".join(r.stdout.split()) == host_range
    # Config.Domainname through the API, seen in the container's UTS namespace
    status, body = create(berthd, {"Domainname": "corp.test", "Cmd": ["cat", "/proc/sys/kernel/domainname"]})
    assert status == 201, body
    ok(berthd.docker("start", body["Id"]))
    assert ok(berthd.docker("wait", body["Id"])).stdout.strip() == "0"
    assert ok(berthd.docker("logs", body["Id"])).stdout.strip() == "corp.test"


def test_wrong_shapes_and_numbers_are_400_at_create(berthd: harness.Berthd, busybox_image: str) -> None:
    go = "json: cannot unmarshal "
    cases = [
        ({"HostConfig": {"Memory": 99999999999999999999999}},
         "number 99999999999999999999999 into Go struct field HostConfig.HostConfig.Memory of type int64"),
        ({"HostConfig": {"CpuShares": -9223372036854775809}},
         "number -9223372036854775809 into Go struct field HostConfig.HostConfig.CpuShares of type int64"),
        ({"HostConfig": {"CapAdd": [1]}}, "array into Go struct field HostConfig.HostConfig.CapAdd of type string"),
        ({"HostConfig": {"Ulimits": ["a"]}},
         "string into Go struct field HostConfig.HostConfig.Ulimits of type units.Ulimit"),
        ({"Env": [1]}, "number into Go struct field ContainerConfigWrapper.Env of type string"),
    ]  # fmt: skip
    for body, message in cases:
        assert create(berthd, body) == (400, {"message": go + message}), body
    settings = [
        ({"HostConfig": {"Memory": -1}}, "Minimum memory limit allowed is 6MB"),
        ({"HostConfig": {"CapDrop": [None]}}, 'invalid CapDrop: unknown capability: "CAP_"'),
        ({"HostConfig": {"CapAdd": ["CAP_FOO"]}}, 'invalid CapAdd: unknown capability: "CAP_FOO"'),
        ({"Env": [""]}, "invalid environment variable: "),
        ({"Env": ["=foo"]}, "invalid environment variable: =foo"),
        ({"WorkingDir": "rel/dir"}, "the working directory 'rel/dir' is invalid, it needs to be an absolute path"),
        ({"HostConfig": {"OomScoreAdj": 5000}}, "Invalid value 5000, range for oom score adj is [-1000, 1000]"),
    ]  # fmt: skip
    for body, message in settings:
        assert create(berthd, body) == (400, {"message": message}), body
    # checked before the image: no pull is started for a bad body
    status, reply = berthd.api("POST", "/v1.41/containers/create", {"Image": "nosuch", "Env": ["=x"]})
    assert (status, reply) == (400, {"message": "invalid environment variable: =x"})
    assert ok(berthd.docker("ps", "-aq")).stdout == ""
    # the CLI: exit 125 with the daemon's text; docker-py raises APIError 400
    r = berthd.docker("run", "--rm", "-w", "rel", busybox_image, "true")
    assert r.returncode == 125 and "the working directory 'rel' is invalid" in r.stderr
    r = berthd.docker("run", "--rm", "--cap-add", "FOO", busybox_image, "true")
    assert r.returncode == 125 and 'invalid CapAdd: unknown capability: "CAP_FOO"' in r.stderr
    import docker  # docker-py

    with pytest.raises(docker.errors.APIError) as err:
        berthd.client().containers.create(busybox_image, "true", mem_limit=-1)
    assert err.value.status_code == 400 and "Minimum memory limit allowed is 6MB" in str(err.value)
    # an int64 at its limit is stored and inspect works for every client
    status, body = create(berthd, {"HostConfig": {"Memory": 9223372036854775807}})
    assert status == 201, body
    assert json.loads(ok(berthd.docker("inspect", body["Id"])).stdout)[0]["HostConfig"]["Memory"] == 2**63 - 1
    assert berthd.client().containers.get(body["Id"]).attrs["HostConfig"]["Memory"] == 2**63 - 1


def test_empty_ipc_mode_and_other_defaults(berthd: harness.Berthd, busybox_image: str) -> None:
    status, body = create(berthd, {"HostConfig": {"IpcMode": "", "ShmSize": 0, "NetworkMode": ""}})
    assert status == 201, body
    host = json.loads(ok(berthd.docker("inspect", body["Id"])).stdout)[0]["HostConfig"]
    assert (host["IpcMode"], host["ShmSize"], host["NetworkMode"]) == ("private", 67108864, "default")
    ok(berthd.docker("start", body["Id"]))
    assert ok(berthd.docker("wait", body["Id"])).stdout.strip() == "0"


def test_platform_links_storage_opt(berthd: harness.Berthd, busybox_image: str) -> None:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    other = "arm64" if arch != "arm64" else "amd64"
    assert create(berthd, {}, f"?platform=linux/{arch}")[0] == 201
    assert create(berthd, {}, f"?platform={arch}")[0] == 201
    assert create(berthd, {}, f"?platform=linux/{other}") == (404, {
        "message": f"image with reference busybox was found but does not match the specified platform: "
                   f"wanted linux/{other}, actual: linux/{arch}"})  # fmt: skip
    assert create(berthd, {}, "?platform=bogus") == (
        400, {"message": '"bogus": unknown operating system or architecture: invalid argument'},
    )
    # links: a missing target is dockerd's 400; a target that is not running fails the start
    assert create(berthd, {"HostConfig": {"Links": ["nope:alias"]}}) == (
        400, {"message": "could not get container for nope: No such container: nope"},
    )
    ok(berthd.docker("create", "--name", "target", busybox_image, "true"))
    status, body = create(berthd, {"HostConfig": {"Links": ["target:alias"]}})
    assert status == 201, body
    r = berthd.docker("run", "--rm", "--link", "target", busybox_image, "true")
    assert r.returncode == 125 and "Cannot link to a non running container: /target AS /" in r.stderr
    r = berthd.docker("run", "--rm", "--network", "host", "--link", "target", busybox_image, "true")
    assert r.returncode == 125 and "host type networking can't be used with links" in r.stderr
    # --storage-opt size: berth cannot enforce it, and says so as dockerd does without pquota
    r = berthd.docker("run", "--rm", "--storage-opt", "size=1G", busybox_image, "true")
    assert r.returncode == 125
    assert ("--storage-opt is supported only for overlay over xfs with 'pquota' mount option" in r.stderr
            or "does not set XFS project quotas" in r.stderr)  # fmt: skip
    assert create(berthd, {"HostConfig": {"StorageOpt": {"foo": "1"}}}) == (400, {"message": "Unknown option foo"})
    names = ok(berthd.docker("ps", "-a", "--format", "{{.Names}}")).stdout.split()
    assert "target" in names


def test_cgroup_parent(berthd: harness.Berthd, busybox_image: str) -> None:
    parent = f"berth-cgp-{berthd.root.name}"
    try:
        cid = ok(berthd.docker("run", "-d", "--cgroup-parent", f"/{parent}/sub", busybox_image, "sleep", "60")).stdout.strip()
        pid = json.loads(ok(berthd.docker("inspect", cid)).stdout)[0]["State"]["Pid"]
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        paths = {line.split(":", 2)[1]: line.split(":", 2)[2] for line in lines}
        want = f"/{parent}/sub/{cid}"
        if "memory" in paths:  # cgroup v1 (or hybrid): every controller berth uses
            for ctrl in ("memory", "pids", "cpu,cpuacct"):
                if ctrl in paths:
                    assert paths[ctrl] == want, lines
        else:  # cgroup v2
            assert paths[""] == want, lines
        # stats and top find it there
        top = berthd.api("GET", f"/v1.41/containers/{cid}/top")[1]
        assert pid in [int(row[1]) for row in top["Processes"]]
        status, stats = berthd.api("GET", f"/v1.41/containers/{cid}/stats?stream=0&one-shot=1")
        assert status == 200 and stats["pids_stats"].get("current", 0) >= 1, stats
        # inspect shows what was asked for
        assert json.loads(ok(berthd.docker("inspect", cid)).stdout)[0]["HostConfig"]["CgroupParent"] == f"/{parent}/sub"
        ok(berthd.docker("rm", "-f", cid))
        # the container's own cgroup is gone with it (the parent stays, as with dockerd)
        for base in Path("/sys/fs/cgroup").iterdir():
            assert not (base / parent / "sub" / cid).exists()
        assert not (Path("/sys/fs/cgroup") / parent / "sub" / cid).exists()
        # the default still goes under the daemon's parent
        cid = ok(berthd.docker("run", "-d", busybox_image, "sleep", "60")).stdout.strip()
        pid = json.loads(ok(berthd.docker("inspect", cid)).stdout)[0]["State"]["Pid"]
        assert f"/{cid}" in Path(f"/proc/{pid}/cgroup").read_text() and parent not in Path(f"/proc/{pid}/cgroup").read_text()
        ok(berthd.docker("rm", "-f", cid))
    finally:
        berthd.remove_all_containers()
        for sub in (f"{parent}/sub", parent):
            for problem in harness.remove_cgroup_parent(sub):
                pytest.fail(problem)


def test_tags_that_read_as_ids_are_refused(berthd: harness.Berthd, busybox_image: str) -> None:
    hex64 = "a" * 64
    r = berthd.docker("tag", busybox_image, f"sha256:{hex64}")
    assert r.returncode == 1
    assert "refusing to create an ambiguous tag using digest algorithm as name" in r.stderr
    assert berthd.api("POST", f"/v1.41/images/busybox/tag?repo=sha256&tag={hex64}") == (
        400, {"message": "refusing to create an ambiguous tag using digest algorithm as name"},
    )
    assert berthd.api("POST", "/v1.41/images/busybox/tag?repo=docker.io/library/sha256&tag=x")[0] == 400
    status, body = berthd.api("POST", f"/v1.41/images/busybox/tag?repo={hex64}&tag=x")
    assert status == 400 and "cannot specify 64-byte hexadecimal strings" in body["message"]
    assert berthd.api("POST", "/v1.41/images/busybox/tag?repo=localhost:5000/sha256&tag=x")[0] == 201
    r = berthd.docker("commit", ok(berthd.docker("create", busybox_image, "true")).stdout.strip(), "sha256:x")
    assert r.returncode == 1 and "ambiguous tag" in r.stderr
    tags = ok(berthd.docker("images", "--format", "{{.Repository}}:{{.Tag}}")).stdout.split()
    assert not any(t.startswith("sha256") for t in tags), tags


CONFORMANCE_BODIES: list[dict[str, Any]] = [
    {"HostConfig": {"Memory": 99999999999999999999999}},
    {"HostConfig": {"Memory": -5}},
    {"HostConfig": {"Memory": 1.5}},
    {"HostConfig": {"CapAdd": [1]}},
    {"HostConfig": {"CapDrop": [None]}},
    {"HostConfig": {"CapAdd": ["foo"]}},
    {"HostConfig": {"Ulimits": ["a"]}},
    {"HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": "a"}]}},
    {"HostConfig": {"BlkioWeight": 70000}},
    {"HostConfig": {"Memory": 10000000, "MemorySwap": 5000000}},
    {"HostConfig": {"MemorySwap": 50000000}},
    {"HostConfig": {"MemorySwappiness": 200}},
    {"HostConfig": {"MemoryReservation": 5}},
    {"HostConfig": {"KernelMemory": 5}},
    {"HostConfig": {"CpuPeriod": 5}},
    {"HostConfig": {"CpuQuota": 5}},
    {"HostConfig": {"NanoCpus": -1}},
    {"HostConfig": {"OomScoreAdj": 5000}},
    {"HostConfig": {"ShmSize": -1}},
    {"HostConfig": {"IOMaximumBandwidth": 5}},
    {"HostConfig": {"Links": ["a:b"], "NetworkMode": "host"}},
    {"HostConfig": {"Links": ["nope:b"]}},
    {"HostConfig": {"StorageOpt": {"size": "1G"}}},
    {"HostConfig": {"StorageOpt": {"foo": "1"}}},
    {"Env": [""]}, {"Env": ["="]}, {"Env": ["=foo"]}, {"Env": [1]},
    {"WorkingDir": "x"},
    {"Healthcheck": {"Interval": 1}},
    {"Cmd": {}}, {"Labels": {"a": 1}}, {"ExposedPorts": {"80/tcp": 1}},
    {"NetworkingConfig": {"EndpointsConfig": {"a": 1}}},
]  # fmt: skip


@pytest.mark.conformance
def test_create_answers_match_dockerd(berthd: harness.Berthd, dockerd: harness.Dockerd, busybox_tar: Path) -> None:
    """The same bad bodies get the same texts from berthd and dockerd 20.10. dockerd answers Go's
    decoding errors and some driver errors with a 500; berth with a 400 (docs/decisions.md)."""
    answers = []
    for d in (berthd, dockerd):
        d.import_image(busybox_tar)
        answers.append([create(d, body) for body in CONFORMANCE_BODIES])
    for body, mine, theirs in zip(CONFORMANCE_BODIES, answers[0], answers[1], strict=True):
        assert mine[1] == theirs[1], body
        if theirs[0] == 500:
            assert mine[0] == 400, body
        else:
            assert mine[0] == theirs[0], body
    platform = [create(d, {}, "?platform=linux/ppc64le") for d in (berthd, dockerd)]
    assert platform[0] == platform[1]
