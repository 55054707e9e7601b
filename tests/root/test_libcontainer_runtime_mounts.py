"""berth-runtime and the mount side of a bundle: rootfsPropagation, mount options (tmpcopyup,
recursive attributes, unknown words), each on a real bundle, with runc where it helps."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from berth.libcontainer import kernel

from .test_libcontainer_runtime import bundle, runtime, write_config  # noqa: F401 (fixture)

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def _mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if line.split()[4].startswith(str(path))]


def _edit(b: Path, fn) -> None:
    cfg = json.loads((b / "config.json").read_text())
    fn(cfg)
    (b / "config.json").write_text(json.dumps(cfg))


@pytest.fixture
def shared_dir(tmp_path: Path):
    """A tmpfs of the test's own, made shared on the host (as / is on a systemd host): any
    mount the container let through would show up here on the host."""
    d = tmp_path / "shared"
    d.mkdir()
    kernel.mount("tmpfs", str(d), "tmpfs", 0, "size=64m")
    try:
        kernel.mount(None, str(d), None, kernel.MS_SHARED)
        yield d
    finally:
        kernel.umount2(str(d), kernel.MNT_DETACH)


@pytest.mark.parametrize(
    ("propagation", "root_tag", "proc_tag"),
    [
        ("shared", "shared:", None),
        ("rshared", "shared:", "shared:"),
        ("runbindable", "unbindable", "unbindable"),
        ("private", None, None),
    ],
)
def test_rootfs_propagation_is_applied_and_nothing_reaches_the_host(
    tmp_path: Path, shared_dir: Path, propagation: str, root_tag: str | None, proc_tag: str | None
):
    from berth.libcontainer.testing import busybox_rootfs

    b = shared_dir / "bundle"
    busybox_rootfs(b / "rootfs")
    script = 'awk \'$5 == "/" || $5 == "/proc"\' /proc/self/mountinfo; echo ready; exec sleep 60'
    write_config(b, ["sh", "-c", script])
    _edit(b, lambda c: c["linux"].update(rootfsPropagation=propagation))
    root, cid = tmp_path / "state", "p-" + uuid.uuid4().hex[:8]
    out = tmp_path / "out"
    host_before = _mounts_under(shared_dir)
    with open(out, "w") as f:
        res = runtime(root, "create", "--bundle", str(b), cid, stdout=f, stderr=f)
    assert res.returncode == 0, out.read_text()  # was: pivot_root: Invalid argument
    try:
        assert runtime(root, "start", cid).returncode == 0
        deadline = time.monotonic() + 10
        while "ready" not in out.read_text() and time.monotonic() < deadline:
            time.sleep(0.01)
        lines = [ln for ln in out.read_text().splitlines() if len(ln.split()) > 4]
        root_line = next(ln for ln in lines if ln.split()[4] == "/")
        proc_line = next(ln for ln in lines if ln.split()[4] == "/proc")
        optional = lambda ln: ln.split(" - ")[0].split()[6:]  # noqa: E731
        assert (
            any(o.startswith(root_tag) for o in optional(root_line)) if root_tag else not optional(root_line)
        )
        if proc_tag:
            assert any(o.startswith(proc_tag) for o in optional(proc_line))
        # the container's rootfs bind, /proc, /dev ... stayed in its own namespace
        assert _mounts_under(shared_dir) == host_before
    finally:
        assert runtime(root, "delete", "--force", cid).returncode == 0
    assert _mounts_under(shared_dir) == host_before


def _image_dir(rootfs: Path, *, all_kinds: bool) -> Path:
    """/etc/app in the image: what a tmpcopyup mount must carry over. ``all_kinds`` adds what
    runc 1.1 cannot copy (a FIFO, a device node) or does not keep (xattrs, hard links, times)."""
    app = rootfs / "etc" / "app"
    (app / "sub" / "deep").mkdir(parents=True)
    (app / "conf").write_text("hello\n")
    os.chown(app / "conf", 1000, 1001)
    os.chmod(app / "conf", 0o4750)  # set-uid survives the chown
    (app / "sub" / "deep" / "f").write_text("x" * 70000)
    os.chmod(app / "sub", 0o711)
    os.chown(app / "sub" / "deep", 7, 8)
    os.symlink("/etc/passwd", app / "abs")  # copied as a link, never followed
    os.symlink("../../bin", app / "rel")
    if all_kinds:
        os.mknod(app / "null", 0o640 | 0o020000, os.makedev(1, 3))
        os.mkfifo(app / "fifo", 0o600)
        os.link(app / "conf", app / "hard")
        os.setxattr(app / "conf", "user.k", b"v")
        os.setxattr(app / "sub", "trusted.t", b"tv")
        os.utime(app / "conf", ns=(1_000_000_000, 2_000_000_000))
        os.chmod(app, 0o750)
        os.chown(app, 5, 6)
    return app


def _tree(top: Path) -> dict[str, tuple]:
    """Every entry under ``top``: type and mode, owner, size, device, link target, xattrs."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in ["", *dirnames, *filenames]:
            p = Path(dirpath) / name if name else Path(dirpath)
            if not name and p != top:
                continue
            st = os.lstat(p)
            xattrs = {
                a: os.getxattr(p, a, follow_symlinks=False) for a in os.listxattr(p, follow_symlinks=False)
            }
            out[str(p.relative_to(top))] = (
                st.st_mode,
                st.st_uid,
                st.st_gid,
                st.st_size if not os.path.isdir(p) or os.path.islink(p) else 0,
                st.st_rdev,
                os.readlink(p) if os.path.islink(p) else None,
                xattrs,
                st.st_mtime_ns if os.path.isfile(p) and not os.path.islink(p) else None,
            )
    return out


@pytest.mark.parametrize("readonly", [False, True])
def test_tmpcopyup_fills_the_tmpfs_with_the_covered_directory(tmp_path: Path, bundle: Path, readonly: bool):  # noqa: F811
    app = _image_dir(bundle / "rootfs", all_kinds=True)
    write_config(bundle, ["sh", "-c", "echo new > /etc/app/new; echo ready; exec sleep 60"])
    options = ["rw", "nosuid", "nodev", "tmpcopyup", "size=16m"] + (["ro"] if readonly else [])
    _edit(bundle, lambda c: c["root"].update(readonly=True))  # podman --read-only asks for this
    _edit(
        bundle,
        lambda c: c["mounts"].append(
            {"destination": "/etc/app", "type": "tmpfs", "source": "tmpfs", "options": options}
        ),
    )
    root, cid = tmp_path / "state", "cu-" + uuid.uuid4().hex[:8]
    out = tmp_path / "out"
    want = _tree(app)
    with open(out, "w") as f:
        res = runtime(root, "create", "--bundle", str(bundle), cid, stdout=f, stderr=f)
    assert res.returncode == 0, out.read_text()  # was: mount tmpfs ...: Invalid argument
    try:
        pid = json.loads(runtime(root, "state", cid, capture_output=True).stdout)["pid"]
        assert runtime(root, "start", cid).returncode == 0
        deadline = time.monotonic() + 10
        while "ready" not in out.read_text() and time.monotonic() < deadline:
            time.sleep(0.01)
        inside = Path(f"/proc/{pid}/root/etc/app")
        got = _tree(inside)
        got.pop("new", None)
        assert got == want
        assert (inside / "conf").read_text() == "hello\n"
        assert (inside / "sub" / "deep" / "f").stat().st_size == 70000
        assert os.stat(inside / "conf").st_ino == os.stat(inside / "hard").st_ino  # still one file
        with open(f"/proc/{pid}/mountinfo") as f:
            line = next(ln for ln in f if ln.split()[4] == "/etc/app")
        assert " - tmpfs " in line and line.split()[5].startswith("ro," if readonly else "rw,")
        if readonly:
            assert "Read-only file system" in out.read_text() and not (inside / "new").exists()
        else:
            assert (inside / "new").read_text() == "new\n"
        assert not (app / "new").exists()  # written to the tmpfs, not to the image
    finally:
        assert runtime(root, "delete", "--force", cid).returncode == 0
    assert _tree(app) == want  # the image is untouched


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc not installed (apt-get install runc)")
def test_tmpcopyup_same_view_as_runc(tmp_path: Path, bundle: Path):  # noqa: F811
    _image_dir(bundle / "rootfs", all_kinds=False)
    script = (
        "cd /etc/app && find . | sort | while read f; do stat -c '%n %F %a %u %g %s %t:%T %N' \"$f\"; done; "
        "stat -c '%n %a' /etc/missing"  # made for the mount (0755): runc 1.1 copies that mode too
    )
    write_config(bundle, ["sh", "-c", script])
    _edit(
        bundle,
        lambda c: c["mounts"].append(
            {
                "destination": "/etc/app",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "tmpcopyup"],
            }
        ),
    )
    _edit(
        bundle,
        lambda c: c["mounts"].append(
            {"destination": "/etc/missing", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]}
        ),
    )
    ours = runtime(
        tmp_path / "state", "run", "--bundle", str(bundle), "o-" + uuid.uuid4().hex[:8], capture_output=True
    )
    theirs = subprocess.run(
        [
            "runc",
            "--root",
            str(tmp_path / "runc"),
            "run",
            "--bundle",
            str(bundle),
            "t-" + uuid.uuid4().hex[:8],
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0, ours.stderr
    assert "./abs symbolic link 777 0 0 11 0:0 '/abs' -> '/etc/passwd'" in ours.stdout.replace(
        "'./abs'", "'/abs'"
    )
    assert ours.stdout.endswith("/etc/missing 755\n")
    assert ours.stdout == theirs.stdout


@pytest.mark.parametrize(
    ("mount", "text"),
    [
        # the kernel's own refusal, with the word named (runc: "invalid argument")
        (
            {"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "sizee=1m"]},
            "option 'sizee=1m' refused by the kernel (tmpfs: Unknown parameter 'sizee')",
        ),
        (
            {"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["size=lots"]},
            "option 'size=lots' refused by the kernel (tmpfs: Bad value for 'size')",
        ),
        # refused before anything is made (runc drops these silently)
        (
            {"destination": "/t", "type": "bind", "source": "/tmp", "options": ["rbind", "ro", "nosiud"]},
            "mount '/t': option 'nosiud' is not a bind mount option",
        ),
        (
            {"destination": "/t", "type": "bind", "source": "/tmp", "options": ["rbind", "idmap"]},
            "mount '/t': idmap without uidMappings needs the container's user namespace maps",
        ),
        (
            {"destination": "/t", "type": "bind", "source": "/tmp", "options": ["rbind", "tmpcopyup"]},
            "mount '/t': option 'tmpcopyup' needs a tmpfs mount, not bind",
        ),
    ],
)
def test_a_refused_mount_option_is_named(tmp_path: Path, bundle: Path, mount: dict, text: str):  # noqa: F811
    write_config(bundle, ["true"])
    _edit(bundle, lambda c: c["mounts"].append(mount))
    res = runtime(
        tmp_path / "state", "run", "--bundle", str(bundle), "e-" + uuid.uuid4().hex[:8], capture_output=True
    )
    assert res.returncode == 1 and text in res.stderr, res.stderr


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc not installed (apt-get install runc)")
def test_rro_makes_a_bind_read_only_below_too_like_runc(tmp_path: Path, bundle: Path):  # noqa: F811
    """``rro`` (moby 25 uses it for read-only binds) reaches the mounts below the bind: a plain
    ``ro`` bind leaves a submount writable."""
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    kernel.mount("tmpfs", str(data / "sub"), "tmpfs", 0, "size=1m")
    try:
        script = "touch /data/x 2>&1; echo $?; touch /data/sub/x 2>&1; echo $?"
        write_config(bundle, ["sh", "-c", script])
        got = {}
        for opt in ("ro", "rro"):
            bind = {"destination": "/data", "type": "bind", "source": str(data), "options": ["rbind", opt]}
            _edit(bundle, lambda c, b=bind: c["mounts"].append(b))
            for name, cmd in (("berth", None), ("runc", "runc")):
                cid = f"{name[0]}-{uuid.uuid4().hex[:8]}"
                if cmd is None:
                    res = runtime(
                        tmp_path / "state", "run", "--bundle", str(bundle), cid, capture_output=True
                    )
                else:
                    res = subprocess.run(
                        ["runc", "--root", str(tmp_path / "runc"), "run", "--bundle", str(bundle), cid],
                        capture_output=True,
                        text=True,
                        timeout=60,
                    )
                assert res.returncode == 0, res.stderr
                got[name, opt] = res.stdout
                (data / "sub" / "x").unlink(missing_ok=True)
            _edit(bundle, lambda c: c["mounts"].pop())
        ro = "touch: /data/x: Read-only file system\n1\n"
        assert got["berth", "ro"] == got["runc", "ro"] == ro + "0\n"  # the submount stayed writable
        assert (
            got["berth", "rro"] == got["runc", "rro"] == ro + "touch: /data/sub/x: Read-only file system\n1\n"
        )
    finally:
        kernel.umount2(str(data / "sub"), kernel.MNT_DETACH)


def test_an_id_mapped_bind_shows_and_writes_the_mapped_ids(tmp_path: Path, bundle: Path):  # noqa: F811
    """A bind with uidMappings/gidMappings (runtime-spec 1.1): on-disk 0..9 read as 5000..5009
    and what the container writes as 5003 is 3 on disk; with no user namespace, init id-maps it."""
    data = tmp_path / "idm"
    data.mkdir()
    (data / "f").write_text("x")
    os.chown(data / "f", 7, 7)
    data.chmod(0o777)
    script = "stat -c %u:%g /data /data/f; touch /data/new && stat -c %u:%g /data/new; touch /data/f 2>/dev/null || echo no"
    write_config(bundle, ["sh", "-c", script])
    maps = [{"containerID": 0, "hostID": 5000, "size": 10}]
    bind = {"destination": "/data", "type": "bind", "source": str(data), "options": ["rbind"],
            "uidMappings": maps, "gidMappings": maps}

    def edit(c: dict) -> None:
        c["mounts"].append(bind)
        c["process"]["user"] = {"uid": 5003, "gid": 5004}

    _edit(bundle, edit)
    res = runtime(tmp_path / "state", "run", "--bundle", str(bundle), "i-" + uuid.uuid4().hex[:8], capture_output=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["5000:5000", "5007:5007", "5003:5004", "no"]
    assert (os.stat(data / "new").st_uid, os.stat(data / "new").st_gid) == (3, 4)
    assert not _mounts_under(data)
