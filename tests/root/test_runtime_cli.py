"""berth-runtime's command line beyond create/start/state/kill/delete: exec's options, kill --all
and signal names, update, ps, list, features, spec, run -d and run's own console, --preserve-fds,
--log, --version and usage errors. Real containers on a busybox root."""

from __future__ import annotations

import json
import os
import select
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
V1 = Path("/sys/fs/cgroup/pids/cgroup.procs").exists()


def rt(root: Path, *args: str, **kw) -> subprocess.CompletedProcess[str]:
    kw.setdefault("capture_output", "stdout" not in kw and "stdin" not in kw)
    return subprocess.run([sys.executable, "-m", "berth.runtime", "--root", str(root), *args], text=True,
                          timeout=60, **kw)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    b = tmp_path / "bundle"
    busybox_rootfs(b / "rootfs")
    return b


def write(bundle: Path, args: list[str], edit=None, **kw) -> dict:
    spec = docker_like_spec("rootfs", args, **kw)
    spec["linux"]["cgroupsPath"] = f"berth-test-cli-{uuid.uuid4().hex[:10]}"
    if edit is not None:
        edit(spec)
    (bundle / "config.json").write_text(json.dumps(spec))
    return spec


@pytest.fixture
def running(tmp_path: Path, bundle: Path):
    """A running `sleep` container: (state root, id, spec); deleted afterwards."""
    root, cid = tmp_path / "state", "r-" + uuid.uuid4().hex[:8]
    spec = write(bundle, ["sleep", "60"], hostname="cli")
    # the container keeps run's stdio (as with runc): a file, since a pipe would not see EOF
    with open(tmp_path / "run.log", "w") as log:
        res = rt(root, "run", "--detach", "--bundle", str(bundle), cid, stdout=log, stderr=log)
    assert res.returncode == 0, (tmp_path / "run.log").read_text()
    yield root, cid, spec
    rt(root, "delete", "--force", cid)


def test_exec_options_and_exit_status(running, tmp_path: Path):
    root, cid, _ = running
    res = rt(root, "exec", "--env", "FOO=bar", "-e", "PATH=/bin", "--cwd", "/tmp", "--user", "65534:65534",
             "--additional-gids", "5", cid, "sh", "-c", "echo $FOO $PATH; pwd; id -u; id -g; id -G; exit 3")
    assert res.returncode == 3, res.stderr
    assert res.stdout.split("\n")[:5] == ["bar /bin", "/tmp", "65534", "65534", "65534 5"]
    proc = tmp_path / "process.json"
    proc.write_text(json.dumps({"args": ["sh", "-c", "hostname; echo $X"], "env": ["X=from-file"], "cwd": "/"}))
    res = rt(root, "exec", "--process", str(proc), cid)
    assert (res.returncode, res.stdout) == (0, "cli\nfrom-file\n"), res.stderr
    pid_file = tmp_path / "exec.pid"
    # a detached process keeps exec's stdio: not pipes, or we would wait for it to end
    res = rt(root, "exec", "--detach", "--pid-file", str(pid_file), cid, "sleep", "30",
             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    assert int(pid_file.read_text()) in json.loads(rt(root, "ps", "--format", "json", cid).stdout)
    missing = rt(root, "exec", cid, "/no/such")
    assert missing.returncode == 1 and 'exec: "/no/such": stat /no/such: no such file or directory' in missing.stderr


def test_kill_signal_names_numbers_and_all(running):
    root, cid, _ = running
    res = rt(root, "exec", "--detach", cid, "sleep", "30", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert res.returncode == 0
    pids = json.loads(rt(root, "ps", "--format", "json", cid).stdout)
    assert len(pids) == 2
    bad = rt(root, "kill", cid, "SIGNOPE")
    assert bad.returncode == 1 and "unknown signal 'SIGNOPE'" in bad.stderr
    assert rt(root, "kill", cid, "0").returncode == 0  # signal 0: only checks
    assert rt(root, "kill", "--all", cid, "SIGKILL").returncode == 0
    deadline = time.monotonic() + 10
    while json.loads(rt(root, "state", cid).stdout)["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"
    gone = rt(root, "kill", cid, "TERM")
    assert gone.returncode == 1 and "is not running" in gone.stderr


@pytest.mark.skipif(not V1, reason="reads the v1 pids and memory files (this host's hybrid layout has them)")
def test_update_with_flags_and_a_resources_file(running, tmp_path: Path):
    root, cid, spec = running
    cg = spec["linux"]["cgroupsPath"]
    assert rt(root, "update", "--memory", "64m", "--pids-limit", "33", cid).returncode == 0
    assert Path(f"/sys/fs/cgroup/pids/{cg}/pids.max").read_text().strip() == "33"
    assert Path(f"/sys/fs/cgroup/memory/{cg}/memory.limit_in_bytes").read_text().strip() == str(64 << 20)
    res = rt(root, "update", "--resources", "-", cid, input=json.dumps({"pids": {"limit": 44}, "memory": {"limit": 96 << 20}}))
    assert res.returncode == 0, res.stderr
    assert Path(f"/sys/fs/cgroup/pids/{cg}/pids.max").read_text().strip() == "44"
    refused = rt(root, "update", "--resources", "-", cid, input=json.dumps({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}))
    assert refused.returncode == 1 and "linux.resources.hugepageLimits" in refused.stderr


def test_ps_list_pause_resume(running):
    root, cid, _ = running
    pid = json.loads(rt(root, "state", cid).stdout)["pid"]
    table = rt(root, "ps", cid).stdout.splitlines()
    assert "PID" in table[0].split() and len(table) == 2 and str(pid) in table[1].split()
    listed = rt(root, "list", "--format", "json").stdout
    assert [(s["id"], s["status"]) for s in json.loads(listed)] == [(cid, "running")]
    assert rt(root, "list", "-q").stdout == cid + "\n"
    assert rt(root, "pause", cid).returncode == 0
    assert json.loads(rt(root, "state", cid).stdout)["status"] == "paused"
    refused = rt(root, "exec", cid, "true")
    assert refused.returncode == 1 and "paused" in refused.stderr
    assert rt(root, "resume", cid).returncode == 0
    again = rt(root, "resume", cid)
    assert again.returncode == 1 and "not paused" in again.stderr


@pytest.fixture
def default_cgroup_parent():
    """The template has no cgroupsPath, so its container goes under berth-runtime's default parent
    (``berth-runtime/<id>``), which outlives the container as dockerd's ``docker`` parent does:
    removed afterwards where this test made it."""
    parents = [h / "berth-runtime" for h in Path("/sys/fs/cgroup").iterdir() if h.is_dir() and not h.is_symlink()]
    if (Path("/sys/fs/cgroup") / "cgroup.controllers").exists():
        parents = [Path("/sys/fs/cgroup/berth-runtime")]
    made = [p for p in parents if not p.exists()]
    yield
    for p in made:
        try:
            p.rmdir()
        except FileNotFoundError:
            pass


def test_features_spec_version_and_usage(tmp_path: Path, bundle: Path, default_cgroup_parent: None):
    root = tmp_path / "state"
    feats = json.loads(rt(root, "features").stdout)
    assert feats["ociVersionMax"] == "1.1.0" and "user" in feats["linux"]["namespaces"]
    assert set(feats["hooks"]) == {"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"}
    assert "SCMP_ACT_ERRNO" in feats["linux"]["seccomp"]["actions"] and "rbind" in feats["mountOptions"]
    assert rt(root, "spec", "--bundle", str(bundle)).returncode == 0
    template = json.loads((bundle / "config.json").read_text())
    assert template["process"]["args"] == ["sh"] and template["root"]["path"] == "rootfs"
    again = rt(root, "spec", "--bundle", str(bundle))
    assert again.returncode == 1 and "exists" in again.stderr
    # the template runs, as runc's does (terminal off: no console here)
    template["process"]["terminal"] = False
    template["process"]["args"] = ["sh", "-c", "echo from-template"]
    (bundle / "config.json").write_text(json.dumps(template))
    res = rt(root, "run", "--bundle", str(bundle), "t-" + uuid.uuid4().hex[:8])
    assert (res.returncode, res.stdout) == (0, "from-template\n"), res.stderr
    assert rt(root, "--version").stdout.startswith("berth-runtime version ")
    for argv, text in ((["bogus"], "unknown command 'bogus'"), (["delete"], "delete needs a container id"),
                       (["kill", "--nope", "x"], "kill: unknown option '--nope'")):
        res = rt(root, *argv)
        assert res.returncode == 2 and text in res.stderr, res.stderr


def test_log_file_gets_errors_in_json_or_text(tmp_path: Path):
    log = tmp_path / "runtime.log"
    res = subprocess.run([sys.executable, "-m", "berth.runtime", "--root", str(tmp_path), "--log", str(log),
                          "--log-format", "json", "state", "nope"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    entry = json.loads(log.read_text())
    assert entry["level"] == "error" and entry["msg"] == "container nope does not exist" and entry["time"]
    subprocess.run([sys.executable, "-m", "berth.runtime", "--root", str(tmp_path), "--log", str(log), "kill", "nope"],
                   capture_output=True, timeout=60)
    assert 'level=error msg="container nope does not exist"' in log.read_text().splitlines()[1]


def test_preserve_fds_and_listen_fds_reach_the_process(tmp_path: Path, bundle: Path):
    write(bundle, ["sh", "-c", "cat <&3 || exit 9"])
    (tmp_path / "passed").write_text("through fd 3\n")
    code = ("import os, subprocess, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.dup2(fd, 3); "
            "sys.exit(subprocess.run(sys.argv[2:], pass_fds=(3,)).returncode)")
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "passed"), sys.executable, "-m", "berth.runtime",
                          "--root", str(tmp_path / "state"), "run", "--preserve-fds", "1", "--bundle", str(bundle),
                          "p-" + uuid.uuid4().hex[:8]], capture_output=True, text=True, timeout=60)
    assert (res.returncode, res.stdout) == (0, "through fd 3\n"), res.stderr
    res = subprocess.run([sys.executable, "-m", "berth.runtime", "--root", str(tmp_path / "state"), "run",
                          "--bundle", str(bundle), "q-" + uuid.uuid4().hex[:8]], capture_output=True, text=True, timeout=60)
    assert res.returncode == 9  # without it, fd 3 is closed in the container


def test_run_with_a_terminal_proxies_our_pty(tmp_path: Path, bundle: Path):
    """process.terminal without --console-socket: run is the console itself (runc run -t)."""
    write(bundle, ["sh", "-c", "tty; read line; echo got:$line"], lambda s: s["process"].update(terminal=True))
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "berth.runtime", "--root", str(tmp_path / "state"), "run",
                             "--bundle", str(bundle), "t-" + uuid.uuid4().hex[:8]],
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    out = b""
    try:
        deadline = time.monotonic() + 20
        sent = False
        while proc.poll() is None or select.select([master], [], [], 0)[0]:
            assert time.monotonic() < deadline, out
            if select.select([master], [], [], 0.1)[0]:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                out += chunk
            if not sent and b"/dev/pts/0" in out:
                os.write(master, b"hello\r")
                sent = True
        assert proc.wait(timeout=10) == 0, out
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    text = out.replace(b"\r", b"").decode()
    assert "/dev/pts/0\n" in text and "got:hello" in text


def test_seccomp_programs_are_compiled_once_and_kept_under_the_root(tmp_path: Path, bundle: Path):
    """A profile is compiled by the first create and read back by later ones, from
    ``<root>/.seccomp`` (0700, files 0600); a kept program that is not exactly what was written,
    or that others could have changed, is compiled again and replaced."""
    import hashlib

    from berth.libcontainer import seccomp

    root = tmp_path / "state"

    def edit(spec: dict) -> None:
        spec["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}],
        }

    write(bundle, ["sh", "-c", "/bin/pwd || echo denied"], edit)

    def run() -> str:
        res = rt(root, "run", "--bundle", str(bundle), "s-" + uuid.uuid4().hex[:8])
        assert res.returncode == 0, res.stderr
        return res.stdout

    assert run() == "denied\n"
    cache = root / ".seccomp"
    files = list(cache.iterdir())
    assert len(files) == 1, files
    assert cache.stat().st_mode & 0o777 == 0o700 and files[0].stat().st_mode & 0o777 == 0o600
    compiled = files[0].read_bytes()
    # the next run loads what is kept there: a planted program that allows everything shows it
    allow = b"\x06\x00\x00\x00\x00\x00\xff\x7f"  # ret SECCOMP_RET_ALLOW
    files[0].write_bytes(seccomp._MAGIC + hashlib.sha256(allow).digest() + allow)
    assert run() == "/\n"
    # a kept program others could have written is not trusted: compiled again, and replaced
    files[0].chmod(0o644)
    assert run() == "denied\n"
    assert files[0].read_bytes() == compiled and files[0].stat().st_mode & 0o777 == 0o600
    # the cache's name is no container's
    res = rt(root, "create", "--bundle", str(bundle), ".seccomp")
    assert res.returncode != 0 and "invalid container id" in res.stderr
