"""Real containers from a busybox rootfs: namespaces, mounts, user, errors, exec, no leaks."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from berth.libcontainer import ContainerInitError, Mount, Stdio, create, exec_process
from berth.libcontainer.testing import BUSYBOX, busybox_rootfs, child_subreaper, docker_like_spec

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces and mounts"),
    pytest.mark.skipif(
        not os.path.exists(BUSYBOX), reason="needs /bin/busybox (apt-get install busybox-static)"
    ),
]


def _read_fd(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def run(spec: dict, mounts: list[Mount] | None = None, cgroup=None) -> tuple[int, str, str]:
    """Create, start and wait; returns (wait status, stdout, stderr)."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    null = os.open("/dev/null", os.O_RDONLY)
    try:
        init = create(spec, mounts or [], Stdio(null, out_w, err_w), cgroup)
    finally:
        os.close(out_w)
        os.close(err_w)
        os.close(null)
    try:
        init.start()
        out = _read_fd(out_r)
        err = _read_fd(err_r)
    finally:
        _, status = os.waitpid(init.pid, 0)
    return status, out.decode(), err.decode()


def mount_targets() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


@pytest.fixture(autouse=True)
def _reaper():
    with child_subreaper():  # exec_process's processes are children of a throwaway launcher
        yield


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    before = mount_targets()
    root = busybox_rootfs(tmp_path / "rootfs")
    yield root
    leaked = {m for m in mount_targets() - before if str(tmp_path) in m}
    assert not leaked, f"mounts left on the host: {leaked}"


def default_oci_profile() -> dict:
    """Docker's default seccomp profile as berthd resolves it for the default capabilities."""
    from berth.libcontainer.capabilities import DEFAULT_CAPS
    from berth.libcontainer.seccompprofile import default_profile, to_oci

    oci = to_oci(default_profile(), list(DEFAULT_CAPS))
    assert oci is not None
    return oci


def sh(root: Path, script: str, **kw) -> dict:
    return docker_like_spec(str(root), ["sh", "-c", script], **kw)


def test_pid1_hostname_proc_and_only_lo(rootfs: Path):
    status, out, err = run(
        sh(
            rootfs,
            "echo $$; hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; "
            "ls /sys/class/net; cat /sys/class/net/lo/operstate; "
            "ip -o link | grep -c LOOPBACK,UP",
            hostname="c-" + uuid.uuid4().hex[:8],
        )
    )
    assert status == 0, err
    lines = out.split("\n")
    assert lines[0] == "1"
    assert lines[1].startswith("c-")
    assert lines[2].startswith("sh -c")
    assert lines[3] == "lo"  # the only interface in the new network namespace
    assert lines[4] == "unknown"  # lo up (operstate of lo is "unknown" when up)
    assert lines[5] == "1"


def test_user_groups_cwd_env(rootfs: Path):
    (rootfs / "work").mkdir()
    spec = sh(
        rootfs,
        "id -u; id -g; id -G; pwd; echo $FOO; echo $HOME",
        uid=65534,
        gid=65534,
        additional_gids=[65534, 10],
        cwd="/work",
        env=["FOO=bar baz", "PATH=/bin"],
    )
    status, out, err = run(spec)
    assert status == 0, err
    uid, gid, groups, cwd, foo, home = out.split("\n")[:6]
    assert (uid, gid, cwd, foo, home) == ("65534", "65534", "/work", "bar baz", "/home")
    assert set(groups.split()) == {"65534", "10"}


def test_capabilities_are_docker_default_and_nonroot_has_none(rootfs: Path):
    status, out, err = run(sh(rootfs, "grep -E '^Cap(Eff|Bnd)' /proc/self/status"))
    assert status == 0, err
    assert "CapEff:\t00000000a80425fb" in out and "CapBnd:\t00000000a80425fb" in out
    status, out, err = run(sh(rootfs, "grep ^CapEff /proc/self/status", uid=1000, gid=1000))
    assert status == 0, err
    assert "CapEff:\t0000000000000000" in out


def test_masked_and_readonly_paths_and_devices(rootfs: Path):
    script = (
        "cat /proc/kcore | wc -c; echo 1 > /proc/sys/kernel/ostype 2>/dev/null || echo ro; "
        "ls /proc/acpi 2>/dev/null | wc -l; stat -c '%t:%T' /dev/null /dev/zero /dev/urandom; "
        "readlink /dev/ptmx; readlink /dev/fd; echo hi > /dev/null && echo null-ok"
    )
    status, out, err = run(sh(rootfs, script))
    assert status == 0, err
    assert out.split("\n")[:8] == ["0", "ro", "0", "1:3", "1:5", "1:9", "pts/ptmx", "/proc/self/fd"]
    assert "null-ok" in out


def test_rlimit_and_no_new_privileges(rootfs: Path):
    spec = sh(rootfs, "ulimit -n; grep NoNewPrivs /proc/self/status")
    spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 10**9}]  # hard clamped
    spec["process"]["noNewPrivileges"] = True
    status, out, err = run(spec)
    assert status == 0, err
    assert out.split("\n")[0] == "512"
    assert "NoNewPrivs:\t1" in out


def test_exit_status_and_readonly_root(rootfs: Path):
    status, out, err = run(sh(rootfs, "touch /x 2>&1; exit 3", readonly=True))
    assert os.waitstatus_to_exitcode(status) == 3
    assert "Read-only file system" in out


@pytest.mark.parametrize(
    ("args", "text", "code"),
    [
        (
            ["/no/such/binary"],
            'exec: "/no/such/binary": stat /no/such/binary: no such file or directory',
            127,
        ),
        (["nosuchcmd"], 'exec: "nosuchcmd": executable file not found in $PATH', 127),
        (["/etc/passwd"], 'exec: "/etc/passwd": permission denied', 126),
    ],
)
def test_exec_errors_before_the_barrier(rootfs: Path, args, text, code):
    with pytest.raises(ContainerInitError) as info:
        run(docker_like_spec(str(rootfs), args))
    assert info.value.message == text
    assert info.value.exit_code == code


def test_missing_cwd_is_created_but_not_for_exec(rootfs: Path):
    # like runc (and dockerd's WORKDIR): init makes a missing cwd inside the container
    status, out, err = run(sh(rootfs, "pwd", cwd="/new/dir"))
    assert status == 0, err
    assert out == "/new/dir\n"
    # an exec'd process gets runc's chdir error instead
    null = os.open("/dev/null", os.O_RDWR)
    spec = sh(rootfs, "exec sleep 30")
    init = create(spec, [], Stdio(null, null, null), None)
    try:
        init.start()
        with pytest.raises(ContainerInitError) as info:
            exec_process(init.pid, {"args": ["true"], "cwd": "/nope"}, Stdio(null, null, null), None, spec)
        assert (
            info.value.message
            == 'chdir to cwd ("/nope") set in config.json failed: no such file or directory'
        )
        assert info.value.exit_code == 128
    finally:
        os.kill(init.pid, signal.SIGKILL)
        os.waitpid(init.pid, 0)
        os.close(null)


def test_cwd_under_a_file_fails_before_the_barrier(rootfs: Path):
    with pytest.raises(ContainerInitError) as info:
        run(sh(rootfs, "true", cwd="/etc/passwd/x"))
    assert "not a directory" in info.value.message.lower()
    assert info.value.exit_code == 128


def test_overlay_rootfs_and_bind_mounts(tmp_path: Path):
    before = mount_targets()
    lower = busybox_rootfs(tmp_path / "lower")
    upper, work, merged = tmp_path / "upper", tmp_path / "work", tmp_path / "merged"
    for d in (upper, work, merged):
        d.mkdir()
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    spec = sh(merged, "cat /etc/hosts; echo written > /new; mount | grep ' / '")
    spec["mounts"].append(
        {"destination": "/etc/hosts", "type": "bind", "source": str(hosts), "options": ["rbind", "ro"]}
    )
    overlay = Mount(
        "overlay", "overlay", str(merged), (f"lowerdir={lower}", f"upperdir={upper}", f"workdir={work}")
    )
    status, out, err = run(spec, [overlay])
    assert status == 0, err
    assert out.startswith("127.0.0.1 localhost\n")
    assert "overlay on / type overlay" in out
    assert (upper / "new").read_text() == "written\n"  # the write went to the upper dir
    assert not (lower / "new").exists()
    assert not any(merged.iterdir())  # never mounted on the host
    # nothing of ours on the host (others' daemons may mount and unmount meanwhile: look at ours only)
    assert {m for m in mount_targets() ^ before if str(tmp_path) in m} == set()


def test_exec_process_joins_the_container(rootfs: Path):
    name = "x-" + uuid.uuid4().hex[:8]
    spec = sh(rootfs, "echo ready; exec sleep 30", hostname=name)
    null = os.open("/dev/null", os.O_RDONLY)
    out_r, out_w = os.pipe()
    init = create(spec, [], Stdio(null, out_w, out_w), None)
    try:
        init.start()
        assert os.read(out_r, 100) == b"ready\n"
        pid = exec_process(
            init.pid,
            {
                "args": ["sh", "-c", "hostname; cat /proc/1/comm; pwd; id -u"],
                "cwd": "/tmp",
                "user": {"uid": 65534, "gid": 65534},
            },
            Stdio(null, out_w, out_w),
            None,
            spec,
        )
        _, status = os.waitpid(pid, 0)
        assert status == 0
        time.sleep(0.05)
        out = os.read(out_r, 1000).decode()
        assert out == f"{name}\nsleep\n/tmp\n65534\n"
        with pytest.raises(ContainerInitError) as info:
            exec_process(init.pid, {"args": ["nosuchcmd"]}, Stdio(null, out_w, out_w), None, spec)
        assert info.value.exit_code == 127
    finally:
        os.kill(init.pid, signal.SIGKILL)
        os.waitpid(init.pid, 0)
        for fd in (null, out_r, out_w):
            os.close(fd)


def test_abort_before_start_runs_nothing(rootfs: Path):
    marker = rootfs / "ran"
    null = os.open("/dev/null", os.O_RDWR)
    try:
        init = create(sh(rootfs, "touch /ran"), [], Stdio(null, null, null), None)
        init.abort()
    finally:
        os.close(null)
    assert not marker.exists()
    with pytest.raises(ChildProcessError):
        os.waitpid(init.pid, os.WNOHANG)


def test_host_network_when_network_namespace_omitted(rootfs: Path):
    # the namespace itself, not a count of interfaces: concurrent tests add and remove bridges
    # and veths on the host while this runs
    before = set(os.listdir("/sys/class/net"))
    status, out, err = run(sh(rootfs, "readlink /proc/self/ns/net; ls /sys/class/net", network=False))
    after = set(os.listdir("/sys/class/net"))
    assert status == 0, err
    ns, *names = out.split()
    assert ns == os.readlink("/proc/self/ns/net")
    assert before & after <= set(names)  # every host interface that lived throughout is seen


@pytest.mark.parametrize("no_new_privs", [False, True])
def test_seccomp_default_profile_blocks_mount_even_with_cap_sys_admin(rootfs: Path, no_new_privs: bool):
    # the default profile resolved for Docker's default caps (no CAP_SYS_ADMIN: no mount, no
    # unshare), while the process itself is given CAP_SYS_ADMIN: only the filter can refuse
    profile = default_oci_profile()

    script = "grep ^Seccomp: /proc/self/status; mkdir -p /mnt; mount -t tmpfs t /mnt 2>&1; unshare -n true 2>&1; echo end"
    spec = sh(rootfs, script)
    caps = spec["process"]["capabilities"]
    for key in ("bounding", "effective", "permitted"):
        caps[key] = [*caps[key], "CAP_SYS_ADMIN"]  # so only seccomp can refuse the mount
    spec["process"]["noNewPrivileges"] = no_new_privs
    spec["linux"]["seccomp"] = profile
    status, out, err = run(spec)
    assert status == 0, err
    assert out.startswith("Seccomp:\t2\n")
    assert "mount: permission denied" in out, out  # busybox's words for EPERM
    assert "unshare(0x40000000): Operation not permitted" in out, out
    # without the profile the same container can mount (CAP_SYS_ADMIN) -- shows the filter is what refused
    del spec["linux"]["seccomp"]
    status, plain, err = run(spec)
    assert status == 0, err
    assert plain.startswith("Seccomp:\t0\n") and "permission denied" not in plain
    assert "Operation not permitted" not in plain


def test_exec_process_gets_the_seccomp_filter(rootfs: Path):
    profile = default_oci_profile()

    spec = sh(rootfs, "exec sleep 30")
    spec["linux"]["seccomp"] = profile
    null = os.open("/dev/null", os.O_RDONLY)
    out_r, out_w = os.pipe()
    init = create(spec, [], Stdio(null, out_w, out_w), None)
    try:
        init.start()
        proc = {"args": ["grep", "^Seccomp:", "/proc/self/status"]}
        pid = exec_process(init.pid, proc, Stdio(null, out_w, out_w), None, spec)
        assert os.waitpid(pid, 0)[1] == 0
        assert os.read(out_r, 100) == b"Seccomp:\t2\n"
    finally:
        os.kill(init.pid, signal.SIGKILL)
        os.waitpid(init.pid, 0)
        for fd in (null, out_r, out_w):
            os.close(fd)


def test_joining_another_containers_namespaces_and_host_pid(rootfs: Path):
    first = sh(rootfs, "exec sleep 30", hostname="first")
    null = os.open("/dev/null", os.O_RDWR)
    a = create(first, [], Stdio(null, null, null), None)
    try:
        a.start()
        second = sh(
            rootfs, "hostname; ps -o comm | grep -c sleep; cat /sys/class/net/lo/operstate", hostname=None
        )
        second["linux"]["namespaces"] = [
            {"type": "mount"},
            {"type": "pid", "path": f"/proc/{a.pid}/ns/pid"},
            {"type": "network", "path": f"/proc/{a.pid}/ns/net"},
            {"type": "uts", "path": f"/proc/{a.pid}/ns/uts"},
        ]
        status, out, err = run(second)
        assert status == 0, err
        assert out.split("\n")[:3] == ["first", "1", "unknown"]  # A's hostname, A's sleep, A's lo (up)
        # the caller's PID namespace for children is its own again after each create()
        assert os.readlink("/proc/self/ns/pid_for_children") == os.readlink("/proc/self/ns/pid")
    finally:
        os.kill(a.pid, signal.SIGKILL)
        os.waitpid(a.pid, 0)
        os.close(null)


def test_host_pid_namespace_when_pid_omitted(rootfs: Path):
    spec = sh(rootfs, "echo $$")
    spec["linux"]["namespaces"] = [ns for ns in spec["linux"]["namespaces"] if ns["type"] != "pid"]
    status, out, err = run(spec)
    assert status == 0, err
    assert int(out) > 1


def test_sysctl_in_the_containers_network_namespace(rootfs: Path):
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        host_value = f.read()
    spec = sh(rootfs, "cat /proc/sys/net/ipv4/ip_unprivileged_port_start")
    spec["linux"]["sysctl"] = {"net.ipv4.ip_unprivileged_port_start": "0"}
    status, out, err = run(spec)
    assert status == 0, err
    assert out == "0\n"
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        assert f.read() == host_value  # set in the container's network namespace only


def test_terminal_is_the_controlling_tty_and_dev_console(rootfs: Path):
    master, slave = os.openpty()
    spec = sh(
        rootfs,
        "test -t 0 && echo is-a-tty; tty; cut -d' ' -f7 /proc/self/stat; readlink /proc/1/fd/0 >/dev/null && ls /dev/console",
    )
    spec["process"]["terminal"] = True
    try:
        init = create(spec, [], Stdio(slave, slave, slave, tty=True), None)
    finally:
        os.close(slave)
    init.start()
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO once the last slave fd closes
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    _, status = os.waitpid(init.pid, 0)
    assert status == 0, out
    lines = out.decode().replace("\r", "").split("\n")
    assert lines[0] == "is-a-tty"
    assert lines[1] == "/dev/console"
    assert int(lines[2]) != 0  # tty_nr: the pty is the session's controlling terminal
    assert lines[3] == "/dev/console"


def test_ambient_capabilities_reach_a_non_root_process(rootfs: Path):
    spec = sh(rootfs, "grep -E '^Cap(Eff|Amb)' /proc/self/status", uid=1000, gid=1000)
    caps = spec["process"]["capabilities"]
    caps["ambient"] = ["CAP_NET_BIND_SERVICE"]
    caps["effective"] = caps["permitted"] = caps["inheritable"] = ["CAP_NET_BIND_SERVICE"]
    status, out, err = run(spec)
    assert status == 0, err
    assert "CapEff:\t0000000000000400" in out and "CapAmb:\t0000000000000400" in out


def test_non_root_user_can_reopen_its_stdio(rootfs: Path):
    # /dev/stdout is /proc/self/fd/1: a pipe made by root; runc hands stdio to the user
    status, out, err = run(sh(rootfs, "echo hi > /dev/stdout; echo oops > /dev/stderr", uid=1000, gid=1000))
    assert status == 0, err
    assert (out, err) == ("hi\n", "oops\n")


def _read_pty(master: int) -> str:
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO once the last slave fd closes
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return out.decode().replace("\r", "")


def test_console_socket_gives_a_pty_inside_the_container(rootfs: Path):
    import socket

    ours, theirs = socket.socketpair()
    spec = sh(
        rootfs, "tty; ls /dev/pts; stat -c %u /dev/pts/0; cut -d' ' -f7 /proc/self/stat", uid=1000, gid=1000
    )
    spec["process"]["terminal"] = True
    try:
        init = create(spec, [], Stdio(-1, -1, -1, tty=True, console_socket=theirs.fileno()), None)
    finally:
        theirs.close()
    msg, fds, _, _ = socket.recv_fds(ours, 1024, 1)
    ours.close()
    assert msg == b"/dev/pts/0" and len(fds) == 1
    init.start()
    out = _read_pty(fds[0])
    _, status = os.waitpid(init.pid, 0)
    assert status == 0, out
    lines = out.split("\n")
    assert lines[0] == "/dev/pts/0"  # what docker run -t shows
    assert lines[1].split() == ["0", "ptmx"]
    assert lines[2] == "1000"  # handed to the user, like runc
    assert int(lines[3]) != 0  # the controlling terminal


def test_exec_process_with_a_console(rootfs: Path):
    import socket

    null = os.open("/dev/null", os.O_RDWR)
    spec = sh(rootfs, "exec sleep 30")
    init = create(spec, [], Stdio(null, null, null), None)
    os.close(null)
    try:
        init.start()
        ours, theirs = socket.socketpair()
        try:
            pid = exec_process(
                init.pid, {"args": ["tty"], "terminal": True}, Stdio(-1, -1, -1, True, theirs.fileno()), None, spec
            )
        finally:
            theirs.close()
        _, fds, _, _ = socket.recv_fds(ours, 1024, 1)
        ours.close()
        out = _read_pty(fds[0])
        assert os.waitpid(pid, 0)[1] == 0
        assert out == "/dev/pts/0\n"
    finally:
        os.kill(init.pid, signal.SIGKILL)
        os.waitpid(init.pid, 0)


def test_privileged_caps_beyond_the_callers_are_left_out(rootfs: Path):
    from berth.libcontainer.capabilities import NAMES

    spec = sh(rootfs, "grep -E '^Cap(Eff|Bnd)' /proc/self/status")
    every = ["CAP_" + n for n in NAMES]
    spec["process"]["capabilities"] = {
        k: every for k in ("bounding", "effective", "permitted", "inheritable")
    }
    status, out, err = run(spec)
    assert status == 0, err
    with open("/proc/self/status") as f:
        ours = next(line for line in f if line.startswith("CapBnd:")).split()[1]
    assert f"CapEff:\t{ours}" in out and f"CapBnd:\t{ours}" in out


def test_umask_is_dockers_whatever_the_callers(rootfs: Path):
    old = os.umask(0o077)
    try:
        status, out, err = run(sh(rootfs, "umask"))
    finally:
        os.umask(old)
    assert status == 0, err
    assert out == "0022\n"


@pytest.mark.parametrize("propagation", ["rshared", "shared"])
def test_overlay_plan_under_a_shared_host_mount_stays_inside(tmp_path: Path, propagation: str):
    """rootfsPropagation shared: the mount holding the root is made private before the graph
    driver's overlay is mounted on it, so the host (whose tmpfs here is shared) never sees it."""
    from berth.libcontainer import kernel

    shared = tmp_path / "shared"
    shared.mkdir()
    kernel.mount("tmpfs", str(shared), "tmpfs", 0, "size=64m")
    try:
        kernel.mount(None, str(shared), None, kernel.MS_SHARED)
        lower = busybox_rootfs(shared / "lower")
        upper, work, merged = shared / "upper", shared / "work", shared / "merged"
        for d in (upper, work, merged):
            d.mkdir()
        spec = sh(merged, "grep -c ' / / .*shared:' /proc/self/mountinfo; echo ready; exec sleep 30")
        spec["linux"]["rootfsPropagation"] = propagation
        overlay = Mount(
            "overlay", "overlay", str(merged), (f"lowerdir={lower}", f"upperdir={upper}", f"workdir={work}")
        )
        ours = {m for m in mount_targets() if m.startswith(str(shared))}
        null = os.open("/dev/null", os.O_RDONLY)
        out_r, out_w = os.pipe()
        try:
            init = create(spec, [overlay], Stdio(null, out_w, out_w), None)
        finally:
            os.close(out_w)
            os.close(null)
        try:
            init.start()
            out = b""
            while b"ready" not in out and (chunk := os.read(out_r, 100)):
                out += chunk
            assert out == b"1\nready\n"  # its / is shared inside
            assert {m for m in mount_targets() if m.startswith(str(shared))} == ours
        finally:
            os.kill(init.pid, signal.SIGKILL)
            os.waitpid(init.pid, 0)
            os.close(out_r)
        assert not any(merged.iterdir())
    finally:
        kernel.umount2(str(shared), kernel.MNT_DETACH)


def test_imports_are_sealed_once_the_file_system_is_the_containers():
    # init (after pivot_root) and an exec's launcher (after setns) call seal_imports: an import
    # would read a module the container put at the host's path, so none happens any more
    import sys

    from berth.libcontainer.confine import seal_imports

    name = next(m for m in ("wave", "colorsys", "sndhdr", "netrc") if m not in sys.modules)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            seal_imports()
            import json  # noqa: F401  (already loaded: fine)

            try:
                __import__(name)
            except ImportError:
                code = 0
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0, f"importing {name} still worked after seal_imports"


def test_an_exec_leads_its_own_session_and_its_parent_is_outside(rootfs: Path):
    spec = sh(rootfs, "exec sleep 30")
    null = os.open("/dev/null", os.O_RDWR)
    out_r, out_w = os.pipe()
    init = create(spec, [], Stdio(null, null, null), None)
    try:
        init.start()
        # the process's own view: its session is its own, its parent is outside the pid namespace
        script = "read -r a b c d e f rest < /proc/$$/stat; echo $$ $d $f"
        pid = exec_process(init.pid, {"args": ["sh", "-c", script]}, Stdio(null, out_w, out_w), None, spec)
        assert os.waitpid(pid, 0)[1] == 0
        me, ppid, session = os.read(out_r, 100).decode().split()
        assert ppid == "0" and session == me
    finally:
        os.kill(init.pid, signal.SIGKILL)
        os.waitpid(init.pid, 0)
        for fd in (null, out_r, out_w):
            os.close(fd)
