"""Supplementary groups of the container's process and of exec, compared with dockerd 20.10.

Since 20.10.18 (the fix of CVE-2022-36109) dockerd puts the process's primary gid in its
supplementary group list as well, so a group-owned file denied by the gid through a negative
group ACL/mode cannot be reached by dropping the primary group with setgroups: `id` as root in
busybox prints ``groups=0(root),10(wheel)``, not ``groups=10(wheel)``. The reference here is
Debian's docker.io 20.10.24, which has the fix; the test checks the version so a reference that
predates it fails loudly instead of being compared against.

Each case runs ``id`` and reads ``Groups:`` of /proc/self/status for one form of --user /
--group-add, in the container's process and in an exec of a running container, on both daemons.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import harness

pytestmark = pytest.mark.conformance

PROBE = "id; grep ^Groups: /proc/self/status"

CASES: list[tuple[str, ...]] = [
    (),  # root: gid 0, wheel by /etc/group
    ("--user", "1000"),  # a uid with no passwd entry: gid 0
    ("--user", "nobody"),  # 65534:65534 by /etc/passwd
    ("--user", "1000:1000"),
    ("--user", "root:tty"),  # root with another primary group: wheel still, tty as the gid
    ("--user", "0:10"),  # the primary gid is one of root's supplementary groups: listed once
    ("--group-add", "tty", "--group-add", "4242"),
    ("--user", "nobody", "--group-add", "daemon"),
    ("--user", "1000:1000", "--group-add", "1000"),  # --group-add of the primary gid
]


def ok(r: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    assert r.returncode == 0, f"{what}: exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r


def reference_version(dockerd: harness.Dockerd) -> tuple[int, ...]:
    raw = ok(dockerd.docker("version", "--format", "{{.Server.Version}}"), "docker version").stdout.strip()
    return tuple(int(p) for p in raw.split("+")[0].split("-")[0].split(".")[:3])


@pytest.fixture
def pair(
    berthd: harness.Berthd, dockerd_factory: Callable[..., harness.Dockerd], busybox_tar: Path
) -> tuple[harness.Berthd, harness.Dockerd]:
    dockerd = dockerd_factory()
    assert reference_version(dockerd) >= (20, 10, 18), (
        "the reference dockerd predates the CVE-2022-36109 fix (20.10.18): compare against a newer one"
    )
    for d in (berthd, dockerd):
        d.import_image(busybox_tar)
    return berthd, dockerd


def probe_run(d: harness.Daemon, flags: tuple[str, ...]) -> str:
    r = d.docker("run", "--rm", "--network", "none", *flags, "busybox", "sh", "-c", PROBE)
    return ok(r, f"{d.name} run {flags}").stdout


def probe_exec(d: harness.Daemon, name: str, flags: tuple[str, ...], exec_flags: tuple[str, ...]) -> str:
    ok(d.docker("run", "-d", "--name", name, "--network", "none", *flags, "busybox", "sleep", "60"),
       f"{d.name} run -d {flags}")
    try:
        return ok(d.docker("exec", *exec_flags, name, "sh", "-c", PROBE), f"{d.name} exec {exec_flags}").stdout
    finally:
        d.docker("rm", "-f", name)


def test_run_groups_match_dockerd(pair: tuple[harness.Berthd, harness.Dockerd]) -> None:
    berthd, dockerd = pair
    got = {flags: probe_run(berthd, flags) for flags in CASES}
    want = {flags: probe_run(dockerd, flags) for flags in CASES}
    assert got == want
    # the fixed behaviour, spelled out (so the comparison cannot pass against an unfixed reference)
    assert want[()] == "uid=0(root) gid=0(root) groups=0(root),10(wheel)\nGroups:\t0 10 \n"
    assert "groups=0(root)" in want[("--user", "1000")]
    assert "groups=65534(nogroup)" in want[("--user", "nobody")]


def test_exec_groups_match_dockerd(pair: tuple[harness.Berthd, harness.Dockerd]) -> None:
    berthd, dockerd = pair
    cases = [
        ((), ()),  # the container's own user
        (("--user", "nobody"), ()),
        (("--group-add", "tty"), ()),
        ((), ("--user", "nobody")),  # exec -u: looked up again, --group-add of the container kept
        (("--group-add", "4242"), ("--user", "1000:1000")),
        ((), ("--user", "root:tty")),
    ]
    for i, (flags, exec_flags) in enumerate(cases):
        name = f"grp{i}"
        got, want = probe_exec(berthd, name, flags, exec_flags), probe_exec(dockerd, name, flags, exec_flags)
        assert got == want, (flags, exec_flags)
    assert "groups=0(root),10(wheel)" in probe_exec(dockerd, "grpx", (), ())
