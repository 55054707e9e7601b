"""``berthd --userns-remap`` (issue 10 item 4): root in the container is an unprivileged host uid.

A real berthd started with ``--userns-remap=default`` (berth's user ``berthremap``, created with
its subordinate ranges if the host has none; removed again at the end of the session if this
session created it), driven by the docker CLI: what the container and the host each see of the
container's ids, the files it writes (rootfs, volume), exec's confinement against the init's,
``--userns=host``, images imported before and after a restart, setuid binaries and device nodes,
and berth's per-container ``--userns=auto`` and ``map=`` forms (the ``io.berth.userns`` label for
the docker CLI, ``UsernsMode`` for API clients).
"""

from __future__ import annotations

import io
import os
import pwd
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import harness

pytestmark = pytest.mark.integration

USER = "berthremap"


def ok(r: subprocess.CompletedProcess, d: harness.Daemon | None = None) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}" + (
        d.log_tail() if d is not None else ""
    )
    return r


def _subid_lines(name: str) -> dict[str, list[str]]:
    out = {}
    for path in ("/etc/subuid", "/etc/subgid"):
        try:
            out[path] = [ln for ln in Path(path).read_text().splitlines() if ln.split(":")[0] == name]
        except FileNotFoundError:
            out[path] = []
    return out


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def remove_created_user(name: str, existed: bool, lines_before: dict[str, list[str]]) -> None:
    """Undo what a daemon added for ``name`` during the session: the user if it did not exist,
    and the subordinate lines that were not there before."""
    if not existed and _user_exists(name):
        subprocess.run(["userdel", name], capture_output=True, check=False)
    for path, before in lines_before.items():
        p = Path(path)
        if not p.exists():
            continue
        kept = [ln for ln in p.read_text().splitlines() if ln.split(":")[0] != name or ln in before]
        text = "".join(ln + "\n" for ln in kept)
        if text != p.read_text():
            p.write_text(text)


@pytest.fixture(scope="session")
def remap_user() -> Iterator[str]:
    existed, lines = _user_exists(USER), _subid_lines(USER)
    yield USER
    remove_created_user(USER, existed, lines)


@pytest.fixture
def remapped(
    berthd_factory: Callable[..., harness.Berthd], busybox_tar: Path, remap_user: str
) -> harness.Berthd:
    d = berthd_factory(start=False, extra_args=("--userns-remap=default",))
    os.chmod(d.root, 0o711)  # the remapped root walks to its rootfs: berthd refuses a 0700 parent
    d.start()
    d.import_image(busybox_tar, "busybox:latest", cmd=("sh",))
    return d


def remap_root(name: str = USER) -> tuple[int, int]:
    uid = pwd.getpwnam(name).pw_uid
    first = [int(ln.split(":")[1]) for ln in Path("/etc/subuid").read_text().splitlines()
             if ln.split(":")[0] in (name, str(uid))][0]
    gfirst = [int(ln.split(":")[1]) for ln in Path("/etc/subgid").read_text().splitlines()
              if ln.split(":")[0] in (name, str(uid))][0]
    return first, gfirst


def status_ids(pid: int) -> tuple[str, str]:
    fields = dict(ln.split(":\t", 1) for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in ln)
    return fields["Uid"].split()[0], fields["Gid"].split()[0]


def test_root_inside_is_unprivileged_outside(remapped: harness.Berthd) -> None:
    d = remapped
    uid, gid = remap_root()
    r = ok(d.docker("run", "--rm", "busybox", "id"), d)
    assert r.stdout.startswith("uid=0(root) gid=0(root)"), r.stdout
    ok(d.docker("run", "-d", "--name", "sleeper", "busybox", "sleep", "300"), d)
    pid = int(ok(d.docker("inspect", "-f", "{{.State.Pid}}", "sleeper")).stdout)
    assert status_ids(pid) == (str(uid), str(gid))
    maps = ok(d.docker("exec", "sleeper", "cat", "/proc/self/uid_map", "/proc/self/gid_map")).stdout.split()
    assert maps == ["0", str(uid), "65536", "0", str(gid), "65536"]
    # the daemon's data root and info, as dockerd's
    info = ok(d.docker("info", "-f", "{{json .SecurityOptions}} {{.DockerRootDir}}")).stdout
    assert "name=userns" in info
    assert info.strip().endswith(f"{d.data_root}/{uid}.{gid}"), info
    # what the start-up probe found: overlays over id-mapped layers exist from Linux 5.19
    release = tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2])
    if release >= (5, 19):
        assert "image layers id-mapped at mount" in d.log_path.read_text()


def test_files_written_belong_to_the_mapped_root(remapped: harness.Berthd) -> None:
    d = remapped
    uid, gid = remap_root()
    ok(d.docker("volume", "create", "vol"), d)
    ok(d.docker("run", "--name", "wr", "-v", "vol:/data", "busybox", "sh", "-c",
                "echo hi > /data/f && echo hi > /made && mkdir /d && touch /d/g"), d)
    mountpoint = ok(d.docker("volume", "inspect", "-f", "{{.Mountpoint}}", "vol")).stdout.strip()
    info = os.stat(Path(mountpoint) / "f")
    assert (info.st_uid, info.st_gid) == (uid, gid)
    upper = next(Path(d.data_root).glob(f"*/overlay2/{_cid(d, 'wr')}/diff"))
    for name in ("made", "d", "d/g"):
        st = os.stat(upper / name)
        assert (st.st_uid, st.st_gid) == (uid, gid), name
    # docker export gives them in the container's ids, as the image's own files
    exported = d.docker("export", "wr", text=False)
    assert exported.returncode == 0, exported.stderr
    with tarfile.open(fileobj=io.BytesIO(exported.stdout)) as tar:
        owners = {m.name: (m.uid, m.gid) for m in tar.getmembers()}
    assert owners["made"] == owners["d/g"] == owners["bin/busybox"] == (0, 0), owners.get("made")
    # the image's files, as the container sees them: owned by its root (id-mapped layers)
    out = ok(d.docker("run", "--rm", "busybox", "stat", "-c", "%u:%g", "/bin/busybox", "/etc/passwd", "/")).stdout
    assert out.split() == ["0:0"] * 3
    # what it writes over an image file (a copy-up) stays its own; its network files are its root's
    out = ok(d.docker("run", "--rm", "busybox", "sh", "-c",
                      "echo x >> /etc/passwd && echo 10.9.9.9 x >> /etc/hosts && stat -c %u /etc/passwd /etc/hosts "
                      "/etc/resolv.conf /etc/hostname"), d).stdout
    assert out.split() == ["0"] * 4


def test_volume_copy_and_docker_cp_in_container_ids(remapped: harness.Berthd, tmp_path: Path) -> None:
    """What crosses into or out of the container is in its ids: a new volume's copy of the image,
    files put with docker cp, and the tar docker cp reads back (dockerd's behaviour)."""
    d = remapped
    uid, _ = remap_root()
    out = ok(d.docker("run", "--rm", "-v", "nv:/etc", "busybox", "stat", "-c", "%u:%g", "/etc/passwd", "/etc"), d)
    assert out.stdout.split() == ["0:0", "0:0"]
    mountpoint = Path(ok(d.docker("volume", "inspect", "-f", "{{.Mountpoint}}", "nv")).stdout.strip())
    assert os.stat(mountpoint / "passwd").st_uid == uid
    ok(d.docker("run", "-d", "--name", "cp1", "busybox", "sleep", "300"), d)
    (tmp_path / "put").write_text("x")
    ok(d.docker("cp", str(tmp_path / "put"), "cp1:/put"), d)
    assert ok(d.docker("exec", "cp1", "stat", "-c", "%u:%g", "/put"), d).stdout == "0:0\n"
    ok(d.docker("exec", "cp1", "touch", "/made"), d)
    for path in ("/etc/passwd", "/made"):
        got = d.docker("cp", f"cp1:{path}", "-", text=False)
        assert got.returncode == 0, got.stderr
        with tarfile.open(fileobj=io.BytesIO(got.stdout)) as tar:
            assert [(m.uid, m.gid) for m in tar.getmembers()] == [(0, 0)], path


def _cid(d: harness.Berthd, name: str) -> str:
    return ok(d.docker("inspect", "-f", "{{.Id}}", name)).stdout.strip()


def test_exec_has_the_inits_walls(remapped: harness.Berthd) -> None:
    d = remapped
    ok(d.docker("run", "-d", "--name", "ct", "busybox", "sleep", "300"), d)
    report = ("for p in $$ 1; do grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' "
              "/proc/$p/status; for n in user mnt pid; do readlink /proc/$p/ns/$n; done; cat /proc/$p/uid_map; "
              "echo ===; done")
    out = ok(d.docker("exec", "ct", "sh", "-c", report), d).stdout
    exec_part, init_part, _ = out.split("===\n")
    assert exec_part == init_part
    assert "Uid:\t0\t0\t0\t0" in exec_part
    pid = int(ok(d.docker("inspect", "-f", "{{.State.Pid}}", "ct")).stdout)
    init_ns = os.readlink(f"/proc/{pid}/ns/user")
    assert init_ns != os.readlink("/proc/self/ns/user")
    assert init_ns in exec_part


def test_userns_host_opts_out(remapped: harness.Berthd) -> None:
    d = remapped
    ok(d.docker("run", "-d", "--name", "ho", "--userns=host", "busybox", "sleep", "300"), d)
    pid = int(ok(d.docker("inspect", "-f", "{{.State.Pid}}", "ho")).stdout)
    assert status_ids(pid) == ("0", "0")
    assert os.readlink(f"/proc/{pid}/ns/user") == os.readlink("/proc/self/ns/user")
    # --privileged needs it, as dockerd says
    r = d.docker("run", "--rm", "--privileged", "busybox", "true")
    assert r.returncode == 125
    assert "privileged mode is incompatible with user namespaces.  You must run the container in the host " \
           "namespace when running privileged mode" in r.stderr
    ok(d.docker("run", "--rm", "--privileged", "--userns=host", "busybox", "true"), d)
    r = d.docker("run", "--rm", "--network", "host", "busybox", "true")
    assert "cannot share the host's network namespace when user namespaces are enabled" in r.stderr


def test_images_before_and_after_a_restart(remapped: harness.Berthd, busybox_tar: Path) -> None:
    d = remapped
    ok(d.docker("tag", "busybox:latest", "before:1"), d)
    d.restart()
    d.import_image(busybox_tar, "after:1", cmd=("sh",))
    for ref in ("before:1", "after:1"):
        assert ok(d.docker("run", "--rm", ref, "id", "-u"), d).stdout == "0\n"
    # a layer committed from a remapped container runs again
    ok(d.docker("run", "--name", "src", "busybox", "sh", "-c", "echo made > /made"), d)
    ok(d.docker("commit", "src", "committed:1"), d)
    assert ok(d.docker("run", "--rm", "committed:1", "cat", "/made"), d).stdout == "made\n"
    # the committed layer holds the container's ids, not the host's it wrote them with
    assert ok(d.docker("run", "--rm", "--userns=host", "committed:1", "stat", "-c", "%u:%g", "/made"), d).stdout \
        == "0:0\n"


def test_build_run_step_commits_container_ids(remapped: harness.Berthd, tmp_path: Path) -> None:
    d = remapped
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN touch /built && chown 1000:1000 /built\n")
    ok(d.docker("build", "-q", "-t", "built:1", str(tmp_path)), d)
    out = ok(d.docker("run", "--rm", "--userns=host", "built:1", "stat", "-c", "%u:%g", "/built"), d).stdout
    assert out == "1000:1000\n"


def _tar_with(entries: list[tarfile.TarInfo], payload: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info in entries:
            data = payload.get(info.name)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def test_setuid_and_device_nodes_give_no_host_privilege(remapped: harness.Berthd, tmp_path: Path) -> None:
    d = remapped
    # an image with a setuid-root copy of busybox and /dev/mem-like node (1,1) in its layer
    busybox = Path(harness.BUSYBOX).read_bytes()
    # busybox drops a setuid root unless /etc/busybox.conf (root's, in the image) keeps it
    conf_text = b"[SUID]\nsleep = ssx 0.0\n"
    conf = tarfile.TarInfo("etc/busybox.conf")
    conf.mode, conf.size = 0o644, len(conf_text)
    suid = tarfile.TarInfo("x/busybox")
    suid.mode, suid.size, suid.uid, suid.gid = 0o4755, len(busybox), 0, 0
    node = tarfile.TarInfo("x/mem")
    node.type, node.devmajor, node.devminor, node.mode = tarfile.CHRTYPE, 1, 1, 0o666
    layer = _tar_with([conf, suid, node], {"x/busybox": busybox, "etc/busybox.conf": conf_text})
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "layer.tar").write_bytes(layer)
    (ctx / "Dockerfile").write_text("FROM busybox\nADD layer.tar /\n")
    ok(d.docker("build", "-q", "-t", "evil:1", str(ctx)), d)
    # the node cannot be opened: the container's root owns no device on the host
    r = d.docker("run", "--rm", "evil:1", "sh", "-c", "head -c1 /x/mem >/dev/null")
    assert r.returncode != 0 and ("Permission denied" in r.stderr or "Operation not permitted" in r.stderr), r
    # the setuid binary makes a user the container's root, which is still the unprivileged host uid
    ok(d.docker("run", "-d", "--name", "su", "--user", "1000", "evil:1", "/x/busybox", "sleep", "300"), d)
    pid = int(ok(d.docker("inspect", "-f", "{{.State.Pid}}", "su")).stdout)
    uid, _ = remap_root()
    fields = dict(ln.split(":\t", 1) for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in ln)
    # real 1000, effective/saved/fs 0 inside: on the host, the mapped ids, never 0
    assert [int(x) for x in fields["Uid"].split()] == [uid + 1000, uid, uid, uid], fields["Uid"]
    # as root of its namespace it may not touch the host's: a mknod of its own is refused
    r = d.docker("run", "--rm", "busybox", "mknod", "/m", "c", "1", "1")
    assert r.returncode != 0, r


def test_auto_gives_each_container_its_own_range(remapped: harness.Berthd) -> None:
    d = remapped
    uid, _ = remap_root()
    pids = []
    for name in ("a1", "a2"):
        ok(d.docker("run", "-d", "--name", name, "--label", "io.berth.userns=auto", "busybox", "sleep", "300"), d)
        pids.append(int(ok(d.docker("inspect", "-f", "{{.State.Pid}}", name)).stdout))
    ids = [int(status_ids(p)[0]) for p in pids]
    assert len(set(ids)) == 2 and uid not in ids, ids
    assert all(i >= 100000 for i in ids)
    # kept across a restart: a third one never gets a block the first two hold
    d.restart()
    ok(d.docker("run", "-d", "--name", "a3", "--label", "io.berth.userns=auto", "busybox", "sleep", "300"), d)
    third = int(status_ids(int(ok(d.docker("inspect", "-f", "{{.State.Pid}}", "a3")).stdout))[0])
    assert third not in ids and third != uid
    # and the files it sees are its root's
    assert ok(d.docker("exec", "a3", "stat", "-c", "%u", "/bin/busybox"), d).stdout == "0\n"
    # the API form, UsernsMode itself (docker-py, berth's CLI)
    status, body = d.api("POST", "/containers/create?name=api", {"Image": "busybox", "Cmd": ["id", "-u"],
                                                                 "HostConfig": {"UsernsMode": "auto"}})
    assert status == 201, body


def test_explicit_map(remapped: harness.Berthd) -> None:
    d = remapped
    uid, _ = remap_root()
    pool = [ln for ln in Path("/etc/subuid").read_text().splitlines() if ln.startswith(USER + ":")][1]
    start = int(pool.split(":")[1]) + 5 * 65536
    r = ok(d.docker("run", "--rm", "--label", f"io.berth.userns=map=0:{start}:65536", "busybox",
                    "cat", "/proc/self/uid_map"), d)
    assert r.stdout.split() == ["0", str(start), "65536"]
    # host ids outside berth's subordinate ranges are refused
    r = d.docker("run", "--rm", "--label", "io.berth.userns=map=0:0:1", "busybox", "true")
    assert r.returncode == 125 and "are not subordinate ids" in r.stderr, r.stderr
    r = d.docker("run", "--rm", "--label", "io.berth.userns=map=1:200000:10", "busybox", "true")
    assert r.returncode == 125 and "id 0 is not mapped" in r.stderr, r.stderr


def test_refused_without_remap(berthd: harness.Berthd, busybox_image: str) -> None:
    r = berthd.docker("run", "--rm", "--label", "io.berth.userns=auto", busybox_image, "true")
    assert r.returncode == 125 and "without --userns-remap" in r.stderr, r.stderr
    # berthd without remapping has no user namespace whatever --userns says
    assert "name=userns" not in ok(berthd.docker("info", "-f", "{{json .SecurityOptions}}")).stdout


def test_parent_that_blocks_the_remapped_root_is_refused(
    berthd_factory: Callable[..., harness.Berthd], remap_user: str
) -> None:
    d = berthd_factory(start=False, extra_args=("--userns-remap=default",))
    os.chmod(d.root, 0o700)
    with pytest.raises(harness.DaemonError):
        d.start()
    time.sleep(0.1)
    assert "restricts access to the remapped root" in d.log_tail()


def test_vfs_driver(berthd_factory: Callable[..., harness.Berthd], busybox_tar: Path, remap_user: str) -> None:
    """vfs: the container's rootfs is one directory, bound id-mapped as a whole."""
    d = berthd_factory(start=False, storage_driver="vfs", extra_args=("--userns-remap=default",))
    os.chmod(d.root, 0o711)
    d.start()
    d.import_image(busybox_tar, "busybox:latest", cmd=("sh",))
    uid, gid = remap_root()
    ok(d.docker("run", "-d", "--name", "vf", "busybox", "sh", "-c", "touch /new && sleep 300"), d)
    pid = int(ok(d.docker("inspect", "-f", "{{.State.Pid}}", "vf")).stdout)
    assert status_ids(pid) == (str(uid), str(gid))
    assert ok(d.docker("exec", "vf", "stat", "-c", "%u:%g", "/bin/busybox", "/new"), d).stdout.split() == ["0:0"] * 2


# --- against the reference: dockerd --userns-remap=default (its user dockremap) ---------------


@pytest.fixture(scope="session")
def dockremap_user() -> Iterator[str]:
    existed, lines = _user_exists("dockremap"), _subid_lines("dockremap")
    yield "dockremap"
    remove_created_user("dockremap", existed, lines)


def _observe(d: harness.Daemon) -> dict[str, object]:
    run = ("run", "--rm", "--network", "none")
    uid_map = ok(d.docker(*run, "busybox", "cat", "/proc/self/uid_map"), d).stdout.split()
    first = int(uid_map[1])
    ok(d.docker("volume", "create", "vol"), d)
    ok(d.docker(*run, "-v", "vol:/data", "busybox", "sh", "-c", "echo hi > /data/f"), d)
    mountpoint = Path(ok(d.docker("volume", "inspect", "-f", "{{.Mountpoint}}", "vol"), d).stdout.strip())
    info = ok(d.docker("info", "-f", "{{json .SecurityOptions}}|{{.DockerRootDir}}"), d).stdout.strip()
    privileged = d.docker(*run, "--privileged", "busybox", "true")
    host_net = d.docker("run", "--rm", "--network", "host", "busybox", "true")
    host_pid = d.docker(*run, "--pid", "host", "busybox", "true")
    return {
        # (id's groups differ outside user namespaces too: dockerd >= 20.10.18 adds the primary gid)
        "id": ok(d.docker(*run, "busybox", "sh", "-c", "id -u; id -g; id -un"), d).stdout,
        "map": [uid_map[0], uid_map[2]],
        "image files": ok(d.docker(*run, "busybox", "stat", "-c", "%u:%g", "/bin/busybox", "/etc"), d).stdout,
        "volume file on the host": os.stat(mountpoint / "f").st_uid - first,
        "userns option": "name=userns" in info,
        "root dir": info.rpartition("|")[2].rpartition("/")[2] == f"{first}.{first}",
        "privileged": (privileged.returncode, privileged.stderr.strip().splitlines()[0]),
        "host network": (host_net.returncode, host_net.stderr.strip().splitlines()[0]),
        "host pid": (host_pid.returncode, host_pid.stderr.strip().splitlines()[0]),
        "host userns": ok(d.docker(*run, "--userns=host", "busybox", "cat", "/proc/self/uid_map"), d).stdout.split(),
        "ping": d.docker(*run, "busybox", "ping", "-c", "1", "-W", "2", "127.0.0.1").returncode,
        "net admin": d.docker(*run, "--cap-add", "NET_ADMIN", "busybox", "ip", "link", "set", "lo", "mtu", "1400")
        .returncode,
        "ping sockets": ok(d.docker(*run, "busybox", "cat", "/proc/sys/net/ipv4/ping_group_range"), d).stdout.split(),
    }


@pytest.mark.conformance
def test_remap_default_against_dockerd(
    berthd_factory: Callable[..., harness.Berthd],
    dockerd_factory: Callable[..., harness.Dockerd],
    busybox_tar: Path,
    remap_user: str,
    dockremap_user: str,
) -> None:
    daemons: list[harness.Daemon] = [
        berthd_factory(start=False, extra_args=("--userns-remap=default",)),
        dockerd_factory(start=False, extra_args=("--userns-remap=default",)),
    ]
    # both refuse a data root whose parent the remapped root cannot search
    for d in daemons:
        os.chmod(d.root, 0o700)
        with pytest.raises(harness.DaemonError):
            d.start()
        assert "restricts access to the remapped root" in d.log_tail(), d.log_tail()
        d.proc = None
        os.chmod(d.root, 0o711)
        d.start()
        d.import_image(busybox_tar, "busybox:latest", cmd=("sh",))
    berth, docker = (_observe(d) for d in daemons)
    assert berth == docker
    assert berth["map"] == ["0", "65536"] and berth["volume file on the host"] == 0
    assert berth["image files"] == "0:0\n0:0\n"
    assert berth["ping"] == berth["net admin"] == 0


def test_chowned_layer_copies_where_idmap_is_off(
    berthd_factory: Callable[..., harness.Berthd], busybox_tar: Path, remap_user: str
) -> None:
    """dockerd's way, for kernels without id-mapped overlay layers (forced here with
    BERTH_USERNS_IDMAP=0): each lower layer copied once per mapping with its ids shifted."""
    d = berthd_factory(start=False, extra_args=("--userns-remap=default",), env_extra={"BERTH_USERNS_IDMAP": "0"})
    os.chmod(d.root, 0o711)
    d.start()
    assert "copied and chowned per mapping (BERTH_USERNS_IDMAP=0)" in d.log_path.read_text()
    d.import_image(busybox_tar, "busybox:latest", cmd=("sh",))
    uid, gid = remap_root()
    for _ in range(2):  # the second start reuses the copy
        ok(d.docker("run", "--rm", "busybox", "sh", "-c", "echo x >> /etc/passwd"), d)
    copies = list(Path(d.data_root).glob("*/overlay2/*/remap/*"))  # the image's layer and the init layer
    assert len(copies) == 2 and len({p.name for p in copies}) == 1, copies
    copies = [p for p in copies if (p / "bin" / "busybox").exists()]
    st = os.stat(copies[0] / "bin" / "busybox")
    assert (st.st_uid, st.st_gid) == (uid, gid)
    ok(d.docker("run", "-d", "--name", "cc", "busybox", "sh", "-c", "touch /new && sleep 300"), d)
    pid = int(ok(d.docker("inspect", "-f", "{{.State.Pid}}", "cc")).stdout)
    assert status_ids(pid) == (str(uid), str(gid))
    out = ok(d.docker("exec", "cc", "stat", "-c", "%u:%g", "/bin/busybox", "/etc/passwd", "/new"), d).stdout
    assert out.split() == ["0:0"] * 3
    # an auto container gets a copy of its own
    ok(d.docker("run", "--rm", "--label", "io.berth.userns=auto", "busybox", "stat", "-c", "%u", "/bin/busybox"), d)
    assert len({p.name for p in Path(d.data_root).glob("*/overlay2/*/remap/*")}) == 2
    ok(d.docker("commit", "cc", "fromcopy:1"), d)
    assert ok(d.docker("run", "--rm", "--userns=host", "fromcopy:1", "stat", "-c", "%u", "/new"), d).stdout == "0\n"


def test_joining_another_containers_pid_and_ipc(remapped: harness.Berthd) -> None:
    """As dockerd: joining a remapped container's PID or IPC namespace joins its user namespace."""
    d = remapped
    ok(d.docker("run", "-d", "--name", "donor", "--ipc", "shareable", "busybox", "sleep", "300"), d)
    out = ok(d.docker("run", "--rm", "--pid", "container:donor", "--ipc", "container:donor", "busybox", "sh", "-c",
                      "ps -o comm; readlink /proc/self/ns/user; readlink /proc/1/ns/user"), d).stdout
    assert "sleep" in out
    ns = out.split()[-2:]
    assert ns[0] == ns[1], out
    # --network container:X joins X's network namespace, in X's user namespace (dockerd's rule)
    out = ok(d.docker("run", "--rm", "--network", "container:donor", "busybox", "sh", "-c",
                      "readlink /proc/self/ns/net; readlink /proc/self/ns/user"), d).stdout.split()
    pid = int(ok(d.docker("inspect", "-f", "{{.State.Pid}}", "donor")).stdout)
    assert out == [os.readlink(f"/proc/{pid}/ns/net"), os.readlink(f"/proc/{pid}/ns/user")]
    # another mapping cannot join it
    r = d.docker("run", "--rm", "--label", "io.berth.userns=auto", "--pid", "container:donor", "busybox", "true")
    assert r.returncode != 0 and "other id maps" in r.stderr, r.stderr
    r = d.docker("run", "--rm", "--label", "io.berth.userns=auto", "--network", "container:donor", "busybox", "true")
    assert r.returncode != 0 and "other id maps" in r.stderr, r.stderr


def test_remapped_daemon_has_its_own_images_as_dockerd(
    berthd_factory: Callable[..., harness.Berthd], busybox_tar: Path, remap_user: str
) -> None:
    """Images imported before --userns-remap stay in the plain root (not shown by the remapped
    daemon, as dockerd's <root>/<uid>.<gid>); both work again after switching back and forth."""
    d = berthd_factory(start=False)
    os.chmod(d.root, 0o711)
    d.start()
    d.import_image(busybox_tar, "plain:1", cmd=("sh",))
    d.stop()
    d.extra_args = ("--userns-remap=default",)
    d.start()
    assert "plain" not in ok(d.docker("images", "--format", "{{.Repository}}"), d).stdout
    d.import_image(busybox_tar, "busybox:latest", cmd=("sh",))
    uid, _ = remap_root()
    ok(d.docker("run", "-d", "--name", "live", "busybox", "sleep", "300"), d)
    assert ok(d.docker("run", "--rm", "busybox", "cat", "/proc/self/uid_map"), d).stdout.split()[1] == str(uid)
    # berth's own CLI sends --userns as UsernsMode itself
    out = ok(d.berth("run", "--rm", "--userns", "auto", "busybox", "cat", "/proc/self/uid_map"), d).stdout.split()
    assert out[0] == "0" and out[1] not in ("0", str(uid)) and out[2] == "65536", out
    # a running remapped container survives a daemon restart, and exec still joins it
    d.restart()
    assert ok(d.docker("exec", "live", "cat", "/proc/self/uid_map"), d).stdout.split()[1] == str(uid)
    ok(d.docker("rm", "-f", "live"), d)
    d.stop()
    d.extra_args = ()
    d.start()
    out = ok(d.docker("run", "--rm", "plain:1", "cat", "/proc/self/uid_map"), d).stdout.split()
    assert out == ["0", "0", "4294967295"]


def test_network_capabilities_inside(remapped: harness.Berthd) -> None:
    """The container's network namespace belongs to its user namespace (dockerd's runtime makes
    both): its root's NET_RAW and NET_ADMIN act on its own network."""
    d = remapped
    ok(d.docker("run", "--rm", "busybox", "ping", "-c", "1", "-W", "2", "127.0.0.1"), d)
    ok(d.docker("run", "--rm", "--cap-add", "NET_ADMIN", "busybox", "ip", "link", "set", "lo", "mtu", "1400"), d)
    r = d.docker("run", "--rm", "busybox", "ip", "link", "set", "lo", "mtu", "1400")  # not without the cap
    assert r.returncode != 0
    ok(d.docker("run", "-d", "--name", "nn", "busybox", "sleep", "300"), d)
    pid = int(ok(d.docker("inspect", "-f", "{{.State.Pid}}", "nn")).stdout)
    # the host's root still owns it all: the namespace is the container's, not the host's
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    sandbox = ok(d.docker("inspect", "-f", "{{.NetworkSettings.SandboxKey}}", "nn")).stdout.strip()
    ok(d.docker("rm", "-f", "nn"), d)
    if sandbox:
        assert not Path(sandbox + ".user").exists() and not Path(sandbox).exists()


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc not installed (apt-get install runc)")
def test_runc_runtime(remapped: harness.Berthd) -> None:
    """The oci exec driver (runc) gets the same user namespace and id-mapped layers."""
    d = remapped
    uid, gid = remap_root()
    ok(d.docker("run", "-d", "--name", "rc", "--runtime", "runc", "busybox", "sh", "-c", "touch /new && sleep 300"), d)
    pid = int(ok(d.docker("inspect", "-f", "{{.State.Pid}}", "rc")).stdout)
    assert status_ids(pid) == (str(uid), str(gid))
    out = ok(d.docker("exec", "rc", "stat", "-c", "%u:%g", "/bin/busybox", "/new", "/etc/hosts"), d).stdout
    assert out.split() == ["0:0"] * 3
    ok(d.docker("exec", "rc", "ping", "-c", "1", "-W", "2", "127.0.0.1"), d)


@pytest.mark.parametrize("runtime", ["native", "runc"])
def test_per_container_maps_write_and_read_volumes(remapped: harness.Berthd, runtime: str) -> None:
    """A volume keeps the daemon-wide mapping's host ids on disk (dockerd's); a container with maps
    of its own (auto, map=) sees it id-mapped (its root owns what the remapped root owns), so it
    writes and reads it, and what it writes is its root's for every other container."""
    if runtime == "runc" and shutil.which("runc") is None:
        pytest.skip("runc not installed (apt-get install runc)")
    d = remapped
    uid, gid = remap_root()
    rt = ("--runtime", runtime) if runtime != "native" else ()
    pool = [ln for ln in Path("/etc/subuid").read_text().splitlines() if ln.startswith(USER + ":")][1]
    start = int(pool.split(":")[1]) + 7 * 65536
    ok(d.docker("volume", "create", "shared"), d)
    mountpoint = Path(ok(d.docker("volume", "inspect", "-f", "{{.Mountpoint}}", "shared")).stdout.strip())
    script = ("id -u; stat -c %u:%g /v; echo {tag} > /v/{tag} && mkdir /v/{tag}.d && chown 1000:1000 /v/{tag}.d"
              " && cat /v/{tag} && stat -c %u:%g /v/{tag} /v/{tag}.d")
    for tag, label in (("auto", "io.berth.userns=auto"), ("map", f"io.berth.userns=map=0:{start}:65536")):
        out = ok(d.docker("run", "--rm", *rt, "--label", label, "-v", "shared:/v", "busybox", "sh", "-c",
                          script.format(tag=tag)), d).stdout.split()
        assert out == ["0", "0:0", tag, "0:0", "1000:1000"], (tag, out)
        # on disk: the daemon-wide mapping's ids, as a file the remapped root wrote
        info = os.stat(mountpoint / tag)
        assert (info.st_uid, info.st_gid) == (uid, gid), tag
        info = os.stat(mountpoint / f"{tag}.d")
        assert (info.st_uid, info.st_gid) == (uid + 1000, gid + 1000), tag
    # a container with the daemon-wide mapping sees them as its root's and 1000's, and can write
    out = ok(d.docker("run", "--rm", *rt, "-v", "shared:/v", "busybox", "sh", "-c",
                      "stat -c %u:%g /v/auto /v/map /v/map.d; cat /v/auto /v/map; echo w > /v/auto.d/w && stat -c %u:%g /v/auto.d/w"),
             d).stdout.split()
    assert out == ["0:0", "0:0", "1000:1000", "auto", "map", "0:0"], out
    # and a second auto container, another block of ids, as well
    out = ok(d.docker("run", "--rm", *rt, "--label", "io.berth.userns=auto", "-v", "shared:/v:ro", "busybox", "sh", "-c",
                      "stat -c %u:%g /v/auto /v/map.d /v/auto.d/w; cat /v/map; touch /v/x 2>/dev/null || echo ro"), d).stdout.split()
    assert out == ["0:0", "1000:1000", "0:0", "map", "ro"], out
    # a new volume's copy of the image, made for an auto container: the daemon-wide ids on disk
    ok(d.docker("run", "--rm", *rt, "--label", "io.berth.userns=auto", "-v", "fresh:/etc", "busybox", "sh", "-c",
                "stat -c %u:%g /etc/passwd && echo x >> /etc/passwd"), d)
    fresh = Path(ok(d.docker("volume", "inspect", "-f", "{{.Mountpoint}}", "fresh")).stdout.strip())
    assert (os.stat(fresh / "passwd").st_uid, os.stat(fresh).st_uid) == (uid, uid)
    if runtime != "native":
        return
    # docker cp into a stopped auto container's volume: its root's file, the daemon-wide ids on disk
    ok(d.docker("create", "--name", "cpv", "--label", "io.berth.userns=auto", "-v", "shared:/v", "busybox", "true"), d)
    entry = tarfile.TarInfo("put")
    entry.size = 1
    put = d.docker("cp", "-", "cpv:/v", input=_tar_with([entry], {"put": b"p"}))
    assert put.returncode == 0, put.stderr
    info = os.stat(mountpoint / "put")
    assert (info.st_uid, info.st_gid) == (uid, gid)
    got = d.docker("cp", "cpv:/v/auto", "-", text=False)
    assert got.returncode == 0, got.stderr
    with tarfile.open(fileobj=io.BytesIO(got.stdout)) as tar:
        assert [(m.uid, m.gid) for m in tar.getmembers()] == [(0, 0)]
    # and into a running one's (the view enters its mount namespace, volume id-mapped there)
    ok(d.docker("run", "-d", "--name", "cpr", "--label", "io.berth.userns=auto", "-v", "shared:/v", "busybox",
                "sleep", "300"), d)
    entry.name = "put2"
    put = d.docker("cp", "-", "cpr:/v", input=_tar_with([entry], {"put2": b"p"}))
    assert put.returncode == 0, put.stderr
    assert (os.stat(mountpoint / "put2").st_uid, os.stat(mountpoint / "put2").st_gid) == (uid, gid)
    assert ok(d.docker("exec", "cpr", "stat", "-c", "%u:%g", "/v/put2", "/v/put"), d).stdout.split() == ["0:0", "0:0"]


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc not installed (apt-get install runc)")
def test_removal_never_deletes_a_volume_through_a_mount_left_behind(remapped: harness.Berthd) -> None:
    """runc: the volume of a container with maps of its own is an id-mapped bind the monitor
    mounts in the bundle (<container dir>/idmapped/N) and unmounts at delete, in its mount namespace.
    A berthd restarted into a mount namespace of its own (a private copy: a service manager's
    PrivateMounts=) keeps a copy of that mount which the monitor's unmount never reaches; the
    container's removal must unmount or skip it, never delete the volume's files through it
    (shutil.rmtree of the exec dir did: the volume came out empty)."""
    d = remapped
    ok(d.docker("volume", "create", "precious"), d)
    mountpoint = Path(ok(d.docker("volume", "inspect", "-f", "{{.Mountpoint}}", "precious")).stdout.strip())
    ok(d.docker("run", "-d", "--name", "keeper", "--runtime", "runc", "--label", "io.berth.userns=auto",
                "-v", "precious:/v", "busybox", "sh", "-c",
                "echo data > /v/sentinel && mkdir /v/d && echo deep > /v/d/f && touch /v/ready && exec sleep 300"), d)
    deadline = time.monotonic() + 20
    while not (mountpoint / "ready").exists():
        assert time.monotonic() < deadline, d.log_tail()
        time.sleep(0.05)
    cid = _cid(d, "keeper")
    bound = [p for p in harness.mounts_under(d.root) if cid in p and "/idmapped/" in p]
    assert len(bound) == 1, harness.mounts_under(d.root)
    bundle = Path(bound[0]).parent.parent
    d.stop()  # the container keeps running (live restore)
    d.private_mounts = True
    d.start()
    assert ok(d.docker("inspect", "-f", "{{.State.Running}}", "keeper"), d).stdout.strip() == "true"
    assert d.pid is not None
    theirs = Path(f"/proc/{d.pid}/mountinfo").read_text()
    assert bound[0] in theirs and Path(f"/proc/{d.pid}/ns/mnt").stat().st_ino != Path("/proc/self/ns/mnt").stat().st_ino
    ok(d.docker("rm", "-f", "keeper"), d)
    assert (mountpoint / "sentinel").read_text() == "data\n"
    assert (mountpoint / "d" / "f").read_text() == "deep\n"
    assert not bundle.exists()
    assert bound[0] not in Path(f"/proc/{d.pid}/mountinfo").read_text()
    assert harness.mounts_under(d.root) == []
