"""podman 4.3 (Debian's) runs containers with `podman --runtime .venv/bin/berth-runtime`: run,
exec, logs, stop, rm, -it, --pids-limit, -m, pause, update. podman runs on private roots under
/tmp (--root, --runroot, --tmpdir), with --network none and the cgroupfs manager (no systemd
here); everything is removed with `podman system reset -f` on those roots afterwards."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import IN_CI

REPO = Path(__file__).resolve().parents[2]
RUNTIME = REPO / ".venv" / "bin" / "berth-runtime"
PODMAN = shutil.which("podman")
V1 = Path("/sys/fs/cgroup/pids/cgroup.procs").exists()

pytestmark = [
    pytest.mark.skipif(PODMAN is None and not IN_CI, reason="podman not installed (bash scripts/setup.sh --with-reference)"),
]


class Podman:
    def __init__(self, top: Path) -> None:
        self.top = top
        self.base = [str(PODMAN), "--root", str(top / "root"), "--runroot", str(top / "run"), "--tmpdir",
                     str(top / "tmp"), "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                     "--runtime", str(RUNTIME)]

    def __call__(self, *args: str, check: bool = True, timeout: float = 120, **kw) -> subprocess.CompletedProcess[str]:
        kw.setdefault("capture_output", True)
        res = subprocess.run([*self.base, *args], text=True, timeout=timeout, **kw)
        if check:
            assert res.returncode == 0, f"podman {' '.join(args)}: {res.stderr}"
        return res


@pytest.fixture
def podman(busybox_tar: Path) -> Iterator[Podman]:
    if PODMAN is None:
        pytest.fail("CI=true but podman is not installed")
    top = Path(tempfile.mkdtemp(prefix="berth-podman-"))
    p = Podman(top)
    try:
        p("import", str(busybox_tar), "localhost/berth-busybox:latest")
        yield p
    finally:
        subprocess.run([*p.base, "system", "reset", "-f"], capture_output=True, timeout=120)
        shutil.rmtree(top, ignore_errors=True)
        _remove_empty_libpod_cgroups()


def _remove_empty_libpod_cgroups() -> None:
    """podman (cgroupfs manager) leaves libpod_parent/conmon in every hierarchy; rmdir removes
    only empty ones, so another podman's live cgroups stay."""
    for parent in Path("/sys/fs/cgroup").glob("*/libpod_parent"):
        for d in (parent / "conmon", parent):
            try:
                d.rmdir()
            except FileNotFoundError:
                continue  # not made in this hierarchy
            except OSError:
                break  # busy: another podman's, leave it


def test_run_exit_status_and_output(podman: Podman):
    res = podman("run", "--rm", "--network", "none", "localhost/berth-busybox", "sh", "-c", "echo out; echo err >&2; exit 3",
                 check=False)
    assert (res.returncode, res.stdout, res.stderr) == (3, "out\n", "err\n")
    missing = podman("run", "--rm", "--network", "none", "localhost/berth-busybox", "/no/such", check=False)
    assert missing.returncode == 127 and "no such file or directory" in missing.stderr


def test_detached_logs_exec_stop_rm(podman: Podman):
    name = "b" + uuid.uuid4().hex[:10]
    podman("run", "-d", "--name", name, "--network", "none", "localhost/berth-busybox", "sh", "-c",
           "trap 'echo bye; exit 0' TERM; echo started; while true; do sleep 0.1; done")
    deadline = time.monotonic() + 20
    while podman("logs", name).stdout != "started\n":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    res = podman("exec", name, "sh", "-c", "echo in; cat /proc/1/cmdline | tr '\\0' ' '; exit 4", check=False)
    assert (res.returncode, res.stdout) == (4, "in\nsh -c trap 'echo bye; exit 0' TERM; echo started; while true; do sleep 0.1; done ")
    assert podman("exec", "-e", "X=1", "-u", "65534", "-w", "/tmp", name, "sh", "-c", "echo $X $(id -u) $(pwd)").stdout == "1 65534 /tmp\n"
    assert podman("pause", name).returncode == 0
    assert podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip() == "paused"
    assert podman("unpause", name).returncode == 0
    assert podman("stop", "-t", "10", name).returncode == 0
    assert podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip() == "0"
    assert podman("logs", name).stdout == "started\nbye\n"
    assert podman("rm", name).returncode == 0
    assert podman("ps", "-a", "--format", "{{.Names}}").stdout.strip() == ""


@pytest.mark.skipif(not V1, reason="reads the v1 pids and memory files of the container (this host is hybrid)")
def test_pids_limit_memory_and_update(podman: Podman):
    name = "l" + uuid.uuid4().hex[:10]
    podman("run", "-d", "--name", name, "--network", "none", "--pids-limit", "50", "-m", "64m", "localhost/berth-busybox",
           "sleep", "60")
    try:
        read = "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.shares"
        assert podman("exec", name, "sh", "-c", read).stdout.split()[:2] == ["50", str(64 << 20)]
        podman("update", "--cpu-shares", "512", "--memory", "96m", name)  # podman 4.3 has no --pids-limit here
        assert podman("exec", name, "sh", "-c", read).stdout.split() == ["50", str(96 << 20), "512"]
        res = podman("exec", name, "sh", "-c", "for i in $(seq 60); do sleep 5 & done; wait", check=False)
        assert "can't fork" in res.stderr or "Resource temporarily unavailable" in res.stderr, res.stderr
    finally:
        podman("rm", "-f", "-t", "0", name)


def _on_a_pty(argv: list[str], script: bytes, want: bytes, timeout: float = 60) -> tuple[int, bytes]:
    """Run ``argv`` with a pty as its terminal; type ``script`` once ``want`` shows."""
    master, slave = os.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    out, sent = b"", False
    deadline = time.monotonic() + timeout
    try:
        while True:
            assert time.monotonic() < deadline, out
            if select.select([master], [], [], 0.1)[0]:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            if not sent and want in out:
                os.write(master, script)
                sent = True
            if proc.poll() is not None and not select.select([master], [], [], 0.2)[0]:
                break
        return proc.wait(timeout=30), out.replace(b"\r", b"")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_interactive_tty_run_and_exec(podman: Podman):
    code, out = _on_a_pty([*podman.base, "run", "-it", "--rm", "--network", "none", "localhost/berth-busybox", "sh", "-c",
                           "tty; read line; echo got:$line; exit 5"], b"hello\r", b"/dev/pts/")
    assert code == 5 and b"/dev/pts/0\n" in out and b"got:hello" in out, out
    name = "t" + uuid.uuid4().hex[:10]
    podman("run", "-d", "--name", name, "--network", "none", "localhost/berth-busybox", "sleep", "60")
    try:
        code, out = _on_a_pty([*podman.base, "exec", "-it", name, "sh", "-c", "tty; read x; echo x=$x"], b"yes\r",
                              b"/dev/pts/")
        assert code == 0 and b"x=yes" in out, out
    finally:
        podman("rm", "-f", "-t", "0", name)
