"""OCI image layouts: `berth save --format oci` is read by docker load and by skopeo; berth loads
skopeo's oci-archive; a hostile layout (bad digest, missing blob) writes nothing."""

from __future__ import annotations

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


def ok(r: Any) -> Any:
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
    return r


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed (apt-get install skopeo)")
def test_save_oci_round_trips_through_skopeo_and_docker_load(berthd: harness.Berthd, busybox_image: str,
                                                             tmp_path: Path) -> None:
    archive = tmp_path / "bbx-oci.tar"
    ok(berthd.berth("save", "--format", "oci", "-o", str(archive), busybox_image))
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
    assert {"oci-layout", "index.json", "manifest.json"} <= set(names)
    assert index["manifests"][0]["annotations"] == {"io.containerd.image.name": "docker.io/library/busybox:latest",
                                                    "org.opencontainers.image.ref.name": "latest"}
    env = {**os.environ, "HOME": str(tmp_path)}
    # skopeo reads it as an OCI archive and writes its own layout back
    ok(subprocess.run(["skopeo", "copy", f"oci-archive:{archive}:latest", f"oci-archive:{tmp_path}/sk.tar:sk:1"],
                      capture_output=True, text=True, env=env))
    image_id = ok(berthd.docker("image", "inspect", "-f", "{{.Id}}", busybox_image)).stdout.strip()
    ok(berthd.docker("rmi", busybox_image))
    # docker load reads berth's layout (as a docker-archive)
    out = ok(berthd.docker("load", "-i", str(archive))).stdout
    assert "Loaded image: busybox:latest" in out
    ok(berthd.docker("rmi", busybox_image))
    # berth loads skopeo's oci-archive (no manifest.json), named by its ref name "sk:1"
    out = ok(berthd.docker("load", "-i", f"{tmp_path}/sk.tar")).stdout
    assert out.strip() == "Loaded image: sk:1"
    assert ok(berthd.docker("image", "inspect", "-f", "{{.Id}}", "sk:1")).stdout.strip() == image_id
    assert ok(berthd.docker("run", "--rm", "sk:1", "echo", "oci")).stdout == "oci\n"


def test_hostile_oci_layouts_write_nothing(berthd: harness.Berthd, busybox_image: str, tmp_path: Path) -> None:
    archive = tmp_path / "good.tar"
    ok(berthd.berth("save", "--format", "oci", "-o", str(archive), busybox_image))
    ok(berthd.docker("rmi", busybox_image))
    src = tmp_path / "src"
    with tarfile.open(archive) as tar:
        tar.extractall(src, filter="data")
    (src / "manifest.json").unlink()  # a pure OCI layout
    blobs = sorted((src / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)

    def load_variant(name: str, mutate: Any) -> str:
        work = tmp_path / name
        shutil.copytree(src, work)
        mutate(work)
        tar_path = tmp_path / f"{name}.tar"
        with tarfile.open(tar_path, "w") as tar:
            for p in sorted(work.rglob("*")):
                tar.add(p, arcname=str(p.relative_to(work)), recursive=False)
        r = berthd.docker("load", "-i", str(tar_path))
        assert r.returncode == 1, (name, r.stdout)
        assert berthd.docker("images", "-q").stdout == "", name
        return r.stderr

    biggest = blobs[-1]
    assert "does not match its digest" in load_variant("tampered", lambda w: (w / "blobs/sha256" / biggest.name).write_bytes(b"x" * biggest.stat().st_size))
    assert "is not in the archive" in load_variant("missing", lambda w: (w / "blobs/sha256" / biggest.name).unlink())
    assert "index.json" in load_variant("badindex", lambda w: (w / "index.json").write_text('{"manifests": 5}'))
