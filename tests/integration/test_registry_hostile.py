"""Pulls from a hostile or broken registry: each ends with a clear error, no image, no stray file,
and nothing written outside the store; an interrupted pull resumes. The registry here is a small
aiohttp app in the test (127.0.0.1) that serves exactly the bytes each case needs."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import harness

pytestmark = pytest.mark.integration

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_of(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return raw.getvalue()


def reg_file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, b""


class Hostile:
    """An in-test registry: ``images[repo:tag] = (manifest bytes, media type)``, ``blobs[digest] = bytes``,
    plus switches that break it."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[bytes, str]] = {}
        self.fail_blob_status = 0  # answer blobs with this status
        self.drop_after = -1  # close the connection after this many bytes of a blob
        self.ranges: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_get("/v2/", self._ping)
        app.router.add_get("/v2/{repo:.+}/manifests/{ref}", self._manifest)
        app.router.add_get("/v2/{repo:.+}/blobs/{digest}", self._blob)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = self.runner.addresses[0][1]
        self._ready.set()
        self.loop.run_forever()

    async def _ping(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def _manifest(self, request: web.Request) -> web.Response:
        key = f"{request.match_info['repo']}:{request.match_info['ref']}"
        if key not in self.manifests:
            return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]},
                                     status=404)
        body, media_type = self.manifests[key]
        return web.Response(body=body, headers={"Content-Type": media_type})

    async def _blob(self, request: web.Request) -> web.StreamResponse:
        if self.fail_blob_status:
            return web.Response(status=self.fail_blob_status, text="backend exploded")
        data = self.blobs.get(request.match_info["digest"])
        if data is None:
            return web.json_response({"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown"}]}, status=404)
        rng = request.headers.get("Range")
        if rng:
            self.ranges.append(rng)
            start = int(rng.removeprefix("bytes=").rstrip("-"))
            resp = web.StreamResponse(status=206, headers={"Content-Length": str(len(data) - start)})
            await resp.prepare(request)
            await resp.write(data[start:])
            return resp
        resp = web.StreamResponse(headers={"Content-Length": str(len(data))})
        await resp.prepare(request)
        if 0 <= self.drop_after < len(data):
            await resp.write(data[: self.drop_after])
            await asyncio.sleep(0.2)
            assert request.transport is not None
            request.transport.close()  # the connection drops mid-layer
            return resp
        await resp.write(data)
        return resp

    def image(self, repo: str, tag: str, layers: list[bytes], media_type: str = "application/vnd.oci.image.layer.v1.tar+gzip",
              manifest_type: str = OCI_MANIFEST, tamper: dict[str, Any] | None = None) -> str:
        diff_ids = []
        descs = []
        for tar_bytes in layers:
            blob = gzip.compress(tar_bytes, mtime=0) if media_type.endswith("gzip") else tar_bytes
            if media_type.endswith("zstd"):
                import zstandard

                blob = zstandard.ZstdCompressor().compress(tar_bytes)
            self.blobs[sha256(blob)] = blob
            diff_ids.append(sha256(tar_bytes))
            descs.append({"mediaType": media_type, "digest": sha256(blob), "size": len(blob)})
        config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
                             "config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
        self.blobs[sha256(config)] = config
        manifest = {"schemaVersion": 2, "mediaType": manifest_type,
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config),
                               "size": len(config)}, "layers": descs, **(tamper or {})}
        body = json.dumps(manifest).encode()
        self.manifests[f"{repo}:{tag}"] = (body, manifest_type)
        self.manifests[f"{repo}:{sha256(body)}"] = (body, manifest_type)
        return sha256(body)

    def close(self) -> None:
        async def stop() -> None:
            await self.runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    h = Hostile()
    yield h
    h.close()


def pull(berthd: harness.Berthd, ref: str) -> Any:
    return berthd.docker("pull", ref, timeout=120)


def nothing_left(berthd: harness.Berthd) -> None:
    assert berthd.docker("images", "-q").stdout == ""


def busybox_layer() -> bytes:
    return tar_of([reg_file("bin/hello", b"hi\n")])


def test_layer_with_dotdot_absolute_and_escaping_links(berthd: harness.Berthd, hostile: Hostile, tmp_path: Path) -> None:
    marker = tmp_path / "outside"
    cases = {
        "dotdot": [reg_file(f"../../../../../../..{marker}", b"pwned")],
        "absolute": [reg_file(str(marker), b"pwned")],
        "hardlink-out": [link("h", "/etc/shadow", tarfile.LNKTYPE)],
    }
    for name, members in cases.items():
        hostile.image(f"evil/{name}", "1", [tar_of(members)])
        r = pull(berthd, f"127.0.0.1:{hostile.port}/evil/{name}:1")
        assert r.returncode == 1, (name, r.stdout)
        assert "apply layer" in r.stderr or "refusing" in r.stderr or "not in the layer" in r.stderr, (name, r.stderr)
        assert not marker.exists(), name
    assert berthd.docker("images", "-q").stdout == ""
    # a symlink parent is followed inside the layer (Docker gets the same by chrooting): the file
    # lands in the image, never on the host
    hostile.image("evil/symlink", "1", [tar_of([link("escape", str(tmp_path)), reg_file("escape/outside", b"in")])])
    r = pull(berthd, f"127.0.0.1:{hostile.port}/evil/symlink:1")
    assert r.returncode == 0, r.stderr
    assert not marker.exists()
    image = f"127.0.0.1:{hostile.port}/evil/symlink:1"
    layer_files = berthd.docker("image", "inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", image).stdout.strip()
    assert (Path(layer_files) / str(tmp_path).lstrip("/") / "outside").read_bytes() == b"in"


def test_unknown_media_type_and_huge_manifest(berthd: harness.Berthd, hostile: Hostile) -> None:
    hostile.manifests["odd/type:1"] = (b'{"schemaVersion": 2, "mediaType": "application/x-nope"}', "application/x-nope")
    r = pull(berthd, f"127.0.0.1:{hostile.port}/odd/type:1")
    assert r.returncode == 1 and "unsupported media type" in r.stderr, r.stderr
    hostile.manifests["odd/huge:1"] = (b" " * (5 << 20), OCI_MANIFEST)
    r = pull(berthd, f"127.0.0.1:{hostile.port}/odd/huge:1")
    assert r.returncode == 1 and "larger than" in r.stderr, r.stderr
    hostile.image("odd/layer", "1", [busybox_layer()], media_type="application/x-weird-layer")
    r = pull(berthd, f"127.0.0.1:{hostile.port}/odd/layer:1")
    assert r.returncode == 1 and "unsupported layer media type" in r.stderr, r.stderr
    nothing_left(berthd)


def test_registry_500_on_blobs(berthd: harness.Berthd, hostile: Hostile) -> None:
    hostile.image("b/err", "1", [busybox_layer()])
    hostile.fail_blob_status = 500
    r = pull(berthd, f"127.0.0.1:{hostile.port}/b/err:1")
    assert r.returncode == 1 and "backend exploded" in r.stderr, r.stderr
    nothing_left(berthd)


def test_connection_dropped_mid_layer_then_resumed(berthd: harness.Berthd, hostile: Hostile) -> None:
    big = tar_of([reg_file("data.bin", bytes(range(256)) * 8192)])  # 2 MiB, gzip keeps it large enough
    hostile.image("b/drop", "1", [big], media_type="application/vnd.oci.image.layer.v1.tar")
    hostile.drop_after = 1 << 20
    r = pull(berthd, f"127.0.0.1:{hostile.port}/b/drop:1")
    assert r.returncode == 1, r.stdout
    assert berthd.docker("images", "-q").stdout == ""
    partial = list((berthd.data_root / "pull-partial").iterdir())
    assert len(partial) == 1 and partial[0].stat().st_size == 1 << 20  # kept for the next pull
    hostile.drop_after = -1
    r = pull(berthd, f"127.0.0.1:{hostile.port}/b/drop:1")
    assert r.returncode == 0, r.stderr
    assert hostile.ranges == [f"bytes={1 << 20}-"]
    upper = berthd.docker("image", "inspect", "-f", "{{.GraphDriver.Data.UpperDir}}",
                          f"127.0.0.1:{hostile.port}/b/drop:1").stdout.strip()
    assert (Path(upper) / "data.bin").read_bytes() == bytes(range(256)) * 8192


def test_zstd_and_plain_layers(berthd: harness.Berthd, hostile: Hostile, busybox_tar: Path) -> None:
    base = busybox_tar.read_bytes()
    hostile.image("fmt/zstd", "1", [base, tar_of([reg_file("etc/zstd-marker", b"z\n")])],
                  media_type="application/vnd.oci.image.layer.v1.tar+zstd")
    r = pull(berthd, f"127.0.0.1:{hostile.port}/fmt/zstd:1")
    assert r.returncode == 0, r.stderr
    out = berthd.docker("run", "--rm", f"127.0.0.1:{hostile.port}/fmt/zstd:1", "cat", "/etc/zstd-marker")
    assert out.stdout == "z\n", out.stderr


def test_whiteouts_across_pulled_layers(berthd: harness.Berthd, hostile: Hostile, busybox_tar: Path) -> None:
    base = busybox_tar.read_bytes()
    upper = tar_of([reg_file("etc/.wh.group"), reg_file("etc/keep", b"k\n")])
    opaque_lower = tar_of([reg_file("d/a", b"a"), reg_file("d/b", b"b")])
    opaque_upper = tar_of([reg_file("d/.wh..wh..opq"), reg_file("d/c", b"c")])
    hostile.image("wh/img", "1", [base, upper, opaque_lower, opaque_upper])
    r = pull(berthd, f"127.0.0.1:{hostile.port}/wh/img:1")
    assert r.returncode == 0, r.stderr
    out = berthd.docker("run", "--rm", f"127.0.0.1:{hostile.port}/wh/img:1", "sh", "-c",
                        "ls /etc/group 2>&1; cat /etc/keep; ls /d")
    assert "No such file" in out.stdout and "k\n" in out.stdout and out.stdout.endswith("c\n"), out.stdout
