"""Registry paths beyond the basics: the reference dockerd against berth's registry server, a TLS
registry trusted through certs.d, a mirror for a registry other than Docker Hub, and a token that
expires while the client holds it."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import harness
from registry_harness import BERTH_REGISTRY, BerthRegistry

pytestmark = pytest.mark.integration


def ok(r: Any) -> Any:
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
    return r


@pytest.mark.conformance
def test_reference_dockerd_pushes_to_and_pulls_from_berths_registry(dockerd: harness.Dockerd, busybox_tar: Path,
                                                                    tmp_path: Path) -> None:
    """dockerd lives in its own network namespace: the registry is started on that loopback."""
    log = tmp_path / "reg.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{dockerd.netns}", "--", str(BERTH_REGISTRY), "serve",
                                 "--addr", "127.0.0.1:0", "--root", str(tmp_path / "reg")], stdout=out, stderr=out)
    try:
        port = ""
        for _ in range(200):
            text = log.read_text()
            if "serving" in text:
                port = text.rsplit(":", 1)[1].strip()
                break
            time.sleep(0.05)
        assert port, log.read_text()
        dockerd.import_image(busybox_tar, "busybox:latest", cmd=("sh",))
        name = f"127.0.0.1:{port}/ref/bbx:1"
        ok(dockerd.docker("tag", "busybox:latest", name))
        out = ok(dockerd.docker("push", name)).stdout
        assert "1: digest: sha256:" in out
        ok(dockerd.docker("rmi", name, "busybox:latest"))
        ok(dockerd.docker("pull", name))
        assert ok(dockerd.docker("run", "--rm", "--network", "none", name, "echo", "via berth")).stdout == "via berth\n"
    finally:
        proc.terminate()
        proc.wait(10)


def test_tls_registry_with_client_certificates_from_certs_d(berthd: harness.Berthd, busybox_image: str,
                                                            tmp_path: Path) -> None:
    """The registry demands a client certificate: only certs.d/HOST can give berth one, so a push
    that works proves berth read certs.d (127/8 is insecure by default, so the CA alone proves less)."""
    def run(*a: str) -> None:
        subprocess.run(a, check=True, capture_output=True)

    def signed(name: str, cn: str, ext: str = "") -> tuple[Path, Path]:
        key, csr, crt = tmp_path / f"{name}.key", tmp_path / f"{name}.csr", tmp_path / f"{name}.crt"
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-keyout", str(key), "-out", str(csr))
        extra = []
        if ext:
            (tmp_path / f"{name}.ext").write_text(ext)
            extra = ["-extfile", str(tmp_path / f"{name}.ext")]
        run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
            "-days", "1", *extra, "-out", str(crt))
        return crt, key

    ca_key, ca = tmp_path / "ca.key", tmp_path / "ca.crt"
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=berth test CA",
        "-keyout", str(ca_key), "-out", str(ca))
    srv_crt, srv_key = signed("srv", "127.0.0.1", "subjectAltName=IP:127.0.0.1\n")
    cli_crt, cli_key = signed("client", "berth client")
    with BerthRegistry(tmp_path / "reg", "--tls-cert", str(srv_crt), "--tls-key", str(srv_key),
                       "--tls-client-ca", str(ca)) as reg:
        name = f"{reg.addr}/tls/bbx:1"
        ok(berthd.docker("tag", busybox_image, name))
        r = berthd.docker("push", name)
        assert r.returncode == 1, r.stdout  # no client certificate
        certs_d = Path("/etc/docker/certs.d") / reg.addr
        certs_d.mkdir(parents=True)
        try:
            shutil.copy(ca, certs_d / "ca.crt")
            shutil.copy(cli_crt, certs_d / "client.cert")
            shutil.copy(cli_key, certs_d / "client.key")
            ok(berthd.docker("push", name))
            ok(berthd.docker("rmi", name))
            ok(berthd.docker("pull", name))
        finally:
            shutil.rmtree(certs_d, ignore_errors=True)


def test_mirror_of_a_registry_other_than_docker_hub(berthd_factory: Any, busybox_tar: Path, tmp_path: Path) -> None:
    with BerthRegistry(tmp_path / "origin") as origin, BerthRegistry(tmp_path / "mirror") as mirror:
        d = berthd_factory(extra_args=("--registry-mirror", f"{origin.addr}=http://{mirror.addr}"))
        d.import_image(busybox_tar, "busybox:latest", cmd=("sh",))
        # the image is only on the mirror, under the origin's repository name
        ok(d.docker("tag", "busybox:latest", f"{mirror.addr}/team/app:1"))
        ok(d.docker("push", f"{mirror.addr}/team/app:1"))
        ok(d.docker("rmi", f"{mirror.addr}/team/app:1", "busybox:latest"))
        assert origin.request("GET", "/v2/team/app/tags/list")[0] == 404
        out = ok(d.docker("pull", f"{origin.addr}/team/app:1")).stdout
        assert f"Status: Downloaded newer image for {origin.addr}/team/app:1" in out
        # the origin going away does not matter while the mirror answers
        origin.stop()
        ok(d.docker("rmi", f"{origin.addr}/team/app:1"))
        ok(d.docker("pull", f"{origin.addr}/team/app:1"))


def test_expired_token_is_renewed(berthd: harness.Berthd, busybox_image: str, tmp_path: Path) -> None:
    import bcrypt

    (tmp_path / "htpasswd").write_text(f"u:{bcrypt.hashpw(b'p', bcrypt.gensalt(rounds=4)).decode()}\n")
    with BerthRegistry(tmp_path / "reg", "--auth", "token", "--htpasswd", str(tmp_path / "htpasswd"),
                       "--token-lifetime", "1") as reg:
        cfg = tmp_path / "cfg"
        env = {**berthd.env, "DOCKER_CONFIG": str(cfg)}
        ok(berthd.docker("login", reg.addr, "-u", "u", "--password-stdin", input="p\n", env=env))
        name = f"{reg.addr}/exp/bbx:1"
        ok(berthd.docker("tag", busybox_image, name))
        ok(berthd.docker("push", name, env=env))
        # a 1 s token: by the time the config and the manifest go, the first token has expired
        status, _, body = reg.request("GET", "/token?service=berth-registry&scope=repository:exp/bbx:pull",
                                      auth=("u", "p"))
        token = json.loads(body)["token"]
        time.sleep(2.5)
        assert reg.request("GET", "/v2/exp/bbx/tags/list", token=token)[0] == 401  # it really expires
        ok(berthd.docker("rmi", name))
        ok(berthd.docker("pull", name, env=env))
