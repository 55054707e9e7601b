"""berth-runtime, the OCI command line over libcontainer: create/start/state/kill/delete/run,
and the same bundle under runc for comparison where runc is installed."""

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
    pytest.mark.skipif(
        not os.path.exists(BUSYBOX), reason="needs /bin/busybox (apt-get install busybox-static)"
    ),
]


def runtime(state_root: Path, *args: str, **kw) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "berth.runtime", "--root", str(state_root), *args]
    return subprocess.run(cmd, text=True, timeout=60, **kw)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    b = tmp_path / "bundle"
    busybox_rootfs(b / "rootfs")
    return b


def write_config(bundle: Path, args: list[str], **kw) -> None:
    spec = docker_like_spec("rootfs", args, **kw)
    spec["linux"]["cgroupsPath"] = f"berth-test-rt-{uuid.uuid4().hex[:10]}"
    (bundle / "config.json").write_text(json.dumps(spec))


def _diff(runc: str, ours: str) -> str:
    import difflib

    return "\n".join(difflib.unified_diff(runc.splitlines(), ours.splitlines(), "runc", "berth", lineterm=""))


def state(state_root: Path, cid: str) -> dict:
    res = runtime(state_root, "state", cid, capture_output=True)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_create_start_state_kill_delete(tmp_path: Path, bundle: Path):
    root, cid = tmp_path / "state", "c-" + uuid.uuid4().hex[:8]
    write_config(bundle, ["sh", "-c", "echo started; exec sleep 60"])
    out, err = tmp_path / "out", tmp_path / "err"
    # init keeps create's stdio (as with runc): files here, since a pipe would not see EOF
    with open(out, "w") as f, open(err, "w") as e:
        res = runtime(
            root,
            "create",
            "--bundle",
            str(bundle),
            "--pid-file",
            str(tmp_path / "pid"),
            cid,
            stdout=f,
            stderr=e,
        )
    assert res.returncode == 0, err.read_text()
    st = state(root, cid)
    assert st["status"] == "created" and st["pid"] == int((tmp_path / "pid").read_text())
    assert st["bundle"] == str(bundle) and out.read_text() == ""  # nothing ran yet
    taken = runtime(root, "create", "--bundle", str(bundle), cid, capture_output=True)
    assert taken.returncode == 1 and "exists" in taken.stderr
    assert runtime(root, "start", cid).returncode == 0
    deadline = time.monotonic() + 5
    while out.read_text() != "started\n" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert out.read_text() == "started\n"
    assert state(root, cid)["status"] == "running"
    refused = runtime(root, "delete", cid, capture_output=True)
    assert refused.returncode == 1 and "not stopped: running" in refused.stderr
    assert runtime(root, "kill", cid, "KILL").returncode == 0
    deadline = time.monotonic() + 5
    while state(root, cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert state(root, cid)["status"] == "stopped"
    assert runtime(root, "delete", cid).returncode == 0
    gone = runtime(root, "state", cid, capture_output=True)
    assert gone.returncode == 1 and "does not exist" in gone.stderr


def test_delete_force_of_a_created_container(tmp_path: Path, bundle: Path):
    root, cid = tmp_path / "state", "c-" + uuid.uuid4().hex[:8]
    write_config(bundle, ["true"])
    res = runtime(
        root, "create", "--bundle", str(bundle), cid, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    assert res.returncode == 0
    pid = state(root, cid)["pid"]
    assert runtime(root, "delete", "--force", cid).returncode == 0
    assert not (root / cid).exists()
    stat = Path(f"/proc/{pid}/stat")
    assert not stat.exists() or stat.read_text().split(") ")[1][0] == "Z"


def test_run_returns_the_exit_status_and_create_reports_runc_text(tmp_path: Path, bundle: Path):
    root = tmp_path / "state"
    write_config(bundle, ["sh", "-c", "echo out; exit 3"])
    res = runtime(root, "run", "--bundle", str(bundle), "r-" + uuid.uuid4().hex[:8], capture_output=True)
    assert (res.returncode, res.stdout) == (3, "out\n")
    write_config(bundle, ["/no/such/binary"])
    cid = "e-" + uuid.uuid4().hex[:8]
    res = runtime(root, "create", "--bundle", str(bundle), cid, capture_output=True)
    assert res.returncode == 1
    assert 'exec: "/no/such/binary": stat /no/such/binary: no such file or directory' in res.stderr
    assert not (root / cid).exists()


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc not installed (apt-get install runc)")
def test_same_bundle_same_view_as_runc(tmp_path: Path, bundle: Path):
    script = "echo $$; hostname; id; ls /dev; grep -E '^Cap(Eff|Bnd)' /proc/self/status; ls /sys/class/net; cat /proc/1/cmdline"
    write_config(bundle, ["sh", "-c", script], hostname="same")
    ours = runtime(
        tmp_path / "state", "run", "--bundle", str(bundle), "o-" + uuid.uuid4().hex[:8], capture_output=True
    )
    theirs = subprocess.run(
        [
            "runc",
            "--root",
            str(tmp_path / "runc"),
            "run",
            "--bundle",
            str(bundle),
            "t-" + uuid.uuid4().hex[:8],
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout, _diff(theirs.stdout, ours.stdout)


def test_exec_ps_pause_resume(tmp_path: Path, bundle: Path):
    root, cid = tmp_path / "state", "x-" + uuid.uuid4().hex[:8]
    write_config(bundle, ["sleep", "60"], hostname="rt-exec")
    with open(tmp_path / "log", "w") as log:
        res = runtime(root, "create", "--bundle", str(bundle), cid, stdout=log, stderr=log)
    assert res.returncode == 0, (tmp_path / "log").read_text()
    try:
        assert runtime(root, "start", cid).returncode == 0
        pid = state(root, cid)["pid"]
        ex = runtime(root, "exec", cid, "sh", "-c", "hostname; cat /proc/1/comm; exit 4", capture_output=True)
        assert (ex.returncode, ex.stdout) == (4, "rt-exec\nsleep\n"), ex.stderr
        ps = runtime(root, "ps", "--format", "json", cid, capture_output=True)
        assert json.loads(ps.stdout) == [pid]
        assert runtime(root, "pause", cid).returncode == 0
        assert state(root, cid)["status"] == "paused"
        assert runtime(root, "resume", cid).returncode == 0
        assert state(root, cid)["status"] == "running"
    finally:
        assert runtime(root, "delete", "--force", cid).returncode == 0


def test_console_socket_like_runc(tmp_path: Path, bundle: Path):
    import socket

    root, cid = tmp_path / "state", "t-" + uuid.uuid4().hex[:8]
    write_config(bundle, ["sh", "-c", "tty; echo done"])
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["terminal"] = True
    (bundle / "config.json").write_text(json.dumps(cfg))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "console.sock"))
    listener.listen(1)
    try:
        res = runtime(
            root,
            "create",
            "--bundle",
            str(bundle),
            "--console-socket",
            str(tmp_path / "console.sock"),
            cid,
            capture_output=True,
        )
        assert res.returncode == 0, res.stderr
        conn, _ = listener.accept()
        _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
        conn.close()
        assert runtime(root, "start", cid).returncode == 0
        out = b""
        while True:
            try:
                chunk = os.read(fds[0], 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        os.close(fds[0])
        assert out.replace(b"\r", b"") == b"/dev/pts/0\ndone\n"
    finally:
        listener.close()
        runtime(root, "delete", "--force", cid)


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc not installed (apt-get install runc)")
@pytest.mark.parametrize("privileged", [False, True])
def test_exec_drivers_spec_gives_the_same_view_as_runc(tmp_path: Path, bundle: Path, privileged: bool):
    """The spec berthd really builds (drivers.exec.spec), run by runc and by libcontainer."""
    from berth.drivers.exec.spec import SpecInput, build_spec
    from berth.libcontainer.capabilities import number

    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "hosts").write_text("127.0.0.1 localhost\n")
    (etc / "hostname").write_text("cmp\n")
    (etc / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    script = (
        "cat /proc/mounts; ls -la /dev; grep -E '^(Cap|NoNew|Seccomp)' /proc/self/status; "
        "cat /etc/hosts /etc/hostname /etc/resolv.conf; hostname; env | sort; ulimit -n; umask; id; "
        "ls /sys/fs/cgroup 2>&1 | head -3; cat /proc/1/oom_score_adj"
    )
    inp = SpecInput(
        args=("sh", "-c", script),
        rootfs=str(bundle / "rootfs"),
        env=("FOO=bar",),
        hostname="cmp",
        hosts_path=str(etc / "hosts"),
        resolv_conf_path=str(etc / "resolv.conf"),
        hostname_path=str(etc / "hostname"),
        privileged=privileged,
    )
    spec = build_spec(inp)
    spec["linux"]["cgroupsPath"] = f"berth-test-rt-{uuid.uuid4().hex[:10]}"
    assert ("seccomp" in spec["linux"]) is not privileged  # Docker's default profile, resolved
    if privileged:
        # runc refuses capabilities its caller lacks (root here has no CAP_SYS_RESOURCE):
        # compare on what this host can grant (libcontainer leaves the others out by itself)
        with open("/proc/self/status") as f:
            have = int(next(line for line in f if line.startswith("CapBnd:")).split()[1], 16)
        caps = spec["process"]["capabilities"]
        for key in ("bounding", "effective", "permitted", "inheritable"):
            caps[key] = [c for c in caps.get(key, []) if have >> number(c) & 1]
    (bundle / "config.json").write_text(json.dumps(spec))
    ours = runtime(
        tmp_path / "state", "run", "--bundle", str(bundle), "o-" + uuid.uuid4().hex[:8], capture_output=True
    )
    theirs = subprocess.run(
        [
            "runc",
            "--root",
            str(tmp_path / "runc"),
            "run",
            "--bundle",
            str(bundle),
            "t-" + uuid.uuid4().hex[:8],
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0, ours.stderr
    # one deliberate difference: berth makes the v1 /sys/fs/cgroup tmpfs read-only when the cgroup
    # mount is (not --privileged, whose cgroups are writable as Docker's), runc does not
    expected = theirs.stdout
    if not privileged:
        expected = expected.replace("tmpfs /sys/fs/cgroup tmpfs rw,", "tmpfs /sys/fs/cgroup tmpfs ro,")
    assert ours.stdout == expected, _diff(expected, ours.stdout)


def test_hooks_get_the_state_and_a_failing_create_hook_fails_create(tmp_path: Path, bundle: Path):
    root, cid = tmp_path / "state", "h-" + uuid.uuid4().hex[:8]
    write_config(bundle, ["true"])
    cfg = json.loads((bundle / "config.json").read_text())
    log = tmp_path / "hooks.log"

    def hook(phase: str) -> dict:
        return {"path": "/bin/sh", "args": ["sh", "-c", f"echo {phase} $(cat) >> {log}"]}

    cfg["hooks"] = {p: [hook(p)] for p in ("createRuntime", "poststart", "poststop")}
    (bundle / "config.json").write_text(json.dumps(cfg))
    res = runtime(
        root, "create", "--bundle", str(bundle), cid, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    assert res.returncode == 0
    assert runtime(root, "start", cid).returncode == 0
    deadline = time.monotonic() + 5
    while state(root, cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert runtime(root, "delete", cid).returncode == 0
    phases = [
        (line.split(" ", 1)[0], json.loads(line.split(" ", 1)[1])) for line in log.read_text().splitlines()
    ]
    assert [p for p, _ in phases] == ["createRuntime", "poststart", "poststop"]
    assert phases[0][1]["status"] == "created" and phases[2][1]["status"] == "stopped"
    assert phases[1][1]["status"] in ("running", "stopped")  # `true` may be done already
    assert all(s["id"] == cid for _, s in phases)

    cfg["hooks"] = {"createRuntime": [{"path": "/bin/false"}]}
    (bundle / "config.json").write_text(json.dumps(cfg))
    res = runtime(
        root, "create", "--bundle", str(bundle), cid, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert res.returncode == 1 and "createRuntime hook /bin/false: exit status 1" in res.stderr
    assert not (root / cid).exists()


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1) (util-linux)")
def test_hostname_is_set_in_a_joined_uts_namespace_like_runc(tmp_path: Path, bundle: Path):
    """A uts entry with a path is joined and the hostname set there; runc does the same."""
    holder = subprocess.Popen(["unshare", "--uts", "sleep", "60"])
    try:
        ns = f"/proc/{holder.pid}/ns/uts"
        deadline = time.monotonic() + 5
        while os.readlink(ns) == os.readlink("/proc/self/ns/uts") and time.monotonic() < deadline:
            time.sleep(0.01)  # until unshare(1) has made the namespace
        host_name = os.uname().nodename
        runners = {
            "berth": lambda cid: runtime(
                tmp_path / "state", "run", "--bundle", str(bundle), cid, capture_output=True
            ),
            "runc": lambda cid: subprocess.run(
                ["runc", "--root", str(tmp_path / "runc"), "run", "--bundle", str(bundle), cid],
                capture_output=True,
                text=True,
                timeout=60,
            ),
        }
        if shutil.which("runc") is None:
            del runners["runc"]  # berth alone still shows the behaviour
        for name, run in runners.items():
            write_config(bundle, ["hostname"], hostname=f"joined-{name}")
            cfg = json.loads((bundle / "config.json").read_text())
            cfg["linux"]["namespaces"] = [
                {"type": "uts", "path": ns} if n["type"] == "uts" else n for n in cfg["linux"]["namespaces"]
            ]
            (bundle / "config.json").write_text(json.dumps(cfg))
            res = run(f"{name[0]}-{uuid.uuid4().hex[:8]}")
            assert (res.returncode, res.stdout) == (0, f"joined-{name}\n"), res.stderr
            seen = subprocess.run(
                ["nsenter", "-t", str(holder.pid), "-u", "hostname"], capture_output=True, text=True
            )
            assert seen.stdout == f"joined-{name}\n"  # set in the joined namespace itself
        assert os.uname().nodename == host_name
    finally:
        holder.kill()
        holder.wait()
