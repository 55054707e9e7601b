"""Hostile archives through the real docker CLI and the raw API (issue 5, items 3, 15, 16):
sparse files keep their holes, an archive may unpack only so much, a failed load is reported in
the JSON stream as dockerd does, and bad archives are a client error that writes nothing."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

import harness

pytestmark = pytest.mark.integration

GIB = 1 << 30


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
    return r


def feed(d: harness.Daemon, *args: str, data: bytes) -> subprocess.CompletedProcess[str]:
    """``docker ARGS`` with ``data`` on stdin; the output as text."""
    r = d.docker(*args, input=data, timeout=120)
    return subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(), r.stderr.decode())


def tar_of(*members: tuple[str, bytes] | tarfile.TarInfo, compress: bool = False) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tar.addfile(m, io.BytesIO(bytes(m.size)) if m.isreg() else None)
                continue
            name, data = m
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(out.getvalue()) if compress else out.getvalue()


def state(d: harness.Berthd) -> dict[str, Any]:
    """What an import or load could have left behind: images, layer dirs, blobs, temp files."""
    def names(path: Path) -> set[str]:
        return set(os.listdir(path)) if path.is_dir() else set()

    return {
        "images": ok(d.docker("images", "-a", "-q", "--no-trunc")).stdout.split(),
        "layers": names(d.data_root / "overlay2") - {"l"},
        "links": names(d.data_root / "overlay2" / "l"),
        "blobs": names(d.data_root / "blobs" / "sha256"),
        "tmp": names(d.data_root / "tmp"),
    }


def no_traceback(d: harness.Berthd) -> None:
    log = d.log_path.read_text()
    assert "Traceback" not in log and " 500 " not in log, d.log_tail()


# --- sparse files (item 3) ------------------------------------------------------------------------


def sparse_tar(tmp_path: Path, fmt: str) -> Path:
    if shutil.which("tar") is None:
        pytest.skip("GNU tar is not installed (it writes the sparse archives this test imports)")
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "big", "wb") as f:
        f.truncate(2 * GIB)
        f.seek(2 * GIB - 4)
        f.write(b"tail")
    if os.stat(src / "big").st_blocks * 512 > 1 << 20:
        pytest.skip(f"{tmp_path} does not keep holes, so GNU tar would not write a sparse entry")
    out = tmp_path / f"sparse-{fmt}.tar"
    args = ["--format=gnu"] if fmt == "gnu" else ["--format=posix", f"--sparse-version={fmt}"]
    subprocess.run(["tar", *args, "-S", "-C", str(src), "-cf", str(out), "big"], check=True)
    assert out.stat().st_size < 64 * 1024
    return out


@pytest.mark.parametrize("fmt", ["gnu", "1.0"])
def test_docker_import_of_a_sparse_file_keeps_the_hole(berthd: harness.Berthd, tmp_path: Path, fmt: str) -> None:
    archive = sparse_tar(tmp_path, fmt)
    image_id = ok(berthd.docker("import", str(archive), f"sparse:{fmt.replace('.', '')}")).stdout.strip()
    diff = Path(ok(berthd.docker("image", "inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", image_id)).stdout.strip())
    st = (diff / "big").stat()
    assert st.st_size == 2 * GIB
    assert st.st_blocks * 512 <= 64 * 1024, f"{st.st_blocks * 512} bytes on disk: the 2 GiB hole was written out"
    assert json.loads(ok(berthd.docker("image", "inspect", image_id)).stdout)[0]["Size"] == 2 * GIB
    with open(diff / "big", "rb") as f:
        f.seek(2 * GIB - 8)
        assert f.read() == b"\0\0\0\0tail"
    saved = ok(berthd.docker("save", image_id, text=False)).stdout
    assert len(saved) < 1 << 20  # save sends the layer as imported: still a few KB


# --- what an import or load may unpack (item 3) ----------------------------------------------------


def zeros_tar(size: int) -> bytes:
    info = tarfile.TarInfo("zeros")
    info.size = size
    return tar_of(info, compress=True)


def test_an_archive_bomb_is_refused_at_the_configured_limit(berthd_factory, busybox_tar: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps({"max-import-size": "4m"}))
    d = berthd_factory(extra_args=("--config-file", str(config)))
    bomb = zeros_tar(16 << 20)
    assert len(bomb) < 64 * 1024
    before = state(d)
    r = feed(d, "import", "-", "bomb:1", data=bomb)
    assert r.returncode == 1
    assert "refusing an archive that unpacks to more than 4194304 bytes" in r.stderr, r.stderr
    assert "max-import-size" in r.stderr
    assert state(d) == before
    # load: the same limit, reported in the JSON stream; an archive within it still loads
    layer = tar_of(("zeros", bytes(16 << 20)))
    load_bomb = gzip.compress(tar_of(("manifest.json", b"[]"), ("big/layer.tar", layer)))
    r = feed(d, "load", data=load_bomb)
    assert r.returncode == 1 and "refusing an archive that unpacks to more than 4194304 bytes" in r.stderr, r.stderr
    assert state(d) == before
    ok(d.docker("import", str(busybox_tar), "fits:1"))  # about 2 MB
    no_traceback(d)


def test_the_flag_overrides_the_default(berthd_factory) -> None:  # type: ignore[no-untyped-def]
    d = berthd_factory(extra_args=("--max-import-size", "1m"))
    r = feed(d, "import", "-", "bomb:1", data=zeros_tar(2 << 20))
    assert r.returncode == 1 and "more than 1048576 bytes" in r.stderr


# --- docker load errors come in the JSON stream (item 15) -----------------------------------------


def test_load_of_garbage_is_a_200_with_the_error_in_the_stream(berthd: harness.Berthd) -> None:
    garbage = b"this is not a tar archive at all\n" * 40
    status, body = harness.http_request(berthd.sock, "POST", "/v1.45/images/load?quiet=1", garbage)
    assert status == 200, body
    line = json.loads(body.splitlines()[0])
    assert line["error"] == line["errorDetail"]["message"]
    assert "invalid" in line["error"]
    r = feed(berthd, "load", data=garbage)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip() == line["error"]  # what the CLI prints: the message, no "Error response"
    no_traceback(berthd)


@pytest.mark.conformance
def test_load_of_garbage_fails_like_dockerd(berthd: harness.Berthd, dockerd: harness.Dockerd) -> None:
    garbage = b"this is not a tar archive at all\n" * 40
    got = [feed(d, "load", data=garbage) for d in (berthd, dockerd)]
    assert got[0].returncode == got[1].returncode == 1
    for r in got:
        assert r.stdout == "" and r.stderr.strip() and "Error response from daemon" not in r.stderr
    statuses = [harness.http_request(d.sock, "POST", "/images/load", garbage)[0] for d in (berthd, dockerd)]
    assert statuses == [200, 200]


# --- bad manifests and configs (item 16) -----------------------------------------------------------


CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
CONFIG1 = b'{"rootfs":{"type":"layers","diff_ids":["sha256:' + b"a" * 64 + b'"]}}'


@pytest.mark.parametrize(
    ("manifest", "why"),
    [
        pytest.param(b'{"a":1}', "want a list of images, got an object", id="object"),
        pytest.param(b'["abc"]', "entry 0 must be an object", id="list-of-string"),
        pytest.param(b"null", "want a list of images, got null", id="null"),
        pytest.param(b'[{"Config": 123}]', "Config must be the name of a file in the archive, not a number", id="config-int"),
        pytest.param(b'[{"Config": "c.json", "RepoTags": [5]}]', "RepoTags must be a list of strings", id="repotags-int"),
        pytest.param(b"[" * 100_000, "nested more than 100 levels deep", id="100k-deep"),
        pytest.param(b'[{"Config": "c.json", "RepoTags": ["ok:1", "Bad Name"]}]', "Bad Name", id="bad-tag"),
        pytest.param(b'[{"Config": "c1.json", "Layers": ["missing/layer.tar"]}]', "not found in the archive", id="missing-layer"),
    ],
)
def test_bad_manifests_are_clean_errors_that_write_nothing(berthd: harness.Berthd, busybox_image: str, manifest: bytes, why: str) -> None:
    before = state(berthd)
    archive = tar_of(("manifest.json", manifest), ("c.json", CONFIG), ("c1.json", CONFIG1))
    status, body = harness.http_request(berthd.sock, "POST", "/images/load", archive)
    assert status == 200
    error = json.loads(body.splitlines()[-1])["errorDetail"]["message"]
    assert why in error, error
    r = feed(berthd, "load", data=archive)
    assert r.returncode == 1 and why in r.stderr, r.stderr
    assert state(berthd) == before
    no_traceback(berthd)


def image_archive(layer: bytes, config: dict[str, Any], tag: str) -> bytes:
    config = {**config, "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}
    data = json.dumps(config).encode()
    name = hashlib.sha256(data).hexdigest() + ".json"
    manifest = [{"Config": name, "RepoTags": [tag], "Layers": ["l1/layer.tar"]}]
    return tar_of(("manifest.json", json.dumps(manifest).encode()), (name, data), ("l1/layer.tar", layer))


@pytest.mark.parametrize(
    ("created", "unix"),
    [pytest.param(None, 0, id="no-created"), pytest.param("0001-01-01T00:00:00Z", -62135596800, id="year-1")],
)
def test_configs_without_created_or_from_year_1_load_and_work(berthd: harness.Berthd, busybox_tar: Path, created: str | None, unix: int) -> None:
    config: dict[str, Any] = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["echo", "loaded"]}}
    if created is not None:
        config["created"] = created
    r = ok(feed(berthd, "load", data=image_archive(busybox_tar.read_bytes(), config, "oci:1")))
    assert r.stdout.strip() == "Loaded image: oci:1"
    listing = [i for i in berthd.client().api.images() if "oci:1" in (i["RepoTags"] or [])]
    assert listing[0]["Created"] == unix
    assert json.loads(ok(berthd.docker("image", "inspect", "oci:1")).stdout)[0]["Created"] == (created or "")
    ok(berthd.docker("history", "oci:1"))
    ok(berthd.docker("images"))
    assert ok(berthd.docker("run", "--rm", "oci:1")).stdout == "loaded\n"
    no_traceback(berthd)


@pytest.mark.parametrize(
    ("config", "why"),
    [
        pytest.param({"created": 123}, "created must be an RFC 3339 time string", id="created-int"),
        pytest.param({"config": {"Env": "A=b"}}, "config.Env must be a list of strings", id="env"),
        pytest.param({"created": "9999-12-31T23:59:59-23:59"}, "years 1 to 9999", id="past-9999"),
    ],
)
def test_bad_configs_are_refused_and_write_nothing(berthd: harness.Berthd, busybox_tar: Path, config: dict[str, Any], why: str) -> None:
    before = state(berthd)
    r = feed(berthd, "load", data=image_archive(busybox_tar.read_bytes(), config, "bad:1"))
    assert r.returncode == 1 and why in r.stderr, r.stderr
    assert state(berthd) == before
    no_traceback(berthd)


# --- bad imports (item 16) -----------------------------------------------------------------------


def test_a_300_character_file_name_is_a_400_without_host_paths(berthd: harness.Berthd) -> None:
    before = state(berthd)
    archive = tar_of(("etc/" + "n" * 300, b"x"))
    status, body = harness.http_request(berthd.sock, "POST", "/images/create?fromSrc=-&repo=long", archive)
    assert status == 400, body
    message = json.loads(body)["message"]
    assert "file name too long" in message and str(berthd.root) not in message
    r = feed(berthd, "import", "-", "long:1", data=archive)
    assert r.returncode == 1 and "file name too long" in r.stderr and str(berthd.root) not in r.stderr
    assert state(berthd) == before
    no_traceback(berthd)


def test_a_malformed_file_capability_is_a_400(berthd: harness.Berthd) -> None:
    info = tarfile.TarInfo("bin/tool")
    info.size, info.mode = 1, 0o755
    info.pax_headers = {"SCHILY.xattr.security.capability": "not a capability"}
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(b"x"))
    before = state(berthd)
    status, body = harness.http_request(berthd.sock, "POST", "/images/create?fromSrc=-&repo=caps", out.getvalue())
    assert status == 400, body
    message = json.loads(body)["message"]
    assert "security.capability" in message and "bin/tool" in message and str(berthd.root) not in message
    assert state(berthd) == before
    no_traceback(berthd)


# --- bad JSON requests (item 16) -----------------------------------------------------------------


DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    "path",
    ["/containers/create", "/volumes/create", "/networks/create", "/auth", "/containers/{cid}/exec",
     "/commit?container={cid}", "/containers/{cid}/update"],
)
def test_json_nested_100k_deep_is_a_400_on_every_route(berthd: harness.Berthd, busybox_image: str, path: str) -> None:
    cid = ok(berthd.docker("create", "--name", "keep", busybox_image, "true")).stdout.strip()
    for body in (DEEP, b'{"Image": ' + DEEP + b"}"):
        status, raw = harness.http_request(berthd.sock, "POST", path.format(cid=cid), body)
        assert status == 400, raw
        assert "nested more than 100 levels deep" in json.loads(raw)["message"]
    assert ok(berthd.docker("ps", "-aq", "--no-trunc")).stdout.split() == [cid]
    assert ok(berthd.docker("volume", "ls", "-q")).stdout == ""
    filters = "[" * 5000
    status, raw = harness.http_request(berthd.sock, "GET", f"/containers/json?filters={filters}")
    assert status == 400 and "nested more than" in json.loads(raw)["message"]
    no_traceback(berthd)


def test_a_100_mb_json_body_is_a_413_and_creates_nothing(berthd: harness.Berthd, busybox_image: str) -> None:
    body = json.dumps({"Image": busybox_image, "Env": ["X=" + "x" * (100 << 20)]}).encode()
    status, raw = harness.http_request(berthd.sock, "POST", "/containers/create", body, timeout=120)
    assert status == 413, raw[:300]
    assert "request body over 8388608 bytes" in json.loads(raw)["message"]
    assert ok(berthd.docker("ps", "-aq")).stdout == ""
    # a body under the limit is fine
    ok(berthd.docker("create", "-e", "X=" + "x" * 100_000, busybox_image, "true"))
    no_traceback(berthd)
