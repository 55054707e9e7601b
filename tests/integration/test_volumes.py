"""Volumes and bind mounts through the real docker CLI: -v, --mount, VOLUME, docker volume ..."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import harness

pytestmark = pytest.mark.integration


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
    return r


def volume_names(berthd: harness.Berthd) -> set[str]:
    return set(ok(berthd.docker("volume", "ls", "-q")).stdout.split())


def test_bind_rw_and_ro(berthd: harness.Berthd, busybox_image: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "in.txt").write_text("from host\n")
    r = ok(berthd.docker("run", "--rm", "-v", f"{src}:/mnt", busybox_image, "sh", "-c", "cat /mnt/in.txt; echo hi > /mnt/out.txt"))
    assert r.stdout == "from host\n"
    assert (src / "out.txt").read_text() == "hi\n"
    r = berthd.docker("run", "--rm", "-v", f"{src}:/mnt:ro", busybox_image, "sh", "-c", "cat /mnt/in.txt; touch /mnt/x")
    assert r.returncode == 1 and r.stdout == "from host\n" and "Read-only file system" in r.stderr, r.returncode
    assert not (src / "x").exists()
    # --mount type=bind, readonly, and the inspect view
    cid = ok(berthd.docker(
        "create", "--mount", f"type=bind,source={src},target=/m,readonly", "-v", f"{src}:/w", busybox_image, "true"
    )).stdout.strip()
    data = json.loads(ok(berthd.docker("inspect", cid)).stdout)[0]
    assert data["HostConfig"]["Binds"] == [f"{src}:/w"]
    mounts = {m["Destination"]: m for m in data["Mounts"]}
    assert mounts["/m"] == {"Type": "bind", "Source": str(src), "Destination": "/m", "Mode": "", "RW": False, "Propagation": "rprivate"}
    assert mounts["/w"]["RW"] is True and mounts["/w"]["Type"] == "bind"
    ok(berthd.docker("rm", cid))
    # a missing -v source is created as a directory; a missing --mount source is Docker's 400
    missing = tmp_path / "made" / "here"
    ok(berthd.docker("run", "--rm", "-v", f"{missing}:/x", busybox_image, "touch", "/x/f"))
    assert (missing / "f").exists()
    r = berthd.docker("run", "--rm", "--mount", f"type=bind,source={tmp_path}/nope,target=/x", busybox_image, "true")
    assert r.returncode == 125
    assert f'invalid mount config for type "bind": bind source path does not exist: {tmp_path}/nope' in r.stderr


def test_named_volume_persists_and_copy_up(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("run", "--rm", "-v", "keep:/data", busybox_image, "sh", "-c", "echo kept > /data/f"))
    r = ok(berthd.docker("run", "--rm", "--mount", "type=volume,source=keep,target=/d", busybox_image, "cat", "/d/f"))
    assert r.stdout == "kept\n"
    assert "keep" in volume_names(berthd)
    info = json.loads(ok(berthd.docker("volume", "inspect", "keep")).stdout)[0]
    assert info["Driver"] == "local" and info["Scope"] == "local"
    assert info["Mountpoint"] == str(berthd.data_root / "volumes" / "keep" / "_data")
    assert (Path(info["Mountpoint"]) / "f").read_text() == "kept\n"
    # copy-up: a new volume at /etc starts with the image's /etc
    r = ok(berthd.docker("run", "--rm", "-v", "etcvol:/etc", busybox_image, "sh", "-c", "ls /etc"))
    assert "passwd" in r.stdout.split()
    assert (berthd.data_root / "volumes" / "etcvol" / "_data" / "passwd").is_file()
    # inspect view of a named volume
    cid = ok(berthd.docker("create", "-v", "keep:/data:ro", busybox_image, "true")).stdout.strip()
    m = json.loads(ok(berthd.docker("inspect", "-f", "{{json .Mounts}}", cid)).stdout)[0]
    assert m["Type"] == "volume" and m["Name"] == "keep" and m["Driver"] == "local"
    assert m["Destination"] == "/data" and m["RW"] is False and m["Mode"] == "ro"
    assert ok(berthd.docker("ps", "-a", "--format", "{{.Mounts}}")).stdout.strip() == "keep"
    ok(berthd.docker("rm", cid))


def test_anonymous_volumes(berthd: harness.Berthd, busybox_image: str, busybox_tar: Path) -> None:
    before = volume_names(berthd)
    ok(berthd.docker("run", "--rm", "-v", "/anon", busybox_image, "touch", "/anon/f"))
    assert volume_names(berthd) == before  # --rm removes anonymous volumes
    ok(berthd.docker("run", "--name", "a1", "-v", "/anon", "-v", "named1:/n", busybox_image, "true"))
    added = volume_names(berthd) - before
    anon = [n for n in added if n != "named1"]
    assert "named1" in added and len(anon) == 1 and len(anon[0]) == 64
    ok(berthd.docker("rm", "-v", "a1"))
    assert volume_names(berthd) - before == {"named1"}  # named volumes stay
    # an image VOLUME becomes an anonymous volume with the image's content
    ok(berthd.docker("import", "-c", "VOLUME /etc", "-c", 'CMD ["sh"]', str(busybox_tar), "volimg:1"))
    ok(berthd.docker("run", "--name", "a2", "volimg:1", "true"))
    m = json.loads(ok(berthd.docker("inspect", "-f", "{{json .Mounts}}", "a2")).stdout)
    assert len(m) == 1 and m[0]["Destination"] == "/etc" and len(m[0]["Name"]) == 64
    assert (Path(m[0]["Source"]) / "passwd").is_file()
    ok(berthd.docker("rm", "a2"))  # without -v the anonymous volume stays
    assert m[0]["Name"] in volume_names(berthd)


def test_volume_commands(berthd: harness.Berthd, busybox_image: str) -> None:
    assert ok(berthd.docker("volume", "create", "--label", "a=b", "myvol")).stdout == "myvol\n"
    ok(berthd.docker("volume", "create", "other"))
    assert ok(berthd.docker("volume", "ls", "--filter", "label=a=b", "-q")).stdout == "myvol\n"
    assert ok(berthd.docker("volume", "ls", "--filter", "name=oth", "-q")).stdout == "other\n"
    info = json.loads(ok(berthd.docker("volume", "inspect", "myvol")).stdout)[0]
    assert info["Labels"] == {"a": "b"} and info["Options"] is None and info["CreatedAt"].endswith("Z")
    r = berthd.docker("volume", "create", "--driver", "nfs", "x1")
    assert r.returncode == 1, (r.returncode, r.stderr)
    cid = ok(berthd.docker("run", "-d", "-v", "myvol:/data", busybox_image, "sleep", "60")).stdout.strip()
    assert ok(berthd.docker("volume", "ls", "--filter", "dangling=true", "-q")).stdout == "other\n"
    r = berthd.docker("volume", "rm", "myvol")
    assert r.returncode == 1 and f"remove myvol: volume is in use - [{cid}]" in r.stderr
    r = berthd.docker("volume", "rm", "-f", "myvol")
    assert r.returncode == 1 and "volume is in use" in r.stderr
    code, body = berthd.api("DELETE", "/volumes/myvol")
    assert code == 409
    ok(berthd.docker("rm", "-f", cid))
    r = berthd.docker("volume", "rm", "nosuch")
    assert r.returncode == 1 and "no such volume" in r.stderr
    ok(berthd.docker("volume", "rm", "-f", "nosuch"))
    # prune: anonymous unused volumes by default, every unused one with -a
    ok(berthd.docker("create", "-v", "/anon", busybox_image, "true"))
    ok(berthd.docker("run", "--name", "gone", "-v", "/anon2", busybox_image, "true"))
    ok(berthd.docker("rm", "gone"))
    r = ok(berthd.docker("volume", "prune", "-f"))
    assert "Total reclaimed space" in r.stdout
    left = volume_names(berthd)
    assert {"myvol", "other"} <= left and len(left) == 3  # the created container's /anon stays
    ok(berthd.docker("volume", "prune", "-a", "-f"))
    assert len(volume_names(berthd)) == 1


def test_ps_volume_filter(berthd: harness.Berthd, busybox_image: str, tmp_path: Path) -> None:
    ok(berthd.docker("create", "--name", "f1", "-v", "fvol:/data", busybox_image, "true"))
    ok(berthd.docker("create", "--name", "f2", "-v", f"{tmp_path}:/h", busybox_image, "true"))
    assert ok(berthd.docker("ps", "-a", "--filter", "volume=fvol", "--format", "{{.Names}}")).stdout == "f1\n"
    assert ok(berthd.docker("ps", "-a", "--filter", "volume=/h", "--format", "{{.Names}}")).stdout == "f2\n"
    ok(berthd.docker("rm", "-v", "f1", "f2"))
    assert "fvol" in volume_names(berthd)


def test_volumes_survive_a_daemon_restart(berthd: harness.Berthd, busybox_image: str) -> None:
    ok(berthd.docker("run", "--name", "r1", "-v", "persist:/data", busybox_image, "sh", "-c", "echo 1 > /data/f"))
    berthd.restart()
    assert "persist" in volume_names(berthd)
    r = berthd.docker("volume", "rm", "persist")
    assert r.returncode == 1 and "volume is in use" in r.stderr
    ok(berthd.docker("start", "-a", "r1"))
    assert ok(berthd.docker("run", "--rm", "-v", "persist:/d", busybox_image, "cat", "/d/f")).stdout == "1\n"
    ok(berthd.docker("rm", "r1"))
    ok(berthd.docker("volume", "rm", "persist"))


def test_dockerpy_volumes(berthd: harness.Berthd, busybox_image: str, tmp_path: Path) -> None:
    client = berthd.client()
    vol = client.volumes.create("pyvol", labels={"k": "v"})
    assert vol.name == "pyvol" and vol.attrs["Labels"] == {"k": "v"}
    assert "pyvol" in [v.name for v in client.volumes.list()]
    (tmp_path / "in").write_text("host\n")
    out = client.containers.run(
        busybox_image, ["sh", "-c", "echo py > /v/f; cat /h/in"], remove=True,
        volumes={"pyvol": {"bind": "/v", "mode": "rw"}, str(tmp_path): {"bind": "/h", "mode": "ro"}},
    )
    assert out == b"host\n"
    assert (Path(client.volumes.get("pyvol").attrs["Mountpoint"]) / "f").read_text() == "py\n"
    client.volumes.get("pyvol").remove()
    assert client.volumes.prune()["VolumesDeleted"] is None


def test_concurrent_first_use_copies_once(berthd: harness.Berthd, busybox_image: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(
            lambda _: berthd.docker("run", "--rm", "-v", "conc:/etc", busybox_image, "test", "-f", "/etc/passwd"),
            range(4),
        ))
    assert [r.returncode for r in runs] == [0, 0, 0, 0], [r.stderr for r in runs]
    assert volume_names(berthd) >= {"conc"}
