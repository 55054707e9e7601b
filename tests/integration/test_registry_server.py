"""berth's registry server (`berth-registry serve`) through real HTTP, skopeo and the CLI.

The OCI distribution conformance suite itself is run outside the repository (docs/registry.md);
these tests pin the behaviours it checks and the ones it does not (auth, TLS, gc, limits).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from berth.registry.server.blobsend import CHUNK as PIECE
from registry_harness import BerthRegistry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def image(reg: BerthRegistry, repo: str, tag: str, marker: bytes = b"hello") -> tuple[str, list[str]]:
    """Push a one-layer OCI image; returns (manifest digest, [config digest, layer digest])."""
    blob = layer({"hello.txt": marker})
    diff_id = sha256(gzip.decompress(blob))
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    c = reg.push_blob(repo, config)
    ld = reg.push_blob(repo, blob)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": c, "size": len(config)},
                "layers": [{"mediaType": OCI_LAYER, "digest": ld, "size": len(blob)}]}
    return reg.push_manifest(repo, tag, manifest), [c, ld]


@pytest.fixture
def reg(tmp_path: Path) -> Any:
    with BerthRegistry(tmp_path / "reg") as r:
        yield r


def test_ping_and_error_shape(reg: BerthRegistry) -> None:
    status, headers, body = reg.request("GET", "/v2/")
    assert (status, json.loads(body)) == (200, {})
    assert headers["Docker-Distribution-API-Version"] == "registry/2.0"
    status, headers, body = reg.request("GET", "/v2/a/b/blobs/" + sha256(b"nothing"))
    assert status == 404
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["errors"][0]["code"] == "BLOB_UNKNOWN"
    status, _, body = reg.request("GET", "/v2/UPPER/tags/list")
    assert status == 400 and json.loads(body)["errors"][0]["code"] == "NAME_INVALID"


def test_monolithic_and_chunked_push_then_ranged_pull(reg: BerthRegistry) -> None:
    data = os.urandom(300_000)
    digest = sha256(data)
    # chunked: POST, PATCH x3 with Content-Range, PUT with digest
    status, headers, _ = reg.request("POST", "/v2/t/chunks/blobs/uploads/")
    assert status == 202 and headers["Range"] == "0-0"
    loc = headers["Location"]
    for start in range(0, len(data), 100_000):
        chunk = data[start:start + 100_000]
        status, headers, body = reg.request(
            "PATCH", loc, body=chunk,
            headers={"Content-Range": f"{start}-{start + len(chunk) - 1}", "Content-Type": "application/octet-stream"},
        )
        assert status == 202, body
        assert headers["Range"] == f"0-{start + len(chunk) - 1}"
        loc = headers["Location"]
    # the blob is not visible before the upload completes
    assert reg.request("HEAD", f"/v2/t/chunks/blobs/{digest}")[0] == 404
    status, headers, _ = reg.request("GET", loc)
    assert (status, headers["Range"]) == (204, f"0-{len(data) - 1}")
    status, headers, _ = reg.request("PUT", f"{loc}?digest={digest}")
    assert status == 201 and headers["Docker-Content-Digest"] == digest
    assert headers["Location"] == f"/v2/t/chunks/blobs/{digest}"

    status, headers, body = reg.request("GET", f"/v2/t/chunks/blobs/{digest}")
    assert status == 200 and body == data and headers["Docker-Content-Digest"] == digest
    status, headers, _ = reg.request("HEAD", f"/v2/t/chunks/blobs/{digest}")
    assert status == 200 and headers["Content-Length"] == str(len(data))
    status, _, body = reg.request("GET", f"/v2/t/chunks/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert status == 206 and body == data[10:20]

    # monolithic POST ?digest=
    assert reg.push_blob("t/mono", b"tiny") == sha256(b"tiny")
    assert reg.request("GET", f"/v2/t/mono/blobs/{sha256(b'tiny')}")[2] == b"tiny"


def test_out_of_order_chunk_is_416_and_upload_recovers(reg: BerthRegistry) -> None:
    data = b"0123456789" * 100
    status, headers, _ = reg.request("POST", "/v2/t/ooo/blobs/uploads/")
    loc = headers["Location"]
    status, headers, _ = reg.request("PATCH", loc, body=data[:500], headers={"Content-Range": "0-499"})
    assert status == 202
    status, headers, body = reg.request("PATCH", loc, body=data[600:], headers={"Content-Range": "600-999"})
    assert status == 416, body
    assert headers["Range"] == "0-499" and headers["Location"] == loc
    status, headers, _ = reg.request("PUT", f"{loc}?digest={sha256(data)}", body=data[500:],
                                     headers={"Content-Range": "500-999"})
    assert status == 201
    assert reg.request("GET", f"/v2/t/ooo/blobs/{sha256(data)}")[2] == data


def test_digest_mismatch_refused_and_nothing_stored(reg: BerthRegistry) -> None:
    wrong = sha256(b"something else")
    status, _, body = reg.request("POST", f"/v2/t/bad/blobs/uploads/?digest={wrong}", body=b"payload")
    assert status == 400 and json.loads(body)["errors"][0]["code"] == "DIGEST_INVALID"
    assert reg.request("HEAD", f"/v2/t/bad/blobs/{wrong}")[0] == 404
    assert reg.request("HEAD", f"/v2/t/bad/blobs/{sha256(b'payload')}")[0] == 404
    assert not list((reg.root / "blobs" / "sha256").iterdir())
    assert not list((reg.root / "uploads").iterdir())
    status, _, body = reg.request("POST", "/v2/t/bad/blobs/uploads/?digest=sha256:baddigest", body=b"x")
    assert status == 400


def test_manifests_tags_catalog_pagination_and_delete(reg: BerthRegistry) -> None:
    digest, (config, _) = image(reg, "lib/app", "v1")
    for tag in ("v2", "v3", "latest"):
        status, headers, body = reg.request("GET", f"/v2/lib/app/manifests/{digest}")
        assert status == 200 and headers["Content-Type"] == OCI_MANIFEST
        assert reg.push_manifest("lib/app", tag, json.loads(body)) == digest
    status, headers, body = reg.request("HEAD", "/v2/lib/app/manifests/v2")
    assert status == 200 and headers["Docker-Content-Digest"] == digest and body == b""
    assert reg.json("GET", "/v2/lib/app/tags/list") == (200, {"name": "lib/app", "tags": ["latest", "v1", "v2", "v3"]})
    status, headers, body = reg.request("GET", "/v2/lib/app/tags/list?n=2")
    assert json.loads(body)["tags"] == ["latest", "v1"]
    assert headers["Link"] == '</v2/lib/app/tags/list?n=2&last=v1>; rel="next"'
    assert reg.json("GET", "/v2/lib/app/tags/list?n=2&last=v1")[1]["tags"] == ["v2", "v3"]
    image(reg, "lib/other", "x")
    assert reg.json("GET", "/v2/_catalog")[1] == {"repositories": ["lib/app", "lib/other"]}
    status, headers, body = reg.request("GET", "/v2/_catalog?n=1")
    assert json.loads(body) == {"repositories": ["lib/app"]} and "last=lib/app" in headers["Link"]
    assert reg.json("GET", "/v2/nope/tags/list")[0] == 404

    # a tag delete removes only the tag; a digest delete removes the manifest and its tags
    assert reg.request("DELETE", "/v2/lib/app/manifests/v3")[0] == 202
    assert reg.request("GET", "/v2/lib/app/manifests/v3")[0] == 404
    assert reg.request("GET", "/v2/lib/app/manifests/v1")[0] == 200
    assert reg.request("DELETE", f"/v2/lib/app/manifests/{digest}")[0] == 202
    assert reg.request("GET", "/v2/lib/app/manifests/v1")[0] == 404
    assert reg.request("DELETE", f"/v2/lib/app/blobs/{config}")[0] == 202
    assert reg.request("GET", f"/v2/lib/app/blobs/{config}")[0] == 404


def test_manifest_bad_input(reg: BerthRegistry) -> None:
    def put(body: bytes, ref: str = "t", ctype: str = OCI_MANIFEST) -> tuple[int, str]:
        status, _, data = reg.request("PUT", f"/v2/bad/m/manifests/{ref}", body=body, headers={"Content-Type": ctype})
        return status, json.loads(data)["errors"][0]["code"] if data else ""

    assert put(b"{not json") == (400, "MANIFEST_INVALID")
    assert put(b"[" * 100_000 + b"]" * 100_000) == (400, "MANIFEST_INVALID")
    assert put(json.dumps({"schemaVersion": 2, "mediaType": "application/x-unknown"}).encode()) == (400, "MANIFEST_INVALID")
    missing = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "config": {"mediaType": OCI_CONFIG, "digest": sha256(b"c"), "size": 1}, "layers": []}
    assert put(json.dumps(missing).encode()) == (400, "MANIFEST_BLOB_UNKNOWN")
    assert put(b" " * (5 << 20)) == (413, "MANIFEST_INVALID")
    body = json.dumps(missing).encode()
    assert put(body, ref=sha256(b"other"))[0] == 400
    assert put(body, ref="sha256:baddigeststring") == (400, "DIGEST_INVALID")
    assert reg.json("GET", "/v2/bad/m/tags/list")[0] == 404  # nothing was stored


def test_referrers_and_oci_subject(reg: BerthRegistry) -> None:
    subject, _ = image(reg, "lib/signed", "v1")
    empty = b"{}"
    e = reg.push_blob("lib/signed", empty)
    sig = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sig",
           "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": e, "size": 2},
           "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": e, "size": 2}],
           "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 10},
           "annotations": {"org.example": "yes"}}
    body = json.dumps(sig).encode()
    status, headers, _ = reg.request("PUT", f"/v2/lib/signed/manifests/{sha256(body)}", body=body,
                                     headers={"Content-Type": OCI_MANIFEST})
    assert status == 201 and headers["OCI-Subject"] == subject
    status, headers, data = reg.request("GET", f"/v2/lib/signed/referrers/{subject}")
    assert status == 200 and headers["Content-Type"] == OCI_INDEX
    index = json.loads(data)
    assert index["manifests"] == [{"mediaType": OCI_MANIFEST, "digest": sha256(body), "size": len(body),
                                   "artifactType": "application/vnd.example.sig",
                                   "annotations": {"org.example": "yes"}}]
    status, headers, data = reg.request("GET", f"/v2/lib/signed/referrers/{subject}?artifactType=other")
    assert json.loads(data)["manifests"] == [] and headers["OCI-Filters-Applied"] == "artifactType"


def test_sha512_blob_and_cross_repository_mount(reg: BerthRegistry) -> None:
    data = b"sha512 content"
    d512 = "sha512:" + hashlib.sha512(data).hexdigest()
    status, headers, _ = reg.request("POST", f"/v2/t/a/blobs/uploads/?digest={d512}", body=data)
    assert status == 201 and headers["Docker-Content-Digest"] == d512
    assert reg.request("GET", f"/v2/t/a/blobs/{d512}")[2] == data
    # mount into another repository without sending the bytes again
    status, headers, _ = reg.request("POST", f"/v2/t/b/blobs/uploads/?mount={d512}&from=t/a")
    assert status == 201 and headers["Location"] == f"/v2/t/b/blobs/{d512}"
    assert reg.request("GET", f"/v2/t/b/blobs/{d512}")[2] == data
    # a mount of something the source lacks starts an ordinary upload session
    status, headers, _ = reg.request("POST", f"/v2/t/b/blobs/uploads/?mount={sha256(b'x')}&from=t/a")
    assert status == 202 and "/blobs/uploads/" in headers["Location"]


def test_v1_search(reg: BerthRegistry) -> None:
    for repo in ("team/web", "team/webapp", "other/db"):
        image(reg, repo, "latest")
    status, body = reg.json("GET", "/v1/search?q=web&n=1")
    assert status == 200
    assert body["num_results"] == 2 and body["num_pages"] == 2 and body["query"] == "web"
    assert body["results"] == [{"name": "team/web", "description": "", "star_count": 0,
                                "is_official": False, "is_automated": False}]
    assert reg.json("GET", "/v1/search?q=web&n=1&page=2")[1]["results"][0]["name"] == "team/webapp"
    assert reg.json("GET", "/v1/search?q=web&n=0")[0] == 400


def _htpasswd(path: Path, user: str, password: str) -> None:
    import bcrypt

    path.write_text(f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}\n")


def test_basic_auth(tmp_path: Path) -> None:
    _htpasswd(tmp_path / "htpasswd", "alice", "s3cret")
    with BerthRegistry(tmp_path / "reg", "--htpasswd", str(tmp_path / "htpasswd")) as reg:
        status, headers, body = reg.request("GET", "/v2/")
        assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="berth-registry"'
        assert json.loads(body)["errors"][0]["code"] == "UNAUTHORIZED"
        assert reg.request("GET", "/v2/", auth=("alice", "wrong"))[0] == 401
        assert reg.request("GET", "/v2/", auth=("alice", "s3cret"))[0] == 200
        assert reg.push_blob("a/b", b"data", auth=("alice", "s3cret")) == sha256(b"data")


def test_token_auth_flow(tmp_path: Path) -> None:
    _htpasswd(tmp_path / "htpasswd", "bob", "pw")
    with BerthRegistry(tmp_path / "reg", "--auth", "token", "--htpasswd", str(tmp_path / "htpasswd"),
                       "--anonymous-pull") as reg:
        status, headers, _ = reg.request("GET", "/v2/t/x/tags/list")
        assert status == 401
        challenge = headers["WWW-Authenticate"]
        assert challenge == (f'Bearer realm="http://{reg.addr}/token",service="berth-registry",'
                             'scope="repository:t/x:pull"')

        def token(scope: str, auth: tuple[str, str] | None = None) -> tuple[int, str]:
            status, body = reg.json("GET", f"/token?service=berth-registry&scope={scope}", auth=auth)
            return status, (body or {}).get("token", "")

        # anonymous: pull is granted, push is not
        _, anon = token("repository:t/x:pull,push")
        assert reg.request("POST", "/v2/t/x/blobs/uploads/", token=anon)[0] == 401
        assert token("repository:t/x:pull", auth=("bob", "nope"))[0] == 401
        _, bobs = token("repository:t/x:pull,push", auth=("bob", "pw"))
        assert reg.push_blob("t/x", b"blob", token=bobs) == sha256(b"blob")
        assert reg.request("GET", f"/v2/t/x/blobs/{sha256(b'blob')}", token=anon)[2] == b"blob"
        # a token for one repository does not open another; a forged token opens nothing
        assert reg.request("GET", f"/v2/t/y/blobs/{sha256(b'blob')}", token=bobs)[0] == 401
        head, claims, mac = bobs.split(".")
        assert reg.request("GET", f"/v2/t/x/blobs/{sha256(b'blob')}", token=f"{head}.{claims}.{mac[::-1]}")[0] == 401


def test_tls(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    ctx = ssl.create_default_context(cafile=str(cert))
    with BerthRegistry(tmp_path / "reg", "--tls-cert", str(cert), "--tls-key", str(key), tls=ctx) as reg:
        assert reg.request("GET", "/v2/")[0] == 200
        data = os.urandom(3 * PIECE + 4321)  # a blob body of several pieces, over TLS
        digest = reg.push_blob("t/tls", data)
        assert reg.request("GET", f"/v2/t/tls/blobs/{digest}")[2] == data
        status, _, body = reg.request("GET", f"/v2/t/tls/blobs/{digest}",
                                      headers={"Range": f"bytes={PIECE - 3}-{2 * PIECE + 3}"})
        assert status == 206 and body == data[PIECE - 3:2 * PIECE + 4]


def _cached(path: Path, offset: int) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.preadv(fd, [bytearray(1)], offset, os.RWF_NOWAIT)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_blob_bodies_in_pieces_from_cache_and_from_disk(reg: BerthRegistry) -> None:
    """The body goes out in pieces read from the page cache, or in a thread where the cache has none."""
    data = os.urandom(4 * PIECE + 12345)
    digest = reg.push_blob("t/pieces", data)
    status, headers, body = reg.request("GET", f"/v2/t/pieces/blobs/{digest}")
    assert status == 200 and body == data and headers["Content-Length"] == str(len(data))
    for first, last in ((0, 0), (PIECE - 1, PIECE), (PIECE + 7, 3 * PIECE + 9), (4 * PIECE, len(data) - 1)):
        status, headers, body = reg.request("GET", f"/v2/t/pieces/blobs/{digest}",
                                            headers={"Range": f"bytes={first}-{last}"})
        assert (status, body) == (206, data[first:last + 1])
        assert headers["Content-Range"] == f"bytes {first}-{last}/{len(data)}"
    # out of the page cache: the pieces are read in a thread (the loop's RWF_NOWAIT read finds nothing)
    path = reg.root / "blobs" / "sha256" / digest.split(":")[1]
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    assert not _cached(path, 2 * PIECE)
    assert reg.request("GET", f"/v2/t/pieces/blobs/{digest}")[2] == data
    assert reg.request("HEAD", f"/v2/t/pieces/blobs/{digest}")[1]["Content-Length"] == str(len(data))


def test_a_reader_that_leaves_mid_blob_costs_the_server_nothing(reg: BerthRegistry) -> None:
    data = os.urandom(24 << 20)  # more than the socket buffers hold, so the server is still sending
    digest = reg.push_blob("t/leave", data)
    for _ in range(3):
        with socket.create_connection((reg.host, reg.port), timeout=10) as s:
            s.sendall(f"GET /v2/t/leave/blobs/{digest} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
        # a client that stops reading, then leaves: the connection is dropped, the server goes on
    with socket.create_connection((reg.host, reg.port), timeout=10) as s:
        s.sendall(f"GET /v2/t/leave/blobs/{digest} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        s.recv(65536)
        s.shutdown(socket.SHUT_WR)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close
    status, _, body = reg.request("GET", f"/v2/t/leave/blobs/{digest}")
    assert status == 200 and body == data
    assert reg.proc is not None and reg.proc.poll() is None
    assert "Traceback" not in reg.log.read_text()


def test_gc_removes_only_unreferenced_blobs(reg: BerthRegistry) -> None:
    keep, blobs = image(reg, "lib/keep", "v1")
    gone, gone_blobs = image(reg, "lib/gone", "v1", marker=b"bye")
    orphan = reg.push_blob("lib/keep", b"never referenced")
    assert reg.request("DELETE", f"/v2/lib/gone/manifests/{gone}")[0] == 202
    reg.stop()
    out = subprocess.run([str(Path(__file__).resolve().parents[2] / ".venv/bin/berth"), "registry", "gc",
                          "--root", str(reg.root)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "deleted 4 blobs" in out.stdout, out.stdout  # gone's manifest, config, layer; the orphan
    reg.restart()
    assert reg.request("GET", f"/v2/lib/keep/manifests/{keep}")[0] == 200
    for d in blobs:
        assert reg.request("HEAD", f"/v2/lib/keep/blobs/{d}")[0] == 200
    for d in (*gone_blobs, orphan):
        assert not (reg.root / "blobs" / "sha256" / d.split(":")[1]).exists()


def test_gc_refuses_while_serving(reg: BerthRegistry) -> None:
    out = subprocess.run([str(Path(__file__).resolve().parents[2] / ".venv/bin/berth-registry"), "gc",
                          "--root", str(reg.root)], capture_output=True, text=True)
    assert out.returncode == 1
    assert f"registry root {reg.root} is in use by another process (pid {reg.proc.pid})" in out.stderr  # type: ignore[union-attr]


def test_max_blob_size(tmp_path: Path) -> None:
    with BerthRegistry(tmp_path / "reg", "--max-blob-size", "1000") as reg:
        status, _, body = reg.request("POST", f"/v2/t/big/blobs/uploads/?digest={sha256(b'x' * 5000)}",
                                      body=b"x" * 5000)
        assert status == 413 and json.loads(body)["errors"][0]["code"] == "SIZE_INVALID"
        assert not list((reg.root / "uploads").iterdir())


def test_modes_of_the_root(reg: BerthRegistry) -> None:
    image(reg, "lib/m", "v1")
    assert (reg.root.stat().st_mode & 0o777) == 0o700
    assert (reg.root / "registry.db").stat().st_mode & 0o777 == 0o600
    for blob in (reg.root / "blobs" / "sha256").iterdir():
        assert blob.stat().st_mode & 0o777 == 0o600


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed (apt-get install skopeo)")
def test_skopeo_round_trip(reg: BerthRegistry, tmp_path: Path) -> None:
    """An independent client pushes an OCI layout to berth's registry and copies it back."""
    src = tmp_path / "layout"
    (src / "blobs" / "sha256").mkdir(parents=True)
    blob = layer({"etc/marker": b"skopeo was here"})
    diff_id = sha256(gzip.decompress(blob))
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
                           "layers": [{"mediaType": OCI_LAYER, "digest": sha256(blob), "size": len(blob)}]}).encode()
    for data in (blob, config, manifest):
        (src / "blobs" / "sha256" / sha256(data)[7:]).write_bytes(data)
    (src / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (src / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha256(manifest), "size": len(manifest),
         "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}))
    env = {**os.environ, "HOME": str(tmp_path)}
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", f"oci:{src}:v1", f"docker://{reg.addr}/sk/img:v1"],
                   check=True, capture_output=True, env=env)
    out = tmp_path / "out"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{reg.addr}/sk/img:v1", f"dir:{out}"],
                   check=True, capture_output=True, env=env)
    assert (out / sha256(blob)[7:]).read_bytes() == blob
    listed = subprocess.run(["skopeo", "list-tags", "--tls-verify=false", f"docker://{reg.addr}/sk/img"],
                            check=True, capture_output=True, text=True, env=env)
    assert json.loads(listed.stdout)["Tags"] == ["v1"]
