"""The pull's pieces against an in-process registry: resume with Range, verification, platforms."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from berth.errors import InvalidParameter, NotFound
from berth.registry.auth import Authenticator, Challenge, Credentials
from berth.registry.client import RegistryClient
from berth.registry.digest import Digest
from berth.registry.endpoint import Endpoint, Endpoints
from berth.registry.progress import human_size, progress_bar
from berth.registry.pull import Platform, _choose, fetch_blob, resolve_manifest

BLOB = bytes(range(256)) * 4096  # 1 MiB
DIGEST = Digest.parse("sha256:" + hashlib.sha256(BLOB).hexdigest())


async def _serve(seen: list[str | None], honour_range: bool = True, corrupt: bool = False) -> tuple[web.AppRunner, int]:
    async def blob(request: web.Request) -> web.StreamResponse:
        rng = request.headers.get("Range")
        seen.append(rng)
        data = bytearray(BLOB)
        if corrupt:
            data[-1] ^= 1
        if rng and honour_range:
            start = int(rng.removeprefix("bytes=").rstrip("-"))
            return web.Response(status=206, body=bytes(data[start:]))
        return web.Response(body=bytes(data))

    app = web.Application()
    app.router.add_get("/v2/r/blobs/{d}", blob)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


async def _start(app: web.Application) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on 127.0.0.1 on a free port."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1]


def _fetch(tmp_path: Path, partial: bytes | None, **kw: Any) -> tuple[list[str | None], Path]:
    seen: list[str | None] = []
    path = tmp_path / "blob.partial"
    if partial is not None:
        path.write_bytes(partial)

    async def main() -> None:
        import aiohttp

        runner, port = await _serve(seen, **kw)
        try:
            async with aiohttp.ClientSession() as session:
                ep = Endpoint(f"127.0.0.1:{port}", f"127.0.0.1:{port}", "http", False)
                client = RegistryClient(session, ep, Authenticator(Credentials()))
                await fetch_blob(client, "r", DIGEST, path, len(BLOB))
        finally:
            await runner.cleanup()

    asyncio.run(main())
    return seen, path


def test_resume_sends_range_from_the_bytes_on_disk(tmp_path: Path) -> None:
    seen, path = _fetch(tmp_path, BLOB[:300_000])
    assert seen == ["bytes=300000-"]
    assert path.read_bytes() == BLOB


def test_resume_when_the_registry_ignores_range(tmp_path: Path) -> None:
    seen, path = _fetch(tmp_path, BLOB[:1000], honour_range=False)
    assert seen == ["bytes=1000-"] and path.read_bytes() == BLOB


def test_complete_file_is_not_fetched_again(tmp_path: Path) -> None:
    seen, path = _fetch(tmp_path, BLOB)
    assert seen == [] and path.read_bytes() == BLOB


def test_wrong_content_is_refused_and_deleted(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="verification failed"):
        _fetch(tmp_path, None, corrupt=True)
    assert not (tmp_path / "blob.partial").exists()


def test_choose_platform() -> None:
    entries = [
        {"digest": "sha256:arm", "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        {"digest": "sha256:amd", "platform": {"os": "linux", "architecture": "amd64"}},
        {"digest": "sha256:armv7", "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
        {"digest": "sha256:win", "platform": {"os": "windows", "architecture": "amd64"}},
        "junk",
    ]
    assert _choose(entries, Platform()) == "sha256:amd"
    assert _choose(entries, Platform.parse("linux/aarch64")) == "sha256:arm"
    assert _choose(entries, Platform.parse("linux/arm/v7")) == "sha256:armv7"
    assert _choose(entries, Platform.parse("linux/s390x")) is None
    with pytest.raises(InvalidParameter):
        Platform.parse("linux//x")


def test_index_without_the_platform(tmp_path: Path) -> None:
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                       "digest": "sha256:" + "a" * 64, "size": 1,
                                       "platform": {"os": "linux", "architecture": "arm64"}}]}).encode()

    async def main() -> None:
        async def manifest(request: web.Request) -> web.Response:
            return web.Response(body=index, content_type="application/vnd.oci.image.index.v1+json")

        app = web.Application()
        async def ping(request: web.Request) -> web.Response:
            return web.json_response({})

        app.router.add_get("/v2/", ping)
        app.router.add_get("/v2/r/manifests/{ref}", manifest)
        runner, port = await _start(app)
        try:
            async with RegistryClient.open(Endpoints(), f"127.0.0.1:{port}", Credentials()) as client:
                with pytest.raises(NotFound, match="no matching manifest for linux/amd64"):
                    await resolve_manifest(client, "r", "latest", Platform())
        finally:
            await runner.cleanup()

    asyncio.run(main())


def test_credentials_header_and_challenge() -> None:
    import base64

    header = base64.urlsafe_b64encode(json.dumps({"username": "u", "password": "p:w"}).encode()).decode()
    creds = Credentials.from_header(header)
    assert (creds.username, creds.password) == ("u", "p:w")
    assert "p:w" not in repr(creds)
    assert Credentials.from_header("e30=").empty
    auth = base64.b64encode(b"v:x").decode()
    legacy = base64.urlsafe_b64encode(json.dumps({"auth": auth}).encode()).decode()
    assert Credentials.from_header(legacy).username == "v"
    for bad in ("!!!", base64.b64encode(b"[1]").decode()):
        with pytest.raises(InvalidParameter):
            Credentials.from_header(bad)
    c = Challenge.parse('Bearer realm="https://auth.example/token",service="reg",scope="repository:a:pull,push"')
    assert c is not None and c.scheme == "bearer"
    assert c.params == {"realm": "https://auth.example/token", "service": "reg", "scope": "repository:a:pull,push"}


def test_endpoints_insecure_and_mirrors(tmp_path: Path) -> None:
    eps = Endpoints(insecure=["10.0.0.0/8", "reg.local:5000"], mirrors={"127.0.0.1:5000": ["http://127.0.0.1:6000"]},
                    certs_dirs=(tmp_path,))
    assert [(e.scheme, e.host, e.mirror) for e in eps.for_domain("127.0.0.1:5000")] == [
        ("http", "127.0.0.1:6000", True), ("https", "127.0.0.1:5000", False), ("http", "127.0.0.1:5000", False)]
    assert [(e.scheme, e.verify) for e in eps.for_domain("example.com")] == [("https", True)]
    assert [e.scheme for e in eps.for_domain("reg.local:5000")] == ["https", "http"]
    assert [e.scheme for e in eps.for_domain("10.1.2.3:443")] == ["https", "http"]
    assert eps.for_domain("docker.io")[0].host == "registry-1.docker.io"


def test_progress_bar_as_docker_draws_it() -> None:
    assert human_size(36445) == "36.45kB" and human_size(1064969) == "1.065MB" and human_size(12) == "12B"
    assert progress_bar(36445, 1064969) == "[=>" + " " * 49 + "]  36.45kB/1.065MB"
    assert progress_bar(1064969, 1064969) == "[" + "=" * 50 + ">]  1.065MB/1.065MB"


def test_chunked_upload_against_berths_registry_server(tmp_path: Path) -> None:
    """client.upload in chunks (PATCH + Content-Range, then PUT) lands the exact blob; the server
    sees every chunk in order."""
    import os

    from berth.registry.server.app import Registry, make_app
    from berth.registry.server.auth import NoAuth
    from berth.registry.server.store import RegistryStore

    data = os.urandom(300_000)
    path = tmp_path / "blob"
    path.write_bytes(data)
    digest = Digest.parse("sha256:" + hashlib.sha256(data).hexdigest())
    seen: list[str] = []

    async def main() -> None:
        store = RegistryStore(tmp_path / "root")
        app = make_app(Registry(store, NoAuth()))

        @web.middleware
        async def spy(request: web.Request, handler: Any) -> web.StreamResponse:
            if request.method == "PATCH":
                seen.append(request.headers.get("Content-Range", ""))
            return await handler(request)

        app.middlewares.insert(0, spy)
        runner, port = await _start(app)
        try:
            async with RegistryClient.open(Endpoints(), f"127.0.0.1:{port}", Credentials()) as client:
                sent: list[int] = []
                await client.upload("c/blob", digest, path, len(data), sent.append, chunk_size=100_000)
                assert sent == [100_000, 200_000, 300_000]
                async with client.blob("c/blob", digest) as resp:
                    assert await resp.read() == data
        finally:
            await runner.cleanup()
            store.close()

    asyncio.run(main())
    assert seen == ["0-99999", "100000-199999", "200000-299999"]


def _follow(tmp_path: Path, corrupt: bool) -> tuple[bytes, BaseException | None]:
    """fetch_blob with an Arrival, and a reader thread following the file as it grows."""
    import threading

    from berth.registry.download import Arrival

    path = tmp_path / "blob.partial"
    arrival = Arrival(path, "layer x")
    got: list[bytes] = []
    error: list[BaseException] = []

    def follow() -> None:
        try:
            with arrival.reader(threading.Event()) as f:
                while chunk := f.read(100_000):
                    got.append(chunk)
        except BaseException as exc:  # the test looks at it
            error.append(exc)

    reader = threading.Thread(target=follow)
    reader.start()

    async def main() -> None:
        import aiohttp

        runner, port = await _serve([], corrupt=corrupt)
        try:
            async with aiohttp.ClientSession() as session:
                ep = Endpoint(f"127.0.0.1:{port}", f"127.0.0.1:{port}", "http", False)
                client = RegistryClient(session, ep, Authenticator(Credentials()))
                await fetch_blob(client, "r", DIGEST, path, len(BLOB), arrival=arrival)
            arrival.verified()
        except BaseException as exc:
            arrival.failed(exc)
        finally:
            await runner.cleanup()

    asyncio.run(main())
    reader.join(10)
    return b"".join(got), error[0] if error else None


def test_a_follower_reads_the_blob_and_its_end_only_once_verified(tmp_path: Path) -> None:
    data, error = _follow(tmp_path, corrupt=False)
    assert error is None and data == BLOB


def test_a_follower_of_a_blob_that_fails_its_digest_gets_an_error_not_an_end(tmp_path: Path) -> None:
    from berth.errors import SystemFailure

    data, error = _follow(tmp_path, corrupt=True)
    assert isinstance(error, SystemFailure) and "verification failed" in str(error)
    assert len(data) <= len(BLOB)  # it may have read every byte, but never saw the end


def test_a_follower_whose_file_was_deleted_for_a_bad_digest_gets_the_failure(tmp_path: Path) -> None:
    """The download deletes a blob that fails its digest before its caller reports the failure:
    a reader opening the file in that gap gets the verification error, not FileNotFoundError."""
    import threading

    from berth.errors import InvalidParameter, SystemFailure
    from berth.registry.download import Arrival

    arrival = Arrival(tmp_path / "gone.partial", "layer x")
    arrival.opened(0)
    arrival.wrote(100)  # the bytes were written, then the file deleted (it never existed here)
    later = threading.Timer(0.1, arrival.failed, (InvalidParameter("filesystem layer verification failed"),))
    later.start()
    try:
        with arrival.reader(threading.Event()) as f, pytest.raises(SystemFailure, match="verification failed"):
            f.read(10)
    finally:
        later.join()
