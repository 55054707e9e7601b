"""A process that cannot be exec'd: the container records an exit, `wait` returns, `--rm` removes.

Failures found before the init's barrier (a command that does not exist or is not executable)
are start errors, as with dockerd: the start answers 400 and the container stays Created with
the exit code. Failures of the execve itself after the barrier (a script whose interpreter is
missing, a binary for another architecture) are the process's own, as with runc: the text goes
to the container's stderr and the container exits 127/126 (runc 1.1 exits 1; docs/decisions.md).
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import harness

pytestmark = pytest.mark.integration

CASES = {
    # name: (command, exit code, what the container prints on stderr)
    "missing-interpreter": ("/noint.sh", 127, "exec /noint.sh: no such file or directory"),
    "wrong-architecture": ("/wrongarch", 126, "exec /wrongarch: exec format error"),
}


@pytest.fixture(scope="module")
def bad_tar(busybox_tar: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """busybox plus a script whose interpreter is missing, an aarch64 ELF (busybox with its
    e_machine changed) and a script without the execute bit."""
    dest = tmp_path_factory.mktemp("bad") / "bad.tar"
    with tarfile.open(busybox_tar) as src, tarfile.open(dest, "w") as out:
        for member in src.getmembers():
            out.addfile(member, src.extractfile(member) if member.isfile() else None)

        def add(name: str, data: bytes, mode: int = 0o755) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            out.addfile(info, io.BytesIO(data))

        add("noint.sh", b"#!/nonexistent/interpreter\necho never\n")
        elf = bytearray(harness.BUSYBOX.read_bytes())
        elf[18:20] = (183).to_bytes(2, "little")  # EM_AARCH64
        add("wrongarch", bytes(elf))
        add("noexec.sh", b"#!/bin/sh\necho never\n", 0o644)
    yield dest


@pytest.fixture
def bad_image(berthd: harness.Berthd, bad_tar: Path) -> str:
    berthd.import_image(bad_tar, "bad:1")
    return "bad:1"


def _state(d: harness.Daemon, name: str) -> dict[str, object]:
    r = d.docker("inspect", "-f", "{{json .State}}", name)
    assert r.returncode == 0, r.stderr
    state: dict[str, object] = json.loads(r.stdout)
    return state


@pytest.mark.parametrize("case", sorted(CASES))
def test_exec_failure_after_barrier_is_an_exit(berthd: harness.Berthd, bad_image: str, case: str) -> None:
    cmd, code, text = CASES[case]
    t0 = time.monotonic()
    r = berthd.docker("run", "--name", "c1", bad_image, cmd, timeout=30)
    assert r.returncode == code, (r.returncode, r.stderr)
    assert r.stderr == text + "\n"
    assert time.monotonic() - t0 < 10
    state = _state(berthd, "c1")
    assert (state["Status"], state["Running"], state["ExitCode"], state["Pid"]) == ("exited", False, code, 0)
    assert berthd.docker("ps", "-a", "--format", "{{.Status}}").stdout.startswith(f"Exited ({code})")
    assert berthd.docker("logs", "c1").stderr == text + "\n"
    w = berthd.docker("wait", "c1", timeout=10)
    assert w.stdout.strip() == str(code)

    # -d: the run succeeds, the exit comes through wait
    assert berthd.docker("run", "-d", "--name", "c2", bad_image, cmd).returncode == 0
    assert berthd.docker("wait", "c2", timeout=10).stdout.strip() == str(code)

    # --rm: removed, and the CLI returns
    r = berthd.docker("run", "--rm", bad_image, cmd, timeout=30)
    assert (r.returncode, r.stderr) == (code, text + "\n")
    ids = berthd.docker("ps", "-aq").stdout.split()
    assert len(ids) == 2, "the --rm container was not removed"

    # docker-py: wait() returns the status
    client = berthd.client()
    ctr = client.containers.run(bad_image, [cmd], detach=True)
    assert ctr.wait(timeout=10)["StatusCode"] == code


def test_not_executable_is_a_start_error(berthd: harness.Berthd, bad_image: str) -> None:
    """Found before the barrier: dockerd's 126 start error, the container stays Created."""
    r = berthd.docker("run", "--name", "c1", bad_image, "/noexec.sh", timeout=30)
    assert r.returncode == 126, r.stderr
    assert 'exec: "/noexec.sh": permission denied' in r.stderr
    state = _state(berthd, "c1")
    assert (state["Status"], state["ExitCode"]) == ("created", 126)
    assert berthd.docker("wait", "c1", timeout=10).stdout.strip() == "126"
    r = berthd.docker("run", "--rm", bad_image, "/noexec.sh", timeout=30)
    assert r.returncode == 126
    assert len(berthd.docker("ps", "-aq").stdout.split()) == 1, "the --rm container was not removed"


def test_env_with_nul_byte_fails_the_start(berthd: harness.Berthd, bad_image: str) -> None:
    """dockerd accepts the create and fails the start (500, runc's text); nothing runs."""
    body = {"Image": bad_image, "Cmd": ["true"], "Env": ["A=b\u0000c"]}
    status, created = berthd.api("POST", "/containers/create?name=nul", body)
    assert status == 201, created
    status, err = berthd.api("POST", "/containers/nul/start")
    assert status == 500, err
    assert err["message"] == 'environment variable value can\'t contain null(\\x00): "A=b\\x00c"'
    state = _state(berthd, "nul")
    assert (state["Status"], state["Running"], state["ExitCode"]) == ("created", False, 128)
    assert berthd.docker("wait", "nul", timeout=10).stdout.strip() == "128"
    # with AutoRemove, the failed start removes it (the CLI's `run --rm` waits for that)
    body["HostConfig"] = {"AutoRemove": True}
    status, created = berthd.api("POST", "/containers/create?name=nulrm", body)
    assert status == 201, created
    assert berthd.api("POST", "/containers/nulrm/start")[0] == 500
    assert berthd.api("GET", "/containers/nulrm/json")[0] == 404


@pytest.mark.conformance
@pytest.mark.parametrize("case", sorted(CASES))
def test_exec_failure_matches_dockerd(
    berthd: harness.Berthd, dockerd: harness.Dockerd, bad_tar: Path, case: str
) -> None:
    """The same text on the container's stderr, an exited container, --rm removal; dockerd
    20.10's runc exits 1 where berth exits 127/126 (docs/decisions.md)."""
    cmd, code, text = CASES[case]
    got = []
    for d in (berthd, dockerd):
        d.import_image(bad_tar, "bad:1")
        r = d.docker("run", "--network", "none", "--name", "c1", "bad:1", cmd, timeout=30)
        rm = d.docker("run", "--rm", "--network", "none", "bad:1", cmd, timeout=30)
        got.append((r.stderr, _state(d, "c1")["Status"], rm.stderr, len(d.docker("ps", "-aq").stdout.split())))
        assert r.returncode == (code if d is berthd else 1)
    assert got[0] == got[1] == (text + "\n", "exited", text + "\n", 1)


def test_a_failure_on_the_host_side_gives_the_namespace_joined_back(berthd: harness.Berthd, busybox_image: str) -> None:
    """`--network none` joins the namespace made ahead, and its record, files and the start's
    host-side work (here the user, not in the image) are done in one worker thread: that work's
    failure fails the start, and the namespace goes with the container (only the spares are
    left)."""
    from berth.drivers.network.driver import NetworkDriver

    netns_dir = berthd.exec_root / "netns"
    for _ in range(4):
        r = berthd.docker("run", "--rm", "--network", "none", "--user", "nosuch", busybox_image, "true", timeout=30)
        assert r.returncode != 0
        assert "unable to find user nosuch" in r.stderr, r.stderr
        time.sleep(0.5)  # the next spares are made 50 ms after one was taken, one after the other
        left = sorted(p.name for p in netns_dir.iterdir())
        assert len(left) <= NetworkDriver.SPARES, left
    assert berthd.docker("ps", "-aq").stdout.split() == []
    r = berthd.docker("run", "--rm", "--network", "none", busybox_image, "true", timeout=30)
    assert r.returncode == 0, r.stderr
