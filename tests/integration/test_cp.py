"""docker cp (HEAD/GET/PUT /containers/{id}/archive): Docker's path rules side by side with
dockerd, through the docker CLI, docker-py and raw HTTP, on running and stopped containers and
through their volumes and binds."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

import harness

pytestmark = pytest.mark.integration

SETUP = (
    "mkdir -p /d/sub && echo hi > /d/f && ln -s /etc /d/etclink && ln -s ../../.. /d/up && "
    "ln -s /d/f /d/flink && touch -d '2020-01-01 00:00:00' /d/f /d/sub /d && "
    "touch -h -d '2020-01-01 00:00:00' /d/etclink /d/up /d/flink"
)


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
    return r


def raw(d: harness.Daemon, method: str, path: str, body: bytes | None = None) -> dict[str, Any]:
    """One request, its answer reduced to what can be compared between daemons."""
    conn = harness.UnixHTTPConnection(d.sock, timeout=30)
    conn.request(method, "/v1.41" + path, body=body)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    out: dict[str, Any] = {"status": resp.status}
    header = resp.getheader("X-Docker-Container-Path-Stat")
    if header:
        stat = json.loads(base64.b64decode(header))
        if stat["name"] not in ("d", "f", "sub"):
            stat.pop("mtime")  # only the entries the setup dated are compared
        out["stat"] = stat
    if data.startswith(b"{"):
        out["message"] = json.loads(data)["message"]
    elif data:
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            out["tar"] = [(m.name, m.type.decode(), oct(m.mode), m.linkname, m.size, m.uid, m.gid) for m in t]
    return out


def tar_of(*members: tuple[str, str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, kind, value in members:
            info = tarfile.TarInfo(name)
            if kind == "f":
                info.size, info.mode = len(value), 0o644
                t.addfile(info, io.BytesIO(value.encode()))
            elif kind == "d":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                t.addfile(info)
            else:
                info.type, info.linkname = (tarfile.SYMTYPE if kind == "l" else tarfile.LNKTYPE), value
                t.addfile(info)
    return buf.getvalue()


GETS = ["/d", "/d/", "/d/.", "/d/etclink", "/d/etclink/", "/d/up", "/d/up/", "/d/flink", "/nonexist",
        "/d/nonexist/x", "/d/../../../etc/hostname", "/d/up/etc/hostname", "/proc/1/status", "/dev/null",
        ".", "d", "", "/d/f/"]
PUTS = [
    ("file", tar_of(("hello.txt", "f", "hi\n"))),
    ("dotdot", tar_of(("../../evil.txt", "f", "evil\n"))),
    ("absname", tar_of(("/abs.txt", "f", "abs\n"))),
    ("symlink-out", tar_of(("sl", "l", "../../../../"))),
    ("symlink-abs", tar_of(("sl2", "l", "/etc"), ("sl2/written.txt", "f", "x\n"))),
    ("hardlink-out", tar_of(("hl", "h", "../../etc/passwd"))),
    ("hardlink-abs", tar_of(("hl2", "h", "/etc/passwd"))),
    ("hardlink-in", tar_of(("orig", "f", "o\n"), ("hl3", "h", "orig"))),
    ("dir-over-file", tar_of(("f", "d", ""))),
    ("file-over-dir", tar_of(("sub", "f", "x"))),
    ("garbage", b"this is not a tar" * 100),
    ("short", b"garbage\n"),
    ("empty", b""),
]


@pytest.mark.conformance
def test_archive_api_matches_dockerd(berthd: harness.Berthd, dockerd: harness.Dockerd, busybox_tar: Path) -> None:
    """The stat header, the tar, the statuses and texts of GET/HEAD/PUT, against dockerd's."""
    got: dict[str, list[Any]] = {}
    for d in (berthd, dockerd):
        d.import_image(busybox_tar)
        ok(d.docker("run", "-d", "--name", "c1", "--network", "none", "busybox", "sleep", "300"))
        ok(d.docker("exec", "c1", "sh", "-c", SETUP))
        results: list[Any] = []
        for path in GETS:
            results += [raw(d, "HEAD", f"/containers/c1/archive?path={path}"),
                        raw(d, "GET", f"/containers/c1/archive?path={path}")]
        for i, (_label, body) in enumerate(PUTS):
            for query in ("&noOverwriteDirNonDir=true", ""):
                ok(d.docker("exec", "c1", "sh", "-c", f"rm -rf /p && cp -a /d /p{i}{len(query)} && mv /p{i}{len(query)} /p"))
                results.append(raw(d, "PUT", f"/containers/c1/archive?path=/p{query}", body))
                results.append(raw(d, "GET", "/containers/c1/archive?path=/p")["tar"])
        got[d.__class__.__name__] = results
    ours, theirs = got["Berthd"], got["Dockerd"]
    assert len(ours) == len(theirs)
    for mine, ref in zip(ours, theirs, strict=True):
        if isinstance(ref, dict) and ref.get("status") == 500 and "lstat /tmp/" in ref.get("message", ""):
            # dockerd names its host path; berth the container's
            assert mine["status"] == 500 and mine["message"].startswith("lstat /d/f/")
            continue
        if isinstance(ref, dict) and "PUT" not in str(ref) and "message" in ref:
            ref = dict(ref, message=ref["message"].replace('"/p0', '"/p'))
        assert mine == ref


CLI_CASES = [
    "D cp c1:/d/f OUT/",
    "D cp c1:/d/f OUT/newname",
    "D cp c1:/d/f OUT/nodir/",
    "D cp c1:/d/flink OUT/",
    "D cp -L c1:/d/flink OUT/",
    "D cp -L c1:/d/etclink OUT/e",
    "D cp c1:/d/sub OUT/x",
    "D cp c1:/nonexistent OUT/",
    "D cp c1:/d/f - | tar tf -",
    "D cp hello.txt c1:/d/",
    "D cp hello.txt c1:/d/renamed.txt",
    "D cp hello.txt c1:/d/sub",
    "D cp dir c1:/d/",
    "D cp dir c1:/d/newdir",
    "D cp dir/. c1:/d/sub",
    "D cp dir c1:/d/f",
    "D cp link.txt c1:/d/",
    "D cp -L link.txt c1:/d/",
    "D cp hello.txt c1:/d/etclink",
    "tar cf - hello.txt dir | D cp - c1:/d",
    "tar cf - hello.txt | D cp - c1:/d/f",
    "D cp nosuch.txt c1:/d/",
    "D cp c1:/d/f c1:/d/g",
]


@pytest.mark.conformance
def test_cp_cli_matches_dockerd(
    berthd: harness.Berthd, dockerd: harness.Dockerd, busybox_tar: Path, tmp_path: Path
) -> None:
    """What `docker cp` prints, exits with and leaves behind on both sides, compared."""
    src = tmp_path / "src"
    (src / "dir" / "sub").mkdir(parents=True)
    (src / "hello.txt").write_text("file-content\n")
    (src / "dir" / "sub.txt").write_text("sub\n")
    (src / "dir" / "sub" / "deep").write_text("deep\n")
    (src / "link.txt").symlink_to("hello.txt")
    listing = "cd /d && find . | sort | xargs ls -ld | awk '{print $1, $5, $9, $10, $11}'"
    got: dict[str, list[Any]] = {}
    for d in (berthd, dockerd):
        d.import_image(busybox_tar)
        ok(d.docker("run", "-d", "--name", "c1", "--network", "none", "busybox", "sleep", "300"))
        results = []
        for i, case in enumerate(CLI_CASES):
            ok(d.docker("exec", "c1", "sh", "-c", f"rm -rf /d && {SETUP}"))
            out = tmp_path / f"out-{d.__class__.__name__}-{i}"
            out.mkdir()
            cmd = case.replace("D ", "docker ").replace("OUT", str(out))
            r = subprocess.run(["sh", "-c", cmd], cwd=src, env=d.env, capture_output=True, text=True, timeout=60)
            tree = subprocess.run(["sh", "-c", "find . -printf '%p %M %s %l\\n' | sort"], cwd=out,
                                  capture_output=True, text=True).stdout
            inside = ok(d.docker("exec", "c1", "sh", "-c", listing)).stdout
            # the CLI logs its own tar goroutine meeting a closed pipe when it gives up early, or
            # not, as its scheduling goes: not the daemon's doing
            stderr = "".join(line for line in r.stderr.replace(str(out), "OUT").splitlines(keepends=True)
                             if "level=error" not in line)
            results.append((case, r.returncode, r.stdout, stderr, tree, inside))
        got[d.__class__.__name__] = results
    for mine, ref in zip(got["Berthd"], got["Dockerd"], strict=True):
        assert mine == ref


def test_cp_running_and_stopped_through_mounts(berthd: harness.Berthd, busybox_image: str, tmp_path: Path) -> None:
    bind = tmp_path / "bind"
    bind.mkdir()
    (bind / "from-host").write_text("bound\n")
    src = tmp_path / "in.txt"
    src.write_text("copied in\n")
    out = tmp_path / "out"
    out.mkdir()
    ok(berthd.docker("run", "-d", "--name", "run1", "--hostname", "myhost", "-v", "vol1:/vol", "-v",
                     f"{bind}:/b", "-v", "rovol:/ro:ro", "--tmpfs", "/tm", busybox_image, "sleep", "300"))
    ok(berthd.docker("create", "--name", "stop1", "-v", "vol1:/vol", "-v", f"{bind}:/b", "--read-only",
                     busybox_image, "true"))
    for c in ("run1", "stop1"):
        ok(berthd.docker("cp", str(src), f"{c}:/vol/{c}.txt"))
        ok(berthd.docker("cp", f"{c}:/b/from-host", str(out / f"{c}-host")))
        ok(berthd.docker("cp", f"{c}:/etc/hostname", str(out / f"{c}-hostname")))
    assert ok(berthd.docker("exec", "run1", "cat", "/vol/run1.txt", "/vol/stop1.txt")).stdout == "copied in\n" * 2
    assert (out / "run1-host").read_text() == (out / "stop1-host").read_text() == "bound\n"
    assert (out / "run1-hostname").read_text() == "myhost\n"
    # a read-only volume, a read-only root file system (stopped or not): dockerd's texts
    r = berthd.docker("cp", str(src), "run1:/ro/")
    assert r.returncode == 1 and "mounted volume is marked read-only" in r.stderr
    r = berthd.docker("cp", str(src), "stop1:/etc/")
    assert r.returncode == 1 and "container rootfs is marked read-only" in r.stderr
    ok(berthd.docker("cp", str(src), "stop1:/b/"))  # a bind is not the root file system
    assert (bind / "in.txt").read_text() == "copied in\n"
    # tmpfs mounts and /proc are not part of what cp sees (as with dockerd): the files under them
    ok(berthd.docker("exec", "run1", "sh", "-c", "echo in-tmpfs > /tm/t"))
    r = berthd.docker("cp", "run1:/tm/t", str(out))
    assert r.returncode == 1 and "Could not find the file /tm/t in container run1" in r.stderr
    ok(berthd.docker("cp", str(src), "run1:/proc/"))
    assert "in.txt" not in ok(berthd.docker("exec", "run1", "ls", "/proc")).stdout
    # the stopped container's view leaves nothing mounted on the host
    assert not [p for p in harness.mounts_under(berthd.data_root) if "/rootfs" in p]
    ok(berthd.docker("start", "stop1"))
    events = ok(berthd.docker("events", "--since", "0", "--until", f"{time.time() + 1:.3f}", "--filter", "container=run1",
                              "--format", "{{.Action}}")).stdout.split()
    assert "archive-path" in events and "extract-to-dir" in events


def test_cp_copy_uid_gid(berthd: harness.Berthd, busybox_image: str) -> None:
    """-a (copyUIDGID) gives the files to the container's user, looked up in the container's
    /etc/passwd (dockerd 20.10 asks the host's getent instead and fails for users it lacks)."""
    ok(berthd.docker("create", "--name", "u1", "-u", "1000:1000", busybox_image, "true"))
    body = tar_of(("own.txt", "f", "o\n"))
    assert raw(berthd, "PUT", "/containers/u1/archive?path=/tmp&copyUIDGID=true", body)["status"] == 200
    assert raw(berthd, "GET", "/containers/u1/archive?path=/tmp/own.txt")["tar"][0][5:] == (1000, 1000)
    assert raw(berthd, "PUT", "/containers/u1/archive?path=/tmp", body)["status"] == 200
    assert raw(berthd, "GET", "/containers/u1/archive?path=/tmp/own.txt")["tar"][0][5:] == (0, 0)


def test_cp_dockerpy(berthd: harness.Berthd, busybox_image: str) -> None:
    client = berthd.client()
    c = client.containers.run(busybox_image, ["sleep", "300"], detach=True, network_mode="none")
    assert c.put_archive("/tmp", tar_of(("a.txt", "f", "from docker-py\n"), ("sub", "d", "")))
    bits, stat = c.get_archive("/tmp/a.txt")
    data = b"".join(bits)
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        member = t.extractfile("a.txt")
        assert member is not None and member.read() == b"from docker-py\n"
    assert stat["name"] == "a.txt" and stat["size"] == 15 and stat["mode"] == 0o644
    assert client.api.inspect_container(c.id)["State"]["Running"]


# -- escapes: none of these may read or write the host's files -------------------------------


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    d = tmp_path / "hostdir"
    d.mkdir()
    (d / "secret").write_text("host secret\n")
    return d


def untouched(secret: Path) -> None:
    assert sorted(p.name for p in secret.iterdir()) == ["secret"]
    assert (secret / "secret").read_text() == "host secret\n"


def cp_out(d: harness.Berthd, src: str, dest: Path, *flags: str) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    dest.mkdir(exist_ok=True)
    return d.docker("cp", *flags, src, str(dest))


def no_secret_in(dest: Path) -> None:
    for p in dest.rglob("*"):
        if p.is_file() and not p.is_symlink():
            assert b"host secret" not in p.read_bytes(), p


def test_escape_dotdot_path(berthd: harness.Berthd, busybox_image: str, secret: Path, tmp_path: Path) -> None:
    ok(berthd.docker("run", "-d", "--name", "cc", busybox_image, "sleep", "300"))
    up = "/.." * 12 + str(secret / "secret")
    r = cp_out(berthd, f"cc:{up}", tmp_path / "o")
    assert r.returncode == 1 and "Could not find the file" in r.stderr
    r = berthd.docker("cp", str(tmp_path / "o"), f"cc:{'/..' * 12}{secret}")
    assert r.returncode == 1
    no_secret_in(tmp_path / "o")
    untouched(secret)


def test_escape_absolute_symlink(berthd: harness.Berthd, busybox_image: str, secret: Path, tmp_path: Path) -> None:
    ok(berthd.docker("run", "-d", "--name", "cc", busybox_image, "sh", "-c",
                     f"ln -s {secret}/secret /ls && ln -s {secret} /ld && sleep 300"))
    harness.eventually(lambda: ok(berthd.docker("exec", "cc", "test", "-L", "/ld")))
    for args in (("cc:/ls",), ("-L", "cc:/ls"), ("cc:/ld/",), ("cc:/ld/secret",), ("-L", "cc:/ld")):
        cp_out(berthd, args[-1], tmp_path / "o", *args[:-1])
    no_secret_in(tmp_path / "o")
    r = berthd.docker("cp", str(tmp_path / "o"), "cc:/ld/")
    assert r.returncode == 1 and 'cannot overwrite non-directory "/ld"' in r.stderr
    untouched(secret)


def test_escape_relative_symlink(berthd: harness.Berthd, busybox_image: str, secret: Path, tmp_path: Path) -> None:
    rel = "../" * 12 + str(secret).lstrip("/")
    ok(berthd.docker("run", "-d", "--name", "cc", busybox_image, "sh", "-c",
                     f"mkdir -p /a/b && ln -s {rel} /a/b/rl && sleep 300"))
    harness.eventually(lambda: ok(berthd.docker("exec", "cc", "test", "-L", "/a/b/rl")))
    for args in (("cc:/a/b/rl/",), ("-L", "cc:/a/b/rl"), ("cc:/a/b/rl/secret",)):
        cp_out(berthd, args[-1], tmp_path / "o", *args[:-1])
    no_secret_in(tmp_path / "o")
    untouched(secret)


def test_escape_archive_members(berthd: harness.Berthd, busybox_image: str, secret: Path) -> None:
    """A hostile tar: ``..`` names, a symlink out and a write through it, hard links out."""
    ok(berthd.docker("run", "-d", "--name", "cc", busybox_image, "sh", "-c", "mkdir /d && sleep 300"))
    harness.eventually(lambda: ok(berthd.docker("exec", "cc", "test", "-d", "/d")))
    up = "../" * 12 + str(secret).lstrip("/")
    for body in (tar_of((up + "/pwned", "f", "x")), tar_of(("sl", "l", up), ("sl/pwned", "f", "x")),
                 tar_of(("hl", "h", up + "/secret")), tar_of(("sl3", "l", str(secret)), ("sl3/pwned", "f", "x")),
                 tar_of(("hl2", "h", str(secret / "secret")))):
        r = berthd.docker("cp", "-", "cc:/d", input=body)
        assert r.returncode == 1, r.stderr
    # names that climb out and back in below the destination are inside by dockerd's (lexical)
    # rule: they are written, in the container
    ok(berthd.docker("cp", "-", "cc:/", input=tar_of((up + "/pwned", "f", "x"), ("sl", "l", up),
                                                    ("sl/pwned2", "f", "y"))))
    assert ok(berthd.docker("exec", "cc", "cat", f"{secret}/pwned", f"{secret}/pwned2")).stdout == "xy"
    untouched(secret)


def test_escape_destination_through_symlink(
    berthd: harness.Berthd, busybox_image: str, secret: Path, tmp_path: Path
) -> None:
    """``docker cp file c:/link/`` where the link points at a host path: the container's
    directory of that name gets the file, the host's never does."""
    src = tmp_path / "pwned"
    src.write_text("x\n")
    ok(berthd.docker("run", "-d", "--name", "cc", busybox_image, "sh", "-c",
                     f"ln -s {secret} /ld && mkdir -p {secret} && sleep 300"))
    harness.eventually(lambda: ok(berthd.docker("exec", "cc", "ls", str(secret))))
    ok(berthd.docker("cp", str(src), "cc:/ld/"))
    ok(berthd.docker("cp", str(src), "cc:/ld"))
    assert ok(berthd.docker("exec", "cc", "cat", f"{secret}/pwned")).stdout == "x\n"
    untouched(secret)


def test_escape_symlink_swapped_during_copy(
    berthd: harness.Berthd, busybox_image: str, secret: Path, tmp_path: Path
) -> None:
    """CVE-2018-15664: while cp runs, the container keeps swapping a directory of the copied
    path for a symlink to the host's directory; no copy reads or writes the host's."""
    swap = (f"mkdir -p /w/real && echo container > /w/real/secret && ln -s {secret} /w/evil && "
            "touch /w/ready && while true; do mv /w/real /w/dir; mv /w/dir /w/real; mv /w/evil /w/dir; mv /w/dir /w/evil; done")
    ok(berthd.docker("run", "-d", "--name", "cc", busybox_image, "sh", "-c", swap))
    harness.eventually(lambda: ok(berthd.docker("exec", "cc", "test", "-e", "/w/ready")))
    src = tmp_path / "pwned"
    src.write_text("x\n")
    copied = 0
    for i in range(15):
        r = cp_out(berthd, "cc:/w/dir/secret", tmp_path / f"o{i}")
        copied += r.returncode == 0
        berthd.docker("cp", str(src), "cc:/w/dir/")
        raw(berthd, "PUT", "/containers/cc/archive?path=/w/dir", tar_of(("pwned2", "f", "y")))
        no_secret_in(tmp_path / f"o{i}")
    untouched(secret)


def test_escape_stopped_container_mount_destination(
    berthd: harness.Berthd, busybox_image: str, secret: Path, tmp_path: Path
) -> None:
    """A stopped container's view mounts its binds inside its root even when the mount
    destination's parent was made a symlink to a host path (CVE-2015-3627's pattern)."""
    bind = tmp_path / "bind"
    bind.mkdir()
    (bind / "inbind").write_text("bind content\n")
    image = tar_of(("etc", "d", ""), ("mm", "l", str(secret)))
    ok(berthd.docker("import", "-", "trap:1", input=image))
    ok(berthd.docker("create", "--name", "cc", "-v", f"{bind}:/mm/b", "trap:1", "true"))
    r = cp_out(berthd, "cc:/mm/b/inbind", tmp_path / "o")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o" / "inbind").read_bytes() == b"bind content\n"
    src = tmp_path / "in"
    src.write_text("in\n")
    ok(berthd.docker("cp", str(src), "cc:/mm/"))
    untouched(secret)
    assert not harness.mounts_under(secret)
    assert (bind / "in").exists() is False
