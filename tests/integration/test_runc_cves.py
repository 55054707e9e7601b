"""Regression tests for the classes of runc's container-escape CVEs, probed from inside containers,
side by side with dockerd 20.10 (Debian's runc 1.1.5) where that helps to read the result.

- CVE-2019-5736: overwriting the host binary that runs a container's init or exec through
  /proc/PID/exe. berth's init and exec launcher are the host's Python while they set up
  (non-dumpable until execve); a container that can see them (CAP_SYS_PTRACE) or runs that binary
  (``#!/proc/self/exe``) still cannot open it for writing: the kernel answers ETXTBSY as long as
  any process executes it, and the container's own monitor does for as long as it lives.
- CVE-2024-21626: a host descriptor (a directory of the cgroup fs, say) left open into the
  container, reachable as /proc/self/fd/N, the cwd among them.
- CVE-2021-30465: mount targets redirected through symlinks (the race is
  tests/root/test_mount_target_race.py; here the image's own symlinks).
- CVE-2025-31133 / CVE-2025-52881 / CVE-2019-19921: masks and /proc writes redirected (a
  /dev/null that is a symlink to a host /proc file, a /proc that is not the container's procfs,
  mounts inside /proc).
- masked paths bypassed through mounts made from inside the container.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import harness

PROBE_SOURCE = Path(__file__).with_name("cve_probe.c")


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r


@pytest.fixture(scope="session")
def probe_dir() -> Iterator[Path]:
    """``cve_probe`` (static) and ``evil`` (a script whose interpreter is /proc/self/exe)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        reason = "no C compiler to build the probe (bash scripts/setup.sh installs gcc, libc6-dev)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    tmp = Path(tempfile.mkdtemp(prefix="bh-cve-", dir="/tmp"))
    try:
        out = subprocess.run([cc, "-static", "-O2", "-o", str(tmp / "cve_probe"), str(PROBE_SOURCE)],
                             capture_output=True, text=True)
        assert out.returncode == 0, f"building the probe failed:\n{out.stderr}"
        (tmp / "evil").write_text("#!/proc/self/exe\n")
        (tmp / "evil").chmod(0o755)
        tmp.chmod(0o755)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def pair(
    berthd: harness.Berthd, dockerd_factory: Callable[..., harness.Dockerd], busybox_tar: Path
) -> tuple[harness.Berthd, harness.Dockerd]:
    dockerd = dockerd_factory()
    for d in (berthd, dockerd):
        d.import_image(busybox_tar)
    return berthd, dockerd


# ---- CVE-2019-5736 -------------------------------------------------------------------------


def watch_execs(d: harness.Daemon, probe_dir: Path, *flags: str) -> list[list[str]]:
    """Run the exe watcher as a container's PID 1, exec into it (plain, and through a script
    whose interpreter is /proc/self/exe); its report: [pid, foreign, now, later, target]."""
    ok(d.docker("run", "-d", "--name", "watch", "--network", "none", "-v", f"{probe_dir}:/probe:ro", *flags,
                "busybox", "/probe/cve_probe", "exe-watch", "6"))
    for _ in range(3):
        d.docker("exec", "watch", "/probe/evil")  # fails one way or another; what could be seen counts
        ok(d.docker("exec", "watch", "true"))
    ok(d.docker("wait", "watch"))
    report = ok(d.docker("logs", "watch")).stdout
    ok(d.docker("rm", "watch"))
    return [line.split(" ", 4) for line in report.splitlines() if line]


@pytest.mark.conformance
def test_the_binary_behind_init_and_exec_is_never_writable(
    pair: tuple[harness.Berthd, harness.Dockerd], probe_dir: Path
) -> None:
    for d in pair:
        for flags in ((), ("--cap-add", "SYS_PTRACE")):
            seen = watch_execs(d, probe_dir, *flags)
            writable = [s for s in seen if s[1] == "1" and "ok" in (s[2], s[3])]
            assert not writable, f"{d.name} {flags}: a host binary could be opened for writing: {writable}"
            if d.name == "berth" and flags:
                # with CAP_SYS_PTRACE the exec launchers (the host's Python) are visible: the
                # probe did reach the host binary, and the kernel refused it for writing
                foreign = [s for s in seen if s[1] == "1"]
                assert foreign and all(s[2] == s[3] == "ETXTBSY" for s in foreign), seen
            if d.name == "berth" and not flags:
                # without it, nothing of the host is visible while it sets up (non-dumpable)
                assert not [s for s in seen if s[1] == "1" and s[2] != "ETXTBSY"], seen


# ---- CVE-2024-21626 ------------------------------------------------------------------------


@pytest.mark.conformance
def test_no_host_descriptor_reaches_init_or_exec(pair: tuple[harness.Berthd, harness.Dockerd], probe_dir: Path) -> None:
    def shape(text: str) -> list[str]:  # pipe inode numbers differ run to run
        return [line.split(" ")[0] + " " + line.split(" ")[1].split(":")[0] for line in text.splitlines()]

    got = {}
    for d in pair:
        init = ok(d.docker("run", "--rm", "--network", "none", "-v", f"{probe_dir}:/probe:ro", "busybox",
                           "/probe/cve_probe", "fds")).stdout
        ok(d.docker("run", "-d", "--name", "fds", "--network", "none", "-v", f"{probe_dir}:/probe:ro", "busybox", "sleep", "60"))
        execd = ok(d.docker("exec", "fds", "/probe/cve_probe", "fds")).stdout
        tty = ok(d.docker("exec", "-t", "fds", "/probe/cve_probe", "fds")).stdout.replace("\r", "")
        got[d.name] = (shape(init), shape(execd), shape(tty))
    assert got["berth"] == got["docker"]
    assert got["berth"][0] == ["0 /dev/null", "1 pipe", "2 pipe", "cwd /"], got
    assert got["berth"][2] == ["0 /dev/pts/0", "1 /dev/pts/0", "2 /dev/pts/0", "cwd /"], got


def test_a_workdir_through_proc_self_fd_is_refused(berthd: harness.Berthd, busybox_image: str) -> None:
    """Whatever descriptor number: the container starts nowhere outside its root."""
    ok(berthd.docker("run", "-d", "--name", "wd", "busybox", "sleep", "60"))
    for n in range(3, 16):
        for argv in (("run", "--rm", "-w", f"/proc/self/fd/{n}", "busybox", "pwd"),
                     ("exec", "-w", f"/proc/self/fd/{n}", "wd", "pwd")):
            r = berthd.docker(*argv)
            assert r.returncode != 0 or (r.stdout.startswith("/") and "unreachable" not in r.stdout), (argv, r)
    r = berthd.docker("run", "--rm", "-w", "/proc/self/cwd", "busybox", "pwd")
    assert r.returncode == 0 and r.stdout == "/\n", r  # a magic link inside the root is fine: it is the root


# ---- CVE-2021-30465 and images with symlinks where mounts go -------------------------------


def symlink_image(busybox_tar: Path, out: Path, escape: str) -> Path:
    """busybox with /proc a symlink to /tmp/p, and /data a symlink climbing out to ``escape``."""
    with tarfile.open(busybox_tar) as src, tarfile.open(out, "w") as dst:
        for m in src.getmembers():
            if m.name.strip("./") != "proc":
                dst.addfile(m, src.extractfile(m) if m.isfile() else None)
        for name, target in (("proc", "tmp/p"), ("data", "../" * 12 + escape.lstrip("/"))):
            link = tarfile.TarInfo(name)
            link.type, link.linkname = tarfile.SYMTYPE, target
            dst.addfile(link)
        p = tarfile.TarInfo("tmp/p")
        p.type, p.mode = tarfile.DIRTYPE, 0o755
        dst.addfile(p)
    return out


@pytest.mark.conformance
def test_image_symlinks_keep_mounts_in_the_rootfs(
    pair: tuple[harness.Berthd, harness.Dockerd], busybox_tar: Path, tmp_path: Path
) -> None:
    escape = f"/tmp/bh-escape-{os.getpid()}-{tmp_path.name}"
    tar = symlink_image(busybox_tar, tmp_path / "links.tar", escape)
    volume = tmp_path / "vol"
    volume.mkdir()
    (volume / "v").write_text("volume\n")
    tmp_path.chmod(0o755)
    for d in pair:
        ok(d.docker("import", "-c", 'CMD ["sh"]', str(tar), "links"))
        # the volume lands where /data leads *inside* the root; the host path is never made
        out = ok(d.docker("run", "--rm", "--network", "none", "-v", f"{volume}:/data", "links", "cat", f"{escape}/v")).stdout
        assert out == "volume\n"
        assert not os.path.lexists(escape), f"{d.name} made {escape} on the host"
        # procfs goes on a directory of the container's own (the init layer shadows the link);
        # sysctls and the masks land on it
        out = ok(d.docker("run", "--rm", "--network", "none", "--sysctl", "net.ipv4.ip_forward=1", "links", "sh", "-c",
                          "[ -L /proc ] && echo link || echo dir; cat /proc/sys/net/ipv4/ip_forward; wc -c < /proc/keys")).stdout
        assert out.split() == ["dir", "1", "0"], (d.name, out)


# ---- masks and /proc writes ------------------------------------------------------------------


def test_a_dev_null_that_is_a_symlink_does_not_unmask(berthd: harness.Berthd, busybox_image: str, tmp_path: Path) -> None:
    """CVE-2025-31133: with /dev bound from a directory whose `null` is a symlink to a host
    /proc file, the masks (bind mounts of /dev/null) would expose that file over /proc/keys.
    berth refuses to start it; the directory is left as it was (no device nodes are made in a
    bound /dev). dockerd 20.10's runc 1.1.5 here binds /proc/sys/kernel/core_pattern over
    /proc/keys (read-only only thanks to the /proc/sys bind)."""
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "null").symlink_to("/proc/sys/kernel/core_pattern")
    r = berthd.docker("run", "--rm", "-v", f"{dev}:/dev", "busybox", "cat", "/proc/keys")
    assert r.returncode != 0 and "/dev/null is a symbolic link, not the null device" in r.stderr, r
    assert sorted(os.listdir(dev)) == ["null"] and (dev / "null").is_symlink()


@pytest.mark.conformance
def test_mounts_inside_proc_are_refused(pair: tuple[harness.Berthd, harness.Dockerd], tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x\n")
    tmp_path.chmod(0o755)
    for d in pair:
        for dest in ("/proc/keys", "/proc/sys/kernel", "/proc"):
            r = d.docker("run", "--rm", "--network", "none", "-v", f"{tmp_path / 'f' if dest == '/proc/keys' else tmp_path}:{dest}",
                         "busybox", "true")
            assert r.returncode == 125, (d.name, dest, r.stderr)
            assert "cannot be mounted because it is" in r.stderr, (d.name, dest, r.stderr)
    status, body = pair[0].api("POST", "/containers/create", {
        "Image": "busybox", "HostConfig": {"Binds": [f"{tmp_path}:/proc/sys"]}})
    assert status == 400 and "cannot be mounted because it is inside /proc" in body["message"]  # berth: at create


@pytest.mark.conformance
def test_masked_paths_hold_against_mounts_from_inside(pair: tuple[harness.Berthd, harness.Dockerd]) -> None:
    """Without CAP_SYS_ADMIN nothing can be mounted (the masks stay); a bind of a masked file is
    the mask. With CAP_SYS_ADMIN a container may mount a procfs of its own and see what the masks
    hide, in Docker as in berth (CAP_SYS_ADMIN is not a boundary; AppArmor, absent here, would
    stop it under Docker): the same answers from both."""
    script = (
        "mkdir /x /y; touch /f; mount -t proc proc /x 2>/dev/null && echo proc-mounted || echo proc-refused;"
        " mount --bind /proc/keys /f 2>/dev/null && echo bind:$(wc -c < /f) || echo bind-refused;"
        " wc -c < /proc/keys"
    )
    for flags in ((), ("--cap-add", "SYS_ADMIN")):
        got, want = (ok(d.docker("run", "--rm", "--network", "none", *flags, "busybox", "sh", "-c", script)).stdout.split()
                     for d in pair)
        assert got == want, (flags, got, want)
        assert got[-1] == "0"  # /proc/keys itself stays masked
        assert got[:2] == (["proc-refused", "bind-refused"] if not flags else ["proc-mounted", "bind:0"]), got
