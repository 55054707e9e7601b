"""Pull, push, login and search through a real berthd, driven by the docker CLI and docker-py,
against berth's own registry server and the CNCF registry 2.8 (both on 127.0.0.1)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

import harness
from registry_harness import BerthRegistry, CNCFRegistry

pytestmark = pytest.mark.integration


def ok(r: subprocess.CompletedProcess[Any]) -> subprocess.CompletedProcess[Any]:
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
    return r


@pytest.fixture
def reg(tmp_path: Path) -> Any:
    with BerthRegistry(tmp_path / "reg") as r:
        yield r


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


def test_push_then_pull_through_the_docker_cli(berthd: harness.Berthd, busybox_image: str, reg: BerthRegistry) -> None:
    name = f"{reg.addr}/team/bbx"
    ok(berthd.docker("tag", busybox_image, f"{name}:v1"))
    out = lines(ok(berthd.docker("push", f"{name}:v1")).stdout)
    assert out[0] == f"The push refers to repository [{name}]"
    assert out[1].endswith(": Preparing") and out[2].endswith(": Pushed")
    assert out[3].startswith("v1: digest: sha256:") and " size: " in out[3]
    digest = out[3].split()[2]
    assert reg.request("HEAD", f"/v2/team/bbx/manifests/{digest}")[0] == 200
    # a second push finds the layer there
    out = lines(ok(berthd.docker("push", f"{name}:v1")).stdout)
    assert out[2].endswith(": Layer already exists")

    old_id = ok(berthd.docker("image", "inspect", "-f", "{{.Id}}", busybox_image)).stdout.strip()
    ok(berthd.docker("rmi", f"{name}:v1", busybox_image))
    out = lines(ok(berthd.docker("pull", f"{name}:v1")).stdout)
    assert out[0] == "v1: Pulling from team/bbx"
    assert any(line.endswith(": Pull complete") for line in out)
    assert out[-3:] == [f"Digest: {digest}", f"Status: Downloaded newer image for {name}:v1", f"{name}:v1"]
    inspect = json.loads(ok(berthd.docker("image", "inspect", f"{name}:v1")).stdout)[0]
    assert inspect["Id"] == old_id  # the same config, so the same image id
    assert inspect["RepoDigests"] == [f"{name}@{digest}"]
    assert ok(berthd.docker("run", "--rm", f"{name}:v1", "echo", "pulled")).stdout == "pulled\n"

    out = lines(ok(berthd.docker("pull", f"{name}:v1")).stdout)
    assert out[1].endswith(": Already exists")
    assert out[-2] == f"Status: Image is up to date for {name}:v1"
    # by digest
    ok(berthd.docker("rmi", f"{name}:v1"))
    out = lines(ok(berthd.docker("pull", f"{name}@{digest}")).stdout)
    assert out[-1] == f"{name}@{digest}"
    assert ok(berthd.docker("images", "--digests", "--format", "{{.Digest}}")).stdout.split() == [digest]


def test_pull_errors(berthd: harness.Berthd, reg: BerthRegistry) -> None:
    r = berthd.docker("pull", f"{reg.addr}/nope:latest")
    assert r.returncode == 1
    assert r.stderr.strip() == (f"Error response from daemon: manifest for {reg.addr}/nope:latest not found: "
                                "manifest unknown: manifest unknown")
    r = berthd.docker("run", "--rm", f"{reg.addr}/nope:latest", "true")
    assert r.returncode == 125
    assert f"Unable to find image '{reg.addr}/nope:latest' locally" in r.stderr
    # nothing listening
    port = harness.free_tcp_port()
    r = berthd.docker("pull", f"127.0.0.1:{port}/x:1")
    assert r.returncode == 1 and "connection refused" in r.stderr, r.stderr


def test_run_pulls_a_missing_image_and_cncf_registry_interop(berthd: harness.Berthd, busybox_image: str,
                                                             tmp_path: Path) -> None:
    with CNCFRegistry(tmp_path / "cncf", harness.free_tcp_port()) as cncf:
        name = f"{cncf.addr}/lib/bbx:1"
        ok(berthd.docker("tag", busybox_image, name))
        ok(berthd.docker("push", name))
        ok(berthd.docker("rmi", name, busybox_image))
        r = ok(berthd.docker("run", "--rm", name, "echo", "from cncf"))
        assert r.stdout == "from cncf\n"
        assert f"Unable to find image '{name}' locally" in r.stderr
        assert "Pull complete" in r.stderr or "Downloaded newer image" in r.stderr


def test_corrupt_blob_is_refused_and_nothing_is_left(berthd: harness.Berthd, busybox_image: str,
                                                     reg: BerthRegistry) -> None:
    name = f"{reg.addr}/bad/img:1"
    ok(berthd.docker("tag", busybox_image, name))
    ok(berthd.docker("push", name))
    ok(berthd.docker("rmi", name, busybox_image))
    status, _, body = reg.request("GET", "/v2/bad/img/manifests/1")
    layer = json.loads(body)["layers"][0]["digest"]
    blob = reg.root / "blobs" / "sha256" / layer.split(":")[1]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    r = berthd.docker("pull", name)
    assert r.returncode == 1
    assert f"filesystem layer verification failed for digest {layer}" in r.stderr
    assert ok(berthd.docker("images", "-q")).stdout == ""
    assert not list((berthd.data_root / "pull-partial").iterdir())


def test_login_and_token_auth(berthd: harness.Berthd, busybox_image: str, tmp_path: Path) -> None:
    import bcrypt

    (tmp_path / "htpasswd").write_text(f"ann:{bcrypt.hashpw(b'pw1', bcrypt.gensalt(rounds=4)).decode()}\n")
    with BerthRegistry(tmp_path / "reg", "--auth", "token", "--htpasswd", str(tmp_path / "htpasswd")) as reg:
        cfg = tmp_path / "dockercfg"
        cfg.mkdir()
        env = {**berthd.env, "DOCKER_CONFIG": str(cfg)}
        name = f"{reg.addr}/priv/bbx:1"
        ok(berthd.docker("tag", busybox_image, name))
        r = berthd.docker("push", name, env=env)
        assert r.returncode == 1 and "denied" in r.stderr, r.stderr
        r = berthd.docker("login", reg.addr, "-u", "ann", "--password-stdin", input="wrong\n", env=env)
        assert r.returncode == 1 and "unauthorized" in r.stderr, r.stderr
        r = ok(berthd.docker("login", reg.addr, "-u", "ann", "--password-stdin", input="pw1\n", env=env))
        assert "Login Succeeded" in r.stdout
        assert reg.addr in json.loads((cfg / "config.json").read_text())["auths"]
        ok(berthd.docker("push", name, env=env))
        ok(berthd.docker("rmi", name))
        ok(berthd.docker("pull", name, env=env))
        ok(berthd.docker("logout", reg.addr, env=env))
        ok(berthd.docker("rmi", name))
        r = berthd.docker("pull", name, env=env)
        assert r.returncode == 1
        assert "pull access denied for " + f"{reg.addr}/priv/bbx" in r.stderr, r.stderr


def test_search(berthd: harness.Berthd, busybox_image: str, reg: BerthRegistry) -> None:
    for repo in ("web/front", "web/back", "db/pg"):
        ok(berthd.docker("tag", busybox_image, f"{reg.addr}/{repo}:1"))
        ok(berthd.docker("push", f"{reg.addr}/{repo}:1"))
    out = ok(berthd.docker("search", "--format", "{{.Name}}", f"{reg.addr}/web")).stdout.split()
    assert sorted(out) == ["web/back", "web/front"]
    out = ok(berthd.docker("search", "--limit", "1", "--format", "{{.Name}}", f"{reg.addr}/web")).stdout.split()
    assert len(out) == 1
    with CNCFRegistry(Path(str(reg.root) + "-cncf"), harness.free_tcp_port()) as cncf:
        r = berthd.docker("search", f"{cncf.addr}/web")
        assert r.returncode == 1 and "does not offer the v1 search API" in r.stderr, r.stderr


def test_dockerpy_pull_push(berthd: harness.Berthd, busybox_image: str, reg: BerthRegistry) -> None:
    client = berthd.client()
    img = client.images.get(busybox_image)
    img.tag(f"{reg.addr}/py/bbx", "2")
    out = client.images.push(f"{reg.addr}/py/bbx", tag="2", stream=True, decode=True)
    messages = list(out)
    assert messages[-1]["aux"]["Tag"] == "2"
    client.images.remove(f"{reg.addr}/py/bbx:2")
    client.images.remove(busybox_image)
    pulled = client.images.pull(f"{reg.addr}/py/bbx", tag="2")
    assert pulled.id == img.id
    assert client.containers.run(f"{reg.addr}/py/bbx:2", ["echo", "py"], remove=True) == b"py\n"


def test_jobs_never_show_credentials(berthd: harness.Berthd, reg: BerthRegistry) -> None:
    import base64

    auth = base64.urlsafe_b64encode(json.dumps({"username": "u", "password": "topsecret"}).encode()).decode()
    r = subprocess.run(
        ["curl", "-s", "--unix-socket", berthd.sock, "-X", "POST", "-H", f"X-Registry-Auth: {auth}",
         f"http://x/images/create?fromImage={reg.addr}/none&tag=x"], capture_output=True, text=True, check=True)
    assert "manifest unknown" in r.stdout
    status, jobs = berthd.api("GET", "/berth/v1/jobs?all=1")
    assert status == 200
    pulls = [j for j in jobs if j["Name"] == "image.pull"]
    assert pulls and pulls[-1]["Args"]["auth"] == "Credentials"
    assert "topsecret" not in json.dumps(jobs) and auth not in json.dumps(jobs)


def test_berth_cli_login_push_pull_search_logout(berthd: harness.Berthd, busybox_image: str, tmp_path: Path) -> None:
    import bcrypt

    (tmp_path / "htpasswd").write_text(f"cy:{bcrypt.hashpw(b'pw2', bcrypt.gensalt(rounds=4)).decode()}\n")
    with BerthRegistry(tmp_path / "reg", "--auth", "token", "--htpasswd", str(tmp_path / "htpasswd")) as reg:
        cfg = tmp_path / "cfg"
        env = {**berthd.env, "DOCKER_CONFIG": str(cfg)}
        name = f"{reg.addr}/cli/bbx"
        ok(berthd.docker("tag", busybox_image, f"{name}:3"))
        r = berthd.berth("login", reg.addr, "-u", "cy", "--password-stdin", input="bad\n", env=env)
        assert r.returncode == 1 and "unauthorized" in r.stderr
        r = ok(berthd.berth("login", reg.addr, "-u", "cy", "--password-stdin", input="pw2\n", env=env))
        assert r.stdout == "Login Succeeded\n"
        out = lines(ok(berthd.berth("push", f"{name}:3", env=env)).stdout)
        assert out[0] == f"The push refers to repository [{name}]" and out[-1].startswith("3: digest: sha256:")
        ok(berthd.docker("rmi", f"{name}:3"))
        out = lines(ok(berthd.berth("pull", f"{name}:3", env=env)).stdout)
        assert out[-1] == f"{name}:3" and out[-2] == f"Status: Downloaded newer image for {name}:3"
        out = ok(berthd.berth("search", f"{reg.addr}/cli", env=env)).stdout.splitlines()
        assert out[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"] and out[1].split() == ["cli/bbx", "0"]
        r = ok(berthd.berth("logout", reg.addr, env=env))
        assert r.stdout == f"Removing login credentials for {reg.addr}\n"
        r = berthd.berth("pull", f"{name}:3", env=env)
        assert r.returncode == 1 and "pull access denied" in r.stderr


def test_push_mounts_layers_from_a_repository_that_has_them(berthd: harness.Berthd, busybox_image: str,
                                                            reg: BerthRegistry) -> None:
    ok(berthd.docker("tag", busybox_image, f"{reg.addr}/src/bbx:1"))
    ok(berthd.docker("push", f"{reg.addr}/src/bbx:1"))
    ok(berthd.docker("tag", busybox_image, f"{reg.addr}/dst/bbx:1"))
    out = lines(ok(berthd.docker("push", f"{reg.addr}/dst/bbx:1")).stdout)
    assert out[2].endswith(": Mounted from src/bbx"), out
    # pulled layers are known too: a pull from one repository, a push to another mounts
    ok(berthd.docker("rmi", f"{reg.addr}/src/bbx:1", f"{reg.addr}/dst/bbx:1", busybox_image))
    ok(berthd.docker("pull", f"{reg.addr}/src/bbx:1"))
    ok(berthd.docker("tag", f"{reg.addr}/src/bbx:1", f"{reg.addr}/third/bbx:1"))
    out = lines(ok(berthd.docker("push", f"{reg.addr}/third/bbx:1")).stdout)
    assert out[2].endswith(": Mounted from dst/bbx") or out[2].endswith(": Mounted from src/bbx"), out
