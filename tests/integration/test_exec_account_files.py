"""The container's /etc/passwd and /etc/group are hostile input (issue 5): never block on them.

A FIFO, a file larger than 1 MiB or a symlink out of the container fails the exec at once
with runc's "unable to find user ..." and the reason (exit 126, in the stream, as Docker does
for exec start errors); the container's other execs, its logs and stop go on. Real berthd,
the docker CLI and docker-py.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

import harness

pytestmark = pytest.mark.integration

# The container breaks its own file, says so in /t, and puts it back when /t/fix appears.
BREAK = """
set -e
cp {path} /tmp/saved
rm {path}
{make} {path}
touch /t/ready
until [ -e /t/fix ]; do sleep 0.05; done
rm {path}
cp /tmp/saved {path}
touch /t/fixed
echo fixed
exec sleep 600
"""


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
    return r


def _wait_for(path: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def _refused(d: harness.Berthd, *args: str) -> str:
    """Run `docker exec ARGS`; it must fail fast with 126; returns what it printed."""
    t0 = time.monotonic()
    r = d.docker("exec", *args, timeout=25)
    assert r.returncode == 126, (r.returncode, r.stdout, r.stderr)
    assert time.monotonic() - t0 < 5
    return r.stdout + r.stderr


@pytest.mark.parametrize(
    ("path", "make", "why"),
    [
        ("/etc/passwd", "mkfifo", "/etc/passwd is a named pipe, not a regular file"),
        ("/etc/group", "mkfifo", "/etc/group is a named pipe, not a regular file"),
        ("/etc/passwd", "truncate -s 64M", "/etc/passwd is larger than 1 MiB (67108864 bytes)"),
    ],
    ids=["fifo-passwd", "fifo-group", "huge-passwd"],
)
def test_a_hostile_account_file_fails_the_exec_at_once(
    berthd: harness.Berthd, busybox_image: str, tmp_path: Path, path: str, make: str, why: str
) -> None:
    shared = tmp_path / "t"
    shared.mkdir()
    ok(berthd.docker("run", "-d", "--name", "hostile", "-v", f"{shared}:/t", busybox_image,
                     "sh", "-c", BREAK.format(path=path, make=make)))
    _wait_for(shared / "ready")
    # -u by name: the daemon reads both files for the user and its groups
    assert f"unable to find user root: {why}" in _refused(berthd, "-u", "root", "hostile", "true")
    if path == "/etc/passwd":
        # the container's own user: HOME comes from passwd, read inside the container
        assert f"unable to find user 0: {why}" in _refused(berthd, "hostile", "true")
        assert f"unable to find user 0: {why}" in _refused(berthd, "hostile", "true")  # no stuck helper
        # with HOME given, nothing reads the file: the exec runs
        assert ok(berthd.docker("exec", "-e", "HOME=/", "hostile", "echo", "runs")).stdout == "runs\n"
    else:
        assert ok(berthd.docker("exec", "hostile", "echo", "runs")).stdout == "runs\n"  # group not needed
    # docker-py: the same refusal (its output may miss the message: an error frame that comes
    # with the 101's headers is swallowed by its buffered reader -- so main's berthd for any
    # user-lookup error; the CLI above shows the text)
    code, _out = berthd.client().containers.get("hostile").exec_run(["true"], user="root")
    assert code == 126
    assert ok(berthd.docker("logs", "hostile")).stdout == ""
    (shared / "fix").touch()
    _wait_for(shared / "fixed")
    assert ok(berthd.docker("exec", "-u", "root", "hostile", "id", "-un")).stdout == "root\n"
    assert ok(berthd.docker("exec", "hostile", "sh", "-c", "echo $HOME")).stdout == "/root\n"
    assert ok(berthd.docker("logs", "hostile")).stdout == "fixed\n"
    t0 = time.monotonic()
    ok(berthd.docker("stop", "-t", "1", "hostile"))
    assert time.monotonic() - t0 < 5


def test_a_symlinked_passwd_resolves_inside_the_container(
    berthd: harness.Berthd, busybox_image: str, tmp_path: Path
) -> None:
    # /etc/passwd -> <a host path>: the host has a passwd there naming "outsider", the
    # container has one at the same path naming "insider"; only the container's counts
    host_dir = tmp_path / "accounts"
    host_dir.mkdir()
    (host_dir / "passwd").write_text("outsider:x:4242:4242::/outside:/bin/sh\n")
    script = (
        f"mkdir -p {host_dir} && echo 'insider:x:4321:4321::/inside:/bin/sh' > {host_dir}/passwd"
        f" && ln -sf {host_dir}/passwd /etc/passwd && touch /tmp/ready && exec sleep 600"
    )
    ok(berthd.docker("run", "-d", "--name", "linked", busybox_image, "sh", "-c", script))
    deadline = time.monotonic() + 20
    while berthd.docker("exec", "linked", "test", "-e", "/tmp/ready").returncode != 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert ok(berthd.docker("exec", "-u", "insider", "linked", "id", "-u")).stdout == "4321\n"
    r = berthd.docker("exec", "-u", "outsider", "linked", "id", "-u")
    assert r.returncode == 126 and "unable to find user outsider: no matching entries in passwd file" in r.stdout + r.stderr
    # HOME, read inside the container, comes from the container's file too
    assert ok(berthd.docker("exec", "-u", "4321", "linked", "sh", "-c", "echo $HOME")).stdout == "/inside\n"
    ok(berthd.docker("stop", "-t", "1", "linked"))
