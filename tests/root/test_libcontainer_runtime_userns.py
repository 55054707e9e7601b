"""User namespaces in libcontainer, through berth-runtime: the container's root is an
unprivileged uid of the host, ids map as the spec says, exec joins the namespace; runc runs
the same bundles for comparison."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.libcontainer.testing import BUSYBOX, busybox_rootfs, docker_like_spec

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces, mounts and cgroups"),
    pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs /bin/busybox (apt-get install busybox-static)"),
    pytest.mark.skipif(not os.path.exists("/proc/self/ns/user"), reason="the kernel has no user namespaces"),
]

HOST_ID = 231072  # an unprivileged range nobody on the host uses


def runtime(root: Path, *args: str, **kw) -> subprocess.CompletedProcess[str]:
    kw.setdefault("capture_output", "stdout" not in kw)
    return subprocess.run(
        [sys.executable, "-m", "berth.runtime", "--root", str(root), *args], text=True, timeout=60, **kw
    )


@pytest.fixture
def bundle() -> Iterator[Path]:
    # The container's root (an unprivileged host uid) must be able to reach its rootfs, as with
    # runc: pytest's tmp dirs are 0700, so the bundle lives in a 0755 dir of its own.
    top = Path(tempfile.mkdtemp(prefix="berth-userns-"))
    top.chmod(0o755)
    try:
        busybox_rootfs(top / "bundle" / "rootfs")
        yield top / "bundle"
    finally:
        shutil.rmtree(top)


def userns_spec(args: list[str]) -> dict:
    spec = docker_like_spec("rootfs", args)
    spec["linux"]["cgroupsPath"] = f"berth-test-userns-{uuid.uuid4().hex[:10]}"
    spec["linux"]["namespaces"].append({"type": "user"})
    spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": HOST_ID, "size": 65536}]
    spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": HOST_ID, "size": 65536}]
    return spec


def write(bundle: Path, spec: dict) -> None:
    (bundle / "config.json").write_text(json.dumps(spec))


def test_root_in_the_container_is_an_unprivileged_uid_on_the_host(tmp_path: Path, bundle: Path):
    shared = bundle.parent / "shared"
    shared.mkdir()
    os.chown(shared, HOST_ID, HOST_ID)
    (bundle / "rootfs" / "shared").mkdir()  # the rootfs is the host root's: the container cannot make it
    spec = userns_spec(["sh", "-c", "id -u; cat /proc/self/uid_map; touch /shared/made; exec sleep 30"])
    spec["mounts"].append({"destination": "/shared", "type": "bind", "source": str(shared), "options": ["rbind"]})
    write(bundle, spec)
    root, cid = tmp_path / "state", "u-" + uuid.uuid4().hex[:8]
    with open(tmp_path / "out", "w") as out:
        res = runtime(root, "create", "--bundle", str(bundle), cid, stdout=out, stderr=out)
    assert res.returncode == 0, (tmp_path / "out").read_text()
    try:
        assert runtime(root, "start", cid).returncode == 0
        deadline = time.monotonic() + 10
        while not (shared / "made").exists():
            assert time.monotonic() < deadline, (tmp_path / "out").read_text()
            time.sleep(0.01)
        st = json.loads(runtime(root, "state", cid).stdout)
        with open(f"/proc/{st['pid']}/status") as f:
            uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
        assert uids == [str(HOST_ID)] * 4  # what the host sees: no root at all
        assert (shared / "made").stat().st_uid == HOST_ID
        assert (tmp_path / "out").read_text().split() == ["0", "0", str(HOST_ID), "65536"]
        # exec joins the same user namespace
        ex = runtime(root, "exec", cid, "sh", "-c", "id -u; readlink /proc/self/ns/user; readlink /proc/1/ns/user")
        assert ex.returncode == 0, ex.stderr
        me, mine, init = ex.stdout.split()
        assert me == "0" and mine == init != os.readlink("/proc/self/ns/user")
    finally:
        assert runtime(root, "delete", "--force", cid).returncode == 0


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc not installed (apt-get install runc)")
def test_the_same_userns_bundle_shows_the_same_view_as_under_runc(tmp_path: Path, bundle: Path):
    script = (
        "id; cat /proc/self/uid_map /proc/self/gid_map; grep -E '^Cap(Eff|Bnd)' /proc/self/status; "
        "stat -c '%u %g %n' / /dev/null /proc; ls /sys/fs/cgroup; hostname"
    )
    write(bundle, userns_spec(["sh", "-c", script]))
    ours = runtime(tmp_path / "state", "run", "--bundle", str(bundle), "o-" + uuid.uuid4().hex[:8])
    theirs = subprocess.run(
        ["runc", "--root", str(tmp_path / "runc"), "run", "--bundle", str(bundle), "r-" + uuid.uuid4().hex[:8]],
        capture_output=True, text=True, timeout=60,
    )
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout


@pytest.mark.parametrize(
    ("edit", "text"),
    [
        (lambda s: s["linux"].pop("uidMappings"), "a new user namespace needs linux.uidMappings"),
        (lambda s: s["linux"]["namespaces"].pop(), "need a new user namespace"),
        (lambda s: s["linux"]["uidMappings"].append({"containerID": 0, "hostID": 1, "size": 0}), "uidMappings[1]"),
        (lambda s: s["linux"].__setitem__("uidMappings", [{"containerID": 1, "hostID": HOST_ID, "size": 10}]),
         "become root in the user namespace"),
    ],
)
def test_bad_mappings_fail_create_naming_them(tmp_path: Path, bundle: Path, edit, text: str):
    spec = userns_spec(["true"])
    edit(spec)
    write(bundle, spec)
    root, cid = tmp_path / "state", "b-" + uuid.uuid4().hex[:8]
    res = runtime(root, "create", "--bundle", str(bundle), cid)
    assert res.returncode == 1 and text in res.stderr, res.stderr
    assert not (root / cid).exists()


def test_create_hooks_run_while_the_init_of_a_user_namespace_waits(tmp_path: Path, bundle: Path):
    """With a user namespace the init is stage A's child: its prestart/createRuntime pause works
    the same (the hooks see its pid, before its createContainer hooks), and a failing hook stops it."""
    log = bundle.parent / "hooks.log"
    log.touch()
    log.chmod(0o666)  # createContainer hooks run as the container's root: an unprivileged uid here
    spec = userns_spec(["true"])
    spec["hooks"] = {
        p: [{"path": "/bin/sh", "args": ["sh", "-c", f"echo {p} $(cat | grep -o '\"pid\": *[0-9]*') >> {log}"]}]
        for p in ("prestart", "createRuntime", "createContainer")
    }
    write(bundle, spec)
    root, cid = tmp_path / "state", "h-" + uuid.uuid4().hex[:8]
    with open(tmp_path / "out", "w") as out:  # the init keeps our stdio: a file, not a pipe
        res = runtime(root, "create", "--bundle", str(bundle), cid, stdout=out, stderr=out)
    assert res.returncode == 0, (tmp_path / "out").read_text()
    try:
        pid = json.loads(runtime(root, "state", cid).stdout)["pid"]
        lines = [line.split(" ", 1) for line in log.read_text().splitlines()]
        assert [w for w, _ in lines] == ["prestart", "createRuntime", "createContainer"], lines
        assert all(rest.replace(" ", "") == f'"pid":{pid}' for _, rest in lines), lines
    finally:
        assert runtime(root, "delete", "--force", cid).returncode == 0
    spec["hooks"] = {"createRuntime": [{"path": "/bin/false"}]}
    write(bundle, spec)
    res = runtime(root, "create", "--bundle", str(bundle), cid)
    assert res.returncode == 1 and "createRuntime hook /bin/false" in res.stderr, res.stderr
    assert not (root / cid).exists()
