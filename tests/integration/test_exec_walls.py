"""Every way into a container gets the same walls (issue 5): `docker exec` against the init.

A real berthd, the real docker CLI and docker-py. What an exec'd process is -- capabilities,
no_new_privs, seccomp, user and groups, cgroup, namespaces -- is read from its own
/proc/self/status and compared with the container's init's; a watcher inside the container
(one as the init, one as an exec, as in the issue's escape) looks at every new process and must
never see one outside the container's mount namespace or root, with capabilities the init lacks,
or showing a file of the host.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest

import harness

pytestmark = pytest.mark.integration

WALLS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters",
         "Uid", "Gid", "Groups")
# the exec'd sh reports on itself ($$): status lines, cgroup, namespaces -- then the same of pid 1
REPORT = (
    "for p in $$ 1; do grep -E '^(" + "|".join(WALLS) + "):' /proc/$p/status; cat /proc/$p/cgroup; "
    "for n in mnt pid net uts ipc cgroup; do readlink /proc/$p/ns/$n; done; echo ===; done"
)


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
    return r


def _walls(text: str) -> tuple[dict[str, str], dict[str, str]]:
    exec_part, init_part, _ = text.split("===\n")
    return _fields(exec_part), _fields(init_part)


def _fields(part: str) -> dict[str, str]:
    out = {}
    for i, line in enumerate(part.splitlines()):
        key, sep, value = line.partition(":\t")
        out[key if sep else f"line{i}"] = value if sep else line
    return out


@pytest.mark.parametrize(
    "run_flags",
    [
        [],
        ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"],
        ["--cap-add", "SYS_ADMIN"],
        ["--privileged"],
        ["--user", "1000:1000"],
        ["--user", "1000:1000", "--group-add", "10", "--group-add", "4242"],
    ],
    ids=["default", "cap-drop-all-nnp", "cap-add-sys-admin", "privileged", "user", "group-add"],
)
def test_exec_gets_exactly_the_inits_walls(berthd: harness.Berthd, busybox_image: str, run_flags: list[str]) -> None:
    ok(berthd.docker("run", "-d", "--name", "walls", *run_flags, busybox_image, "sleep", "600"))
    got_exec, got_init = _walls(ok(berthd.docker("exec", "walls", "sh", "-c", REPORT)).stdout)
    for key in WALLS:
        assert key in got_init, (key, got_init)
    assert got_exec == got_init  # every status line, the cgroup lines and all six namespaces
    if run_flags[:1] == ["--cap-drop"]:
        assert got_exec["CapEff"] == "0000000000000000" and got_exec["NoNewPrivs"] == "1"
    if not run_flags or run_flags[0] != "--privileged":
        assert got_exec["Seccomp"] == "2"  # the container's filter, in the exec too
    if "--group-add" in run_flags:
        assert set(got_exec["Groups"].split()) >= {"10", "4242"}
        # -u by name or number gets the container's --group-add groups too (Docker's getUser)
        as_user = _fields(ok(berthd.docker("exec", "-u", "1000", "walls", "cat", "/proc/self/status")).stdout)
        assert set(as_user["Groups"].split()) >= {"10", "4242"}
    # docker-py's exec_run goes the same way
    client = berthd.client()
    code, out = client.containers.get("walls").exec_run(["sh", "-c", REPORT])
    assert code == 0, out
    py_exec, py_init = _walls(out.decode())
    assert py_exec == py_init == got_init


def test_exec_user_and_privileged_follow_the_inits_rule(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("run", "-d", "--name", "root", busybox_image, "sleep", "600"))
    init = _fields(ok(berthd.docker("exec", "root", "cat", "/proc/1/status")).stdout)
    # -u 1000 in a root container: the bounding set stays, a non-root user holds nothing (as the
    # init of `docker run -u 1000` does)
    as_user = _fields(ok(berthd.docker("exec", "-u", "1000", "root", "cat", "/proc/self/status")).stdout)
    assert as_user["CapBnd"] == init["CapBnd"] and as_user["CapEff"] == as_user["CapPrm"] == "0000000000000000"
    assert as_user["Uid"].split()[0] == "1000" and as_user["Seccomp"] == init["Seccomp"]
    # --privileged: every capability (Docker's exec --privileged), the container's seccomp still
    priv = _fields(ok(berthd.docker("exec", "--privileged", "root", "cat", "/proc/self/status")).stdout)
    assert int(priv["CapBnd"], 16) > int(init["CapBnd"], 16) and priv["CapEff"] == priv["CapBnd"]
    assert priv["Seccomp"] == init["Seccomp"] and priv["NoNewPrivs"] == init["NoNewPrivs"]
    # -u 0 in a --user 1000 container: root's sets by the same rule
    ok(berthd.docker("run", "-d", "--name", "user", "--user", "1000", busybox_image, "sleep", "600"))
    as_root = _fields(ok(berthd.docker("exec", "-u", "0", "user", "cat", "/proc/self/status")).stdout)
    assert as_root["CapEff"] == as_root["CapBnd"] == init["CapBnd"]


def test_an_exec_has_only_its_stdio(berthd: harness.Berthd, busybox_image: str) -> None:
    # CVE-2024-21626: nothing of the daemon, the monitor or its helper leaks into the process
    ok(berthd.docker("run", "-d", "--name", "fds", busybox_image, "sleep", "600"))
    # (ls is a child of sh -- two commands, so sh does not exec it -- and lists the sh's fds)
    out = ok(berthd.docker("exec", "fds", "sh", "-c", "ls /proc/$$/fd; exit 0")).stdout
    assert out.split() == ["0", "1", "2"]
    out = ok(berthd.docker("exec", "-t", "fds", "sh", "-c", "ls /proc/$$/fd; exit 0")).stdout
    assert out.split() == ["0", "1", "2"]


WATCH = r"""
# watch.sh NAME MARKER: until /t/stop exists, look at every new process in /proc (builtins only:
# no fork, so the loop is fast) and log any outside pid 1's mount namespace or root, with
# capabilities pid 1 lacks, or that shows the host's MARKER through /proc/PID/root.
# A test -ef is false when either stat fails too, and a process that exits between the -e/-d and
# the -ef (a short-lived child of the container's own shells) no longer has a root or namespaces:
# so a difference counts only when the process's root (mount namespace) is still there after the
# -ef as it was before it -- exit is for good, so its -ef stat saw a live process that differs.
name=$1; marker=$2; out=/t/violations-$name
: > $out
initcap=
{ while read k v; do [ "$k" = CapEff: ] && initcap=$v; done; } < /proc/1/status
seen=" $$ "
touch /t/ready-$name
while [ ! -e /t/stop ]; do
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    case "$seen" in *" $p "*) continue;; esac
    seen="$seen$p "
    if [ -e "$d/root$marker" ]; then echo "HOST $p" >> $out; fi
    if [ -e $d/ns/mnt ] && ! [ $d/ns/mnt -ef /proc/1/ns/mnt ] && [ -e $d/ns/mnt ]; then
      echo "MNTNS $p" >> $out
    fi
    if [ -d $d/root/ ] && ! [ $d/root/ -ef /proc/1/root/ ] && [ -d $d/root/ ]; then echo "ROOT $p" >> $out; fi
    cap=
    { while read k v; do [ "$k" = CapEff: ] && cap=$v; done < $d/status; } 2>/dev/null
    if [ -n "$cap" ] && [ $(( 0x$cap & ~0x$initcap )) != 0 ]; then echo "CAPS $p $cap" >> $out; fi
  done
done
echo "$seen" > /t/seen-$name.part; mv /t/seen-$name.part /t/seen-$name  # whole when it appears
"""


def _wait_for(path: Path, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{what}: {path} did not appear"
        time.sleep(0.05)


def test_nothing_in_the_container_sees_an_exec_before_it_is_confined(
    berthd: harness.Berthd, busybox_image: str, tmp_path: Path
) -> None:
    shared = tmp_path / "t"
    shared.mkdir()
    (shared / "watch.sh").write_text(WATCH)
    secret = f"host-secret-{uuid.uuid4().hex}"
    marker = tmp_path / "host-only" / "marker"
    marker.parent.mkdir()
    marker.write_text(secret)
    ok(berthd.docker("run", "-d", "--name", "watched", "-v", f"{shared}:/t", busybox_image,
                     "sh", "-c", f"sh /t/watch.sh init {marker}; exec sleep 600"))
    _wait_for(shared / "ready-init", "the init's watcher")
    # the escape: an exec'd process watching for the next exec's child
    ok(berthd.docker("exec", "-d", "watched", "sh", "/t/watch.sh", "exec", str(marker)))
    _wait_for(shared / "ready-exec", "the exec'd watcher")
    pids = []
    for _ in range(8):
        r = ok(berthd.docker("exec", "watched", "sh", "-c", "echo $$; exec sleep 0.3"))
        pids.append(r.stdout.strip())
    # no path from any process's root or cwd leads to the host's file either
    probe = f"cat {marker}; for p in /proc/[0-9]*; do cat $p/root{marker} $p/cwd{marker}; done"
    r = berthd.docker("exec", "watched", "sh", "-c", probe + " 2>/dev/null; true")
    assert r.returncode == 0 and secret not in r.stdout + r.stderr
    (shared / "stop").touch()
    for name in ("init", "exec"):
        _wait_for(shared / f"seen-{name}", f"the {name} watcher's end")
        seen = (shared / f"seen-{name}").read_text().split()
        assert set(pids) <= set(seen), f"the {name} watcher missed execs: {pids} vs {seen}"
        assert (shared / f"violations-{name}").read_text() == "", name


def test_the_watcher_reports_other_walls_and_not_short_lives(
    berthd: harness.Berthd, busybox_image: str, tmp_path: Path
) -> None:
    # the watcher above, checked: two processes of the container itself that live behind other
    # walls (a chroot, a mount namespace of their own) are reported, and thousands of forks of
    # the init's own shell that exit while it looks (once reported as "ROOT <pid>" and "MNTNS
    # <pid>": a test -ef whose stat failed) are not
    shared = tmp_path / "t"
    shared.mkdir()
    (shared / "watch.sh").write_text(WATCH)
    marker = tmp_path / "host-only" / "marker"
    marker.parent.mkdir()
    marker.write_text("host")
    walled = (
        "mkdir /r; cp /bin/busybox /r/; "
        "sh -c 'echo $$ > /t/chroot.pid; exec chroot /r /busybox sleep 600' & "
        "sh -c 'echo $$ > /t/unshare.pid; exec unshare -m sleep 600' & "
        "until [ -s /t/chroot.pid ] && [ -s /t/unshare.pid ]; do :; done; "
        "c=/proc/$(cat /t/chroot.pid); u=/proc/$(cat /t/unshare.pid); "
        "while [ $c/root/ -ef /proc/1/root/ ] || [ $u/ns/mnt -ef /proc/1/ns/mnt ]; do :; done"
    )
    churn = "i=0; while [ $i -lt 3000 ]; do ( exit 0 ); i=$((i+1)); done; touch /t/churned"
    # (SYS_ADMIN for unshare -m; the watcher's first look at /proc finds both walled ones ready)
    ok(berthd.docker("run", "-d", "--name", "control", "--cap-add", "SYS_ADMIN", "-v", f"{shared}:/t",
                     busybox_image, "sh", "-c",
                     f"{walled}; sh /t/watch.sh init {marker} & {churn}; exec sleep 600"))
    _wait_for(shared / "churned", "the forks", timeout=120)
    (shared / "stop").touch()
    _wait_for(shared / "seen-init", "the watcher's end")
    chrooted = (shared / "chroot.pid").read_text().strip()
    unshared = (shared / "unshare.pid").read_text().strip()
    assert len((shared / "seen-init").read_text().split()) > 100  # it did look at the forks
    violations = (shared / "violations-init").read_text().splitlines()
    assert sorted(violations) == [f"MNTNS {unshared}", f"ROOT {chrooted}"]


def test_a_stuck_exec_holds_up_nothing_else(berthd_factory, busybox_tar: Path) -> None:  # type: ignore[no-untyped-def]
    # the helper of an exec of "stall-here" never answers (a test hook); the container's
    # output, other execs and stop go on, and the stuck exec fails after the helper timeout
    d = berthd_factory(env_extra={"BERTH_TEST_EXEC_STALL": "stall-here", "BERTH_TEST_HELPER_TIMEOUT": "6"})
    d.import_image(busybox_tar)
    ok(d.docker("run", "-d", "--name", "ticker", "busybox", "sh", "-c",
                "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done"))
    started = time.monotonic()
    stuck = subprocess.Popen([str(harness.docker_cli()), "exec", "ticker", "stall-here"], env=d.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        t0 = time.monotonic()
        assert ok(d.docker("exec", "ticker", "echo", "still here")).stdout == "still here\n"
        assert time.monotonic() - t0 < 3
        before = ok(d.docker("logs", "--tail", "1", "ticker")).stdout

        def moved() -> str:
            after = ok(d.docker("logs", "--tail", "1", "ticker")).stdout
            return after if after != before else ""

        # output still flows (while the stuck exec waits out its 6 s)
        assert harness.eventually(moved, timeout=4, interval=0.1).startswith("tick")
        out, err = stuck.communicate(timeout=30)
    finally:
        if stuck.poll() is None:
            stuck.kill()
            stuck.wait()
    assert stuck.returncode == 126 and "gave no answer in 6 s" in out + err, (out, err)
    assert time.monotonic() - started < 20
    t0 = time.monotonic()
    ok(d.docker("stop", "-t", "1", "ticker"))
    assert time.monotonic() - t0 < 5
