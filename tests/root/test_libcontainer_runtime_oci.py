"""berth-runtime against the OCI runtime spec 1.1 where the runtime-tools validation suite found
it wanting (each test stands on its own: the suite itself is not built in CI). Real bundles on a
busybox root; runc runs the same bundle where its behaviour is the reference."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from berth.libcontainer.testing import BUSYBOX, busybox_rootfs, docker_like_spec

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces, mounts and cgroups"),
    pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs /bin/busybox (apt-get install busybox-static)"),
]

RUNC = shutil.which("runc")
V1_MEMORY = Path("/sys/fs/cgroup/memory/cgroup.procs").exists()


def runtime(root: Path, *args: str, **kw) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "berth.runtime", "--root", str(root), *args]
    kw.setdefault("capture_output", "stdout" not in kw)
    return subprocess.run(cmd, text=True, timeout=60, **kw)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    b = tmp_path / "bundle"
    busybox_rootfs(b / "rootfs")
    return b


def write(bundle: Path, args: list[str], edit=None, **kw) -> dict:
    spec = docker_like_spec("rootfs", args, **kw)
    spec["linux"]["cgroupsPath"] = f"berth-test-oci-{uuid.uuid4().hex[:10]}"
    if edit is not None:
        edit(spec)
    (bundle / "config.json").write_text(json.dumps(spec))
    return spec


def state(root: Path, cid: str) -> dict:
    res = runtime(root, "state", cid)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def wait_status(root: Path, cid: str, want: str) -> None:
    deadline = time.monotonic() + 10
    while state(root, cid)["status"] != want:
        assert time.monotonic() < deadline, f"{cid} never became {want}"
        time.sleep(0.01)


def create(root: Path, bundle: Path, cid: str, log: Path) -> None:
    with open(log, "w") as f:
        res = runtime(root, "create", "--bundle", str(bundle), cid, stdout=f, stderr=f)
    assert res.returncode == 0, log.read_text()


def run_both(tmp_path: Path, bundle: Path) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str] | None]:
    ours = runtime(tmp_path / "state", "run", "--bundle", str(bundle), "o-" + uuid.uuid4().hex[:8])
    theirs = None
    if RUNC:
        theirs = subprocess.run(
            [RUNC, "--root", str(tmp_path / "runc"), "run", "--bundle", str(bundle), "r-" + uuid.uuid4().hex[:8]],
            capture_output=True, text=True, timeout=60,
        )
    return ours, theirs


def test_hooks_see_annotations_and_the_status_of_their_phase(tmp_path: Path, bundle: Path):
    root, cid, log = tmp_path / "state", "h-" + uuid.uuid4().hex[:8], tmp_path / "hooks.log"

    def edit(spec: dict) -> None:
        spec["annotations"] = {"org.example.key": "a value"}
        spec["hooks"] = {
            p: [{"path": "/bin/sh", "args": ["sh", "-c", f"echo {p} $(cat) >> {log}"], "timeout": 5}]
            for p in ("prestart", "createRuntime", "poststart", "poststop")
        }

    write(bundle, ["true"], edit)
    create(root, bundle, cid, tmp_path / "out")
    assert state(root, cid)["annotations"] == {"org.example.key": "a value"}
    assert runtime(root, "start", cid).returncode == 0
    wait_status(root, cid, "stopped")
    assert runtime(root, "delete", cid).returncode == 0
    seen = [(line.split(" ", 1)[0], json.loads(line.split(" ", 1)[1])) for line in log.read_text().splitlines()]
    assert [(p, s["status"]) for p, s in seen] == [
        ("prestart", "created"), ("createRuntime", "created"), ("poststart", "running"), ("poststop", "stopped"),
    ]
    assert all(s["annotations"] == {"org.example.key": "a value"} and s["bundle"] == str(bundle) for _, s in seen)


def test_deleting_a_created_container_without_force_is_refused_and_harmless(tmp_path: Path, bundle: Path):
    root, cid = tmp_path / "state", "d-" + uuid.uuid4().hex[:8]
    write(bundle, ["true"])
    create(root, bundle, cid, tmp_path / "out")
    try:
        res = runtime(root, "delete", cid)
        assert res.returncode == 1 and "not stopped: created" in res.stderr
        assert state(root, cid)["status"] == "created"  # no effect
    finally:
        assert runtime(root, "delete", "--force", cid).returncode == 0
    assert not (root / cid).exists()


def test_a_capability_the_runtime_does_not_hold_is_an_error_naming_it(tmp_path: Path, bundle: Path):
    with open("/proc/self/status") as f:
        have = int(next(line for line in f if line.startswith("CapEff:")).split()[1], 16)
    from berth.libcontainer.capabilities import last_cap, name

    missing = [c for c in range(last_cap() + 1) if not have >> c & 1]
    root, cid = tmp_path / "state", "c-" + uuid.uuid4().hex[:8]
    wanted = name(missing[0]) if missing else "CAP_TEST"  # root here lacks CAP_SYS_RESOURCE

    def edit(spec: dict) -> None:
        spec["process"]["capabilities"]["bounding"].append(wanted)

    write(bundle, ["true"], edit)
    res = runtime(root, "create", "--bundle", str(bundle), cid)
    assert res.returncode == 1
    expect = "cannot be granted" if missing else "unknown capability"
    assert "process.capabilities.bounding: " in res.stderr and expect in res.stderr, res.stderr
    assert not (root / cid).exists()


def test_runc_spec_bundle_with_ambient_capabilities_runs_like_runc(tmp_path: Path, bundle: Path):
    """`runc spec` lists ambient capabilities without an inheritable set: the kernel cannot raise
    them, runc warns and runs; so does berth."""
    def edit(spec: dict) -> None:
        caps = spec["process"]["capabilities"]
        caps.pop("inheritable", None)
        caps["ambient"] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]

    write(bundle, ["sh", "-c", "grep -E '^Cap(Inh|Amb)' /proc/self/status"], edit)
    ours, theirs = run_both(tmp_path, bundle)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == "CapInh:\t0000000000000000\nCapAmb:\t0000000000000000\n"
    if theirs is not None:
        assert theirs.returncode == 0 and theirs.stdout == ours.stdout, theirs.stderr


def test_a_profile_denying_getcwd_does_not_stop_the_start(tmp_path: Path, bundle: Path):
    def edit(spec: dict) -> None:
        spec["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}],
        }

    write(bundle, ["sh", "-c", "/bin/pwd || echo denied"], edit)
    ours, _ = run_both(tmp_path, bundle)
    assert (ours.returncode, ours.stdout) == (0, "denied\n"), ours.stderr


def test_key_value_options_on_a_bind_mount_are_ignored_like_runc(tmp_path: Path, bundle: Path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("seen\n")

    def edit(spec: dict) -> None:
        spec["mounts"].append(
            {"destination": "/mnt/x", "source": str(src), "options": ["mode=755", "size=1k", "bind", "shared"]}
        )

    write(bundle, ["cat", "/mnt/x/f"], edit)
    ours, theirs = run_both(tmp_path, bundle)
    assert (ours.returncode, ours.stdout) == (0, "seen\n"), ours.stderr
    if theirs is not None:
        assert (theirs.returncode, theirs.stdout) == (0, "seen\n"), theirs.stderr


@pytest.mark.skipif(not Path("/sys/fs/cgroup/devices/cgroup.procs").exists(), reason="needs the v1 devices hierarchy")
def test_device_rules_are_listed_in_the_specs_order(tmp_path: Path, bundle: Path):
    root, cid = tmp_path / "state", "v-" + uuid.uuid4().hex[:8]
    rules = [("c", 10, 229, "rwm"), ("b", 8, 20, "rw"), ("b", 10, 200, "r")]

    def edit(spec: dict) -> None:
        spec["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}] + [
            {"allow": True, "type": t, "major": ma, "minor": mi, "access": a} for t, ma, mi, a in rules
        ]}

    spec = write(bundle, ["sleep", "30"], edit)
    create(root, bundle, cid, tmp_path / "out")
    try:
        listed = Path(f"/sys/fs/cgroup/devices/{spec['linux']['cgroupsPath']}/devices.list").read_text().split("\n")
        assert listed[:3] == [f"{t} {ma}:{mi} {a}" for t, ma, mi, a in rules]
    finally:
        runtime(root, "delete", "--force", cid)


@pytest.mark.skipif(not V1_MEMORY, reason="needs the v1 memory hierarchy (this host's hybrid layout has it)")
def test_memory_swappiness_oom_killer_and_kernel_tcp_are_applied(tmp_path: Path, bundle: Path):
    root, cid = tmp_path / "state", "m-" + uuid.uuid4().hex[:8]

    def edit(spec: dict) -> None:
        spec["linux"]["resources"] = {
            "memory": {"limit": 64 << 20, "swappiness": 10, "disableOOMKiller": True, "kernelTCP": 32 << 20},
        }

    spec = write(bundle, ["sleep", "30"], edit)
    create(root, bundle, cid, tmp_path / "out")
    try:
        mem = Path("/sys/fs/cgroup/memory") / spec["linux"]["cgroupsPath"]
        assert (mem / "memory.swappiness").read_text().strip() == "10"
        assert "oom_kill_disable 1" in (mem / "memory.oom_control").read_text()
        assert (mem / "memory.kmem.tcp.limit_in_bytes").read_text().strip() == str(32 << 20)
    finally:
        runtime(root, "delete", "--force", cid)


def test_a_limit_the_host_cannot_apply_fails_create_and_leaves_nothing(tmp_path: Path, bundle: Path):
    root, cid = tmp_path / "state", "n-" + uuid.uuid4().hex[:8]
    if Path("/sys/fs/cgroup/net_cls/cgroup.procs").exists():
        pytest.skip("this host mounts net_cls: classID can be applied")

    def edit(spec: dict) -> None:
        spec["linux"]["resources"] = {"network": {"classID": 1048577}}

    spec = write(bundle, ["true"], edit)
    res = runtime(root, "create", "--bundle", str(bundle), cid)
    assert res.returncode == 1 and "linux.resources.network.classID" in res.stderr, res.stderr
    assert not (root / cid).exists()
    assert not any((Path("/sys/fs/cgroup") / h / spec["linux"]["cgroupsPath"]).exists()
                   for h in os.listdir("/sys/fs/cgroup"))


def _set(path: str, value):
    def edit(spec: dict) -> None:
        *parents, last = path.split(".")
        obj = spec
        for key in parents:
            obj = obj[key]
        obj[last] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (None, "config.json"),  # not JSON at all
        (_set("process.args", "sh"), "process.args"),
        (_set("process.cwd", "relative"), "process.cwd"),
        (_set("process.user.uid", "0"), "process.user.uid"),
        (_set("linux.resources", {"memory": {"limit": "1g"}}), "linux.resources.memory.limit"),
        (_set("linux.resources", {"devices": [{"allow": True, "type": "x"}]}), "linux.resources.devices[0].type"),
        (_set("mounts", [{"destination": "/x", "type": "bind", "source": "/tmp", "options": ["rbind", "nosiud"]}]),
         "nosiud"),
        (_set("annotations", {"a": 1}), "annotations"),
    ],
)
def test_a_malformed_config_exits_non_zero_naming_the_field_and_leaves_no_state(
    tmp_path: Path, bundle: Path, edit, field: str
):
    root, cid = tmp_path / "state", "b-" + uuid.uuid4().hex[:8]
    spec = write(bundle, ["true"], edit)
    if edit is None:
        (bundle / "config.json").write_text("{not json")
    res = runtime(root, "create", "--bundle", str(bundle), cid)
    assert res.returncode != 0 and field in res.stderr, res.stderr
    assert not (root / cid).exists()
    assert not any((Path("/sys/fs/cgroup") / h / spec["linux"]["cgroupsPath"]).exists()
                   for h in os.listdir("/sys/fs/cgroup"))


def _mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path))]


def test_no_mount_namespace_inherits_ours_and_leaves_no_mount_behind(tmp_path: Path, bundle: Path):
    """OCI: a namespace type not listed is the runtime's. Without a mount namespace the root is
    entered by chroot; its mounts live under a private bind of the root (nothing propagates to
    the host's peers) and delete detaches it (runc leaves them on the host)."""
    root, cid = tmp_path / "state", "i-" + uuid.uuid4().hex[:8]

    def edit(spec: dict) -> None:
        spec["linux"]["namespaces"] = [ns for ns in spec["linux"]["namespaces"] if ns["type"] not in ("mount", "uts")]
        spec.pop("hostname", None)

    write(bundle, ["sleep", "30"], edit)
    create(root, bundle, cid, tmp_path / "out")
    try:
        pid = state(root, cid)["pid"]
        assert os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
        assert os.path.realpath(f"/proc/{pid}/root") == str(bundle / "rootfs")
        assert str(bundle / "rootfs" / "proc") in _mounts_under(bundle)
        assert runtime(root, "start", cid).returncode == 0
        ex = runtime(root, "exec", cid, "sh", "-c", "ls /; cat /proc/self/mountinfo | wc -l")
        assert ex.returncode == 0 and "bin" in ex.stdout.split(), ex.stderr
    finally:
        assert runtime(root, "delete", "--force", cid).returncode == 0
    assert _mounts_under(bundle) == []


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1) (util-linux)")
def test_a_mount_namespace_given_by_path_is_joined(tmp_path: Path, bundle: Path):
    holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sleep", "60"])
    root, cid = tmp_path / "state", "p-" + uuid.uuid4().hex[:8]
    try:
        ns = f"/proc/{holder.pid}/ns/mnt"
        deadline = time.monotonic() + 5
        while os.readlink(ns) == os.readlink("/proc/self/ns/mnt"):
            assert time.monotonic() < deadline
            time.sleep(0.01)

        def edit(spec: dict) -> None:
            spec["linux"]["namespaces"] = [
                {"type": "mount", "path": ns} if n["type"] == "mount" else n for n in spec["linux"]["namespaces"]
            ]

        write(bundle, ["sleep", "30"], edit)
        create(root, bundle, cid, tmp_path / "out")
        try:
            assert os.readlink(f"/proc/{state(root, cid)['pid']}/ns/mnt") == os.readlink(ns)
            assert _mounts_under(bundle) == []  # the rootfs mounts are in the joined namespace
        finally:
            assert runtime(root, "delete", "--force", cid).returncode == 0
    finally:
        holder.kill()
        holder.wait()


def test_create_container_and_start_container_hooks_run_in_the_container(tmp_path: Path, bundle: Path):
    """createContainer: after the mounts, before pivot_root (path of the runtime's namespace, run in
    the container's); startContainer: at start, before the process, inside the container."""
    root, cid = tmp_path / "state", "k-" + uuid.uuid4().hex[:8]
    host_log = bundle / "rootfs" / "hooks.log"  # the same file, seen from both sides

    def edit(spec: dict) -> None:
        spec["annotations"] = {"k": "v"}
        spec["hooks"] = {
            "createContainer": [{"path": "/bin/sh", "args": [
                "sh", "-c", f"echo create $(hostname) $(readlink /proc/self/ns/mnt) $(cat) >> {host_log}"]}],
            "startContainer": [{"path": "/bin/sh", "args": [
                "sh", "-c", "echo start $(hostname) $(readlink /proc/self/ns/mnt) $(cat) >> /hooks.log"]}],
        }

    write(bundle, ["sh", "-c", "echo process >> /hooks.log"], edit, hostname="inside")
    create(root, bundle, cid, tmp_path / "out")
    try:
        pid = state(root, cid)["pid"]
        mnt = os.readlink(f"/proc/{pid}/ns/mnt")
        lines = host_log.read_text().splitlines()
        assert len(lines) == 1, (tmp_path / "out").read_text()
        word, host, ns, st = lines[0].split(" ", 3)
        assert (word, host, ns) == ("create", "inside", mnt)
        assert json.loads(st) | {"status": "created"} == json.loads(st)
        assert json.loads(st)["pid"] == pid and json.loads(st)["annotations"] == {"k": "v"}
        assert runtime(root, "start", cid).returncode == 0
        wait_status(root, cid, "stopped")
        lines = host_log.read_text().splitlines()
        assert [line.split(" ", 1)[0] for line in lines] == ["create", "start", "process"]
        word, host, ns, st = lines[1].split(" ", 3)
        assert (host, ns, json.loads(st)["id"], json.loads(st)["pid"]) == ("inside", mnt, cid, pid)
    finally:
        runtime(root, "delete", "--force", cid)


def test_a_failing_create_container_hook_fails_create(tmp_path: Path, bundle: Path):
    root, cid = tmp_path / "state", "f-" + uuid.uuid4().hex[:8]

    def edit(spec: dict) -> None:
        spec["hooks"] = {"createContainer": [{"path": "/bin/false"}]}

    write(bundle, ["true"], edit)
    with open(tmp_path / "err", "w") as err:
        res = runtime(root, "create", "--bundle", str(bundle), cid, stdout=err, stderr=err)
    assert res.returncode == 1 and "createContainer hook /bin/false: exit status 1" in (tmp_path / "err").read_text()
    assert not (root / cid).exists()


def _apparmor_enabled() -> bool:
    try:
        return Path("/sys/module/apparmor/parameters/enabled").read_text().startswith("Y")
    except OSError:
        return False


def _selinux_enabled() -> bool:
    return Path("/sys/fs/selinux/enforce").exists()


@pytest.mark.skipif(_apparmor_enabled(), reason="the host has AppArmor: the profile would be applied")
def test_an_apparmor_profile_without_apparmor_is_refused(tmp_path: Path, bundle: Path):
    """As runc and crun: a profile the kernel cannot apply is an error, never dropped."""
    root, cid = tmp_path / "state", "a-" + uuid.uuid4().hex[:8]
    write(bundle, ["true"], lambda s: s["process"].update(apparmorProfile="berth-test"))
    res = runtime(root, "create", "--bundle", str(bundle), cid)
    assert res.returncode == 1 and "process.apparmorProfile 'berth-test': AppArmor is not enabled" in res.stderr
    assert not (root / cid).exists()


@pytest.mark.skipif(_selinux_enabled(), reason="the host has SELinux: the labels would be applied")
def test_selinux_labels_are_ignored_where_selinux_is_off(tmp_path: Path, bundle: Path):
    """As runc and crun (libselinux is a no-op on such a host)."""
    def edit(spec: dict) -> None:
        spec["process"]["selinuxLabel"] = "system_u:system_r:container_t:s0:c1,c2"
        spec["linux"]["mountLabel"] = "system_u:object_r:container_file_t:s0:c1,c2"

    write(bundle, ["echo", "ran"], edit)
    res = runtime(tmp_path / "state", "run", "--bundle", str(bundle), "s-" + uuid.uuid4().hex[:8])
    assert (res.returncode, res.stdout) == (0, "ran\n"), res.stderr


def test_every_hook_phase_runs_at_its_moment_in_the_specs_order(tmp_path: Path, bundle: Path):
    """runtime-spec: prestart and createRuntime once the runtime environment (namespaces, mounts)
    is made and before pivot_root, then createContainer, (start) startContainer, poststart,
    (delete) poststop. /proc/PID/root shows whether init had pivoted when a hook ran."""
    root, cid = tmp_path / "state", "o-" + uuid.uuid4().hex[:8]
    host_log = bundle / "rootfs" / "order.log"  # the same file, seen from both sides
    probe = "p=$(cat | sed 's/.*\"pid\": *\\([0-9]*\\).*/\\1/'); echo {phase} $p $(readlink /proc/$p/root) >> {log}"

    def hook(phase: str, log: str) -> list[dict]:
        return [{"path": "/bin/sh", "args": ["sh", "-c", probe.format(phase=phase, log=log)], "timeout": 10}]

    def edit(spec: dict) -> None:
        spec["hooks"] = {p: hook(p, str(host_log)) for p in ("prestart", "createRuntime", "createContainer",
                                                            "poststart", "poststop")}
        spec["hooks"]["startContainer"] = [{"path": "/bin/sh", "args": ["sh", "-c", "echo startContainer >> /order.log"]}]

    write(bundle, ["sh", "-c", "echo process >> /order.log"], edit)
    create(root, bundle, cid, tmp_path / "out")
    pid = state(root, cid)["pid"]
    assert runtime(root, "start", cid).returncode == 0
    wait_status(root, cid, "stopped")
    assert runtime(root, "delete", cid).returncode == 0
    lines = [line.split() for line in host_log.read_text().splitlines()]
    assert [w[0] for w in lines] == ["prestart", "createRuntime", "createContainer", "startContainer", "process",
                                     "poststart", "poststop"], lines
    # the create hooks saw init (by its host pid) before pivot_root: its root was still the host's
    assert lines[0][1:] == [str(pid), "/"] and lines[1][1:] == [str(pid), "/"]
    assert lines[2][1] == str(pid)


def test_a_failing_create_runtime_hook_stops_the_container_before_pivot_root(tmp_path: Path, bundle: Path):
    root, cid = tmp_path / "state", "g-" + uuid.uuid4().hex[:8]
    marker = tmp_path / "created-container"

    def edit(spec: dict) -> None:
        spec["hooks"] = {"createRuntime": [{"path": "/bin/false"}],
                         "createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", f"touch {marker}"]}]}
        spec["linux"]["cgroupsPath"] = f"berth-test-oci-{cid}"

    write(bundle, ["true"], edit)
    with open(tmp_path / "err", "w") as err:
        res = runtime(root, "create", "--bundle", str(bundle), cid, stdout=err, stderr=err)
    assert res.returncode == 1 and "createRuntime hook /bin/false" in (tmp_path / "err").read_text()
    assert not marker.exists()  # init went no further than its wait for the hooks
    assert not (root / cid).exists()
    assert not any(Path(d, f"berth-test-oci-{cid}").exists() for d in Path("/sys/fs/cgroup").iterdir())
