"""--pid, --ipc, --uts, --cgroupns and --userns, checked from inside containers, side by side with
dockerd 20.10 where it runs them (the conformance tests), and berth's own errors and edges."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import harness


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r


@pytest.fixture
def pair(
    berthd: harness.Berthd, dockerd_factory: Callable[..., harness.Dockerd], busybox_tar: Path
) -> tuple[harness.Berthd, harness.Dockerd]:
    dockerd = dockerd_factory()
    for d in (berthd, dockerd):
        d.import_image(busybox_tar)
    return berthd, dockerd


def run(d: harness.Daemon, *args: str) -> str:
    return ok(d.docker("run", "--rm", "--network", "none", *args)).stdout


def ns(d: harness.Daemon, name: str, kind: str) -> str:
    return ok(d.docker("exec", name, "readlink", f"/proc/self/ns/{kind}")).stdout.strip()


@pytest.mark.conformance
def test_pid_and_ipc_of_another_container(pair: tuple[harness.Berthd, harness.Dockerd]) -> None:
    seen = {}
    for d in pair:
        ok(d.docker("run", "-d", "--name", "donor", "--network", "none", "--ipc", "shareable", "busybox",
                    "sh", "-c", "echo from-donor > /dev/shm/f; exec sleep 300"))
        ok(d.docker("run", "-d", "--name", "private", "--network", "none", "busybox", "sleep", "300"))
        pid_ns, ipc_ns = ns(d, "donor", "pid"), ns(d, "donor", "ipc")
        script = (
            "ps -o pid,args | grep -v ' ps\\|grep'; readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc;"
            " cat /dev/shm/f; echo from-joiner > /dev/shm/g;"
            " grep ' /dev/shm ' /proc/self/mountinfo | cut -d' ' -f6,8-"
        )
        out = run(d, "--pid", "container:donor", "--ipc", "container:donor", "busybox", "sh", "-c", script).splitlines()
        assert out[1] == "    1 sleep 300", out  # the donor's init is our PID 1
        assert out[-4:-2] == [pid_ns, ipc_ns], out
        assert out[-2] == "from-donor"
        assert ok(d.docker("exec", "donor", "cat", "/dev/shm/g")).stdout == "from-joiner\n"
        r = d.docker("run", "--rm", "--network", "none", "--ipc", "container:private", "busybox", "true")
        assert r.returncode == 125 and "non-shareable IPC (hint: use IpcMode:shareable for the donor container)" in r.stderr
        ok(d.docker("stop", "-t", "0", "private"))
        r = d.docker("run", "--rm", "--network", "none", "--pid", "container:private", "busybox", "true")
        assert r.returncode == 125 and " is not running" in r.stderr, r.stderr
        r = d.docker("run", "--rm", "--network", "none", "--ipc", "container:private", "busybox", "true")
        assert r.returncode == 125 and "can't join IPC of container " in r.stderr and "is not running" in r.stderr
        seen[d.name] = (out[-1], [o for o in out if o.startswith("    ")])
    assert seen["berth"][0] == seen["docker"][0]  # the /dev/shm mount: flags, type, options


@pytest.mark.conformance
def test_ipc_modes_and_shm(pair: tuple[harness.Berthd, harness.Dockerd]) -> None:
    script = "readlink /proc/self/ns/ipc; ls -d /dev/shm 2>&1 | cut -c1-40; grep ' /dev/shm ' /proc/self/mountinfo | cut -d' ' -f6,8- | sed 's/size=[0-9]*k/size=N/'"
    host_ipc = os.readlink("/proc/self/ns/ipc")
    for mode in ("none", "private", "shareable", "host"):
        got, want = (run(d, "--ipc", mode, "busybox", "sh", "-c", script).splitlines() for d in pair)
        assert (got[0] == host_ipc) == (want[0] == host_ipc) == (mode == "host"), (mode, got, want)
        assert got[1:] == want[1:], (mode, got, want)


@pytest.mark.conformance
def test_uts_cgroupns_and_userns(pair: tuple[harness.Berthd, harness.Dockerd]) -> None:
    host_name = socket.gethostname()
    for d in pair:
        out = run(d, "--uts", "host", "busybox", "sh", "-c", "hostname; readlink /proc/self/ns/uts").split()
        assert out == [host_name, os.readlink("/proc/self/ns/uts")], out
        r = d.docker("create", "--uts", "host", "--hostname", "x", "busybox", "true")
        assert r.returncode != 0 and "conflicting options: hostname and the UTS mode" in r.stderr, r.stderr
        assert run(d, "--userns", "host", "busybox", "id", "-u") == "0\n"
    # a private cgroup namespace is rooted at the container's cgroup; the host one shows the path
    got, want = (run(d, "--cgroupns", "private", "busybox", "cat", "/proc/self/cgroup") for d in pair)
    assert got == want and all(line.endswith(":/") for line in got.splitlines()), got
    got, want = (run(d, "--cgroupns", "host", "busybox", "grep", "memory", "/proc/self/cgroup") for d in pair)
    assert got.startswith("4:memory:/berth-") and want.startswith("4:memory:/berth-ref-"), (got, want)


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ({"PidMode": "bogus"}, "invalid PID mode: bogus"),
        ({"PidMode": "container:"}, "invalid PID mode: container:"),
        ({"IpcMode": "bogus"}, "invalid IPC mode: bogus"),
        ({"UTSMode": "container:x"}, "invalid UTS mode: container:x"),
        ({"CgroupnsMode": "shared"}, "invalid cgroup namespace mode: shared"),
        ({"UsernsMode": "nope"}, "invalid USER mode: nope"),
    ],
)
def test_bad_namespace_modes_are_400s(berthd: harness.Berthd, busybox_image: str, host: dict, message: str) -> None:
    status, body = berthd.api("POST", "/containers/create", {"Image": busybox_image, "HostConfig": host})
    assert (status, body) == (400, {"message": message})
    assert ok(berthd.docker("ps", "-aq")).stdout == ""


def test_joining_a_missing_container_is_a_404(berthd: harness.Berthd, busybox_image: str) -> None:
    for flag in ("--pid", "--ipc"):
        r = berthd.docker("create", flag, "container:nosuch", "busybox", "true")
        assert r.returncode != 0 and "No such container: nosuch" in r.stderr, r.stderr
    assert ok(berthd.docker("ps", "-aq")).stdout == ""


def test_a_donor_cannot_point_the_joiners_shm_at_the_host(berthd: harness.Berthd, busybox_image: str) -> None:
    """The donor (with CAP_SYS_ADMIN) swaps its /dev/shm for a symlink to /etc: the joiner's
    bind is resolved inside the donor's root, so it gets the donor's /etc, never the host's."""
    marker = Path("/etc/debian_version")
    assert marker.exists()  # a file the host's /etc has and busybox's does not
    ok(berthd.docker("run", "-d", "--name", "evil", "--ipc", "shareable", "--cap-add", "SYS_ADMIN", "busybox",
                     "sh", "-c", "umount /dev/shm && rmdir /dev/shm && ln -s /etc /dev/shm && touch /ready; exec sleep 300"))
    ok(berthd.docker("exec", "evil", "sh", "-c", "for i in $(seq 50); do [ -e /ready ] && exit 0; sleep 0.1; done; exit 1"))
    out = ok(berthd.docker("run", "--rm", "--ipc", "container:evil", "busybox", "sh", "-c",
                           "ls /dev/shm/; [ -e /dev/shm/debian_version ] && echo HOST-ETC || echo contained")).stdout
    assert out.split()[-1] == "contained" and "passwd" in out.split(), out
