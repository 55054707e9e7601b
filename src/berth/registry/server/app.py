"""berth's registry server: the OCI distribution spec v1.1 and Docker's v1 search, over aiohttp.

Routes (NAME is a repository path, REF a tag or digest)::

    GET  /v2/                                   ping
    GET|HEAD|DELETE /v2/NAME/blobs/DIGEST       blobs (ranges served; DELETE unlinks)
    POST /v2/NAME/blobs/uploads/[?digest=|?mount=&from=]
    GET|PATCH|PUT|DELETE /v2/NAME/blobs/uploads/ID
    GET|HEAD|PUT|DELETE /v2/NAME/manifests/REF
    GET  /v2/NAME/tags/list?n=&last=            GET /v2/_catalog?n=&last=
    GET  /v2/NAME/referrers/DIGEST?artifactType=
    GET  /v1/search?q=&n=&page=                 GET /token (with token auth)

    app = make_app(RegistryStore(root), NoAuth())
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web

from berth.errors import InvalidParameter
from berth.registry import mediatypes as mt
from berth.registry.digest import Digest
from berth.registry.server import errors as E
from berth.registry.server.auth import Access, TokenAuth
from berth.registry.server.blobsend import BlobResponse
from berth.registry.server.errors import RegistryError
from berth.registry.server.manifest import MAX_MANIFEST_BYTES, parse_manifest
from berth.registry.server.store import ManifestRecord, ManifestRow, RegistryStore
from berth.registry.server.uploads import DigestMismatch, Sessions, TooLarge, Upload

API_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}
NAME_RE = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$")
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
MAX_NAME = 255
_PATHS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^(?P<name>.+)/blobs/uploads/?$"), "uploads"),
    (re.compile(r"^(?P<name>.+)/blobs/uploads/(?P<id>[^/]+)$"), "upload"),
    (re.compile(r"^(?P<name>.+)/blobs/(?P<digest>[^/]+)$"), "blob"),
    (re.compile(r"^(?P<name>.+)/manifests/(?P<ref>[^/]+)$"), "manifest"),
    (re.compile(r"^(?P<name>.+)/tags/list$"), "tags"),
    (re.compile(r"^(?P<name>.+)/referrers/(?P<digest>[^/]+)$"), "referrers"),
]


class Authorizer(Protocol):
    async def require(self, request: web.Request, needed: list[Access]) -> None: ...

    async def allowed(self, request: web.Request, access: Access) -> bool: ...


Handler = Callable[[web.Request, str, dict[str, str]], Awaitable[web.StreamResponse]]


class Registry:
    def __init__(self, store: RegistryStore, auth: Authorizer, max_blob_size: int | None = None,
                 allow_sparse: bool = False) -> None:
        self.store, self.auth, self.max_blob_size = store, auth, max_blob_size
        # sparse: accept manifests whose blobs or child manifests were never pushed (the spec
        # allows both; strict is the default, as the CNCF registry's)
        self.allow_sparse = allow_sparse
        self.sessions = Sessions()
        self._routes: dict[tuple[str, str], Handler] = {
            ("uploads", "POST"): self.start_upload,
            ("upload", "GET"): self.upload_status,
            ("upload", "PATCH"): self.patch_upload,
            ("upload", "PUT"): self.put_upload,
            ("upload", "DELETE"): self.cancel_upload,
            ("blob", "GET"): self.get_blob,
            ("blob", "HEAD"): self.get_blob,
            ("blob", "DELETE"): self.delete_blob,
            ("manifest", "GET"): self.get_manifest,
            ("manifest", "HEAD"): self.get_manifest,
            ("manifest", "PUT"): self.put_manifest,
            ("manifest", "DELETE"): self.delete_manifest,
            ("tags", "GET"): self.list_tags,
            ("referrers", "GET"): self.referrers,
        }

    # ---- dispatch ----------------------------------------------------------------------------

    async def ping(self, request: web.Request) -> web.StreamResponse:
        await self.auth.require(request, [])
        return web.json_response({}, headers=API_HEADER)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        for pattern, kind in _PATHS:
            m = pattern.match(tail)
            if m is None:
                continue
            name = m.group("name")
            if len(name) > MAX_NAME or not NAME_RE.match(name):
                raise E.name_invalid(name)
            handler = self._routes.get((kind, request.method))
            if handler is None:
                raise RegistryError("UNSUPPORTED", "The operation is unsupported.", 405,
                                    f"{request.method} on {kind}")
            return await handler(request, name, {k: v for k, v in m.groupdict().items() if k != "name"})
        raise RegistryError("NOT_FOUND", "page not found", 404, tail[:200])

    async def _require(self, request: web.Request, name: str, *actions: str) -> None:
        await self.auth.require(request, [Access("repository", name, a) for a in actions])

    async def _io(self, fn: Callable[..., object], *args: object) -> object:
        return await asyncio.to_thread(fn, *args)

    # ---- blobs -------------------------------------------------------------------------------

    async def get_blob(self, request: web.Request, name: str, m: dict[str, str]) -> web.StreamResponse:
        await self._require(request, name, "pull")
        digest = _digest(m["digest"], "BLOB_UNKNOWN")
        size = await asyncio.to_thread(self.store.blob_size, name, digest)
        if size is None:
            raise E.blob_unknown(digest)
        headers = {**API_HEADER, "Docker-Content-Digest": str(digest), "Content-Type": "application/octet-stream",
                   "Accept-Ranges": "bytes", "Cache-Control": "max-age=31536000", "Etag": f'"{digest}"'}
        if request.method == "HEAD":
            headers["Content-Length"] = str(size)
            return web.Response(status=200, headers=headers)
        return BlobResponse(self.store.blob_path(digest), headers=headers)

    async def delete_blob(self, request: web.Request, name: str, m: dict[str, str]) -> web.StreamResponse:
        await self._require(request, name, "delete")
        digest = _digest(m["digest"], "DIGEST_INVALID")
        if not await asyncio.to_thread(self.store.unlink_blob, name, digest):
            raise E.blob_unknown(digest)
        return web.Response(status=202, headers=API_HEADER)

    # ---- uploads -----------------------------------------------------------------------------

    async def start_upload(self, request: web.Request, name: str, m: dict[str, str]) -> web.StreamResponse:
        await self._require(request, name, "pull", "push")
        mount = request.query.get("mount")
        if mount is not None:
            mounted = await self._mount(request, name, mount, request.query.get("from"))
            if mounted is not None:
                return mounted
        upload_id = await asyncio.to_thread(self.store.new_upload, name)
        up = self.sessions.new(upload_id, name, str(self.store.upload_path(upload_id)))
        if "digest" in request.query:  # monolithic: POST with the whole blob
            expected = _digest(request.query["digest"], "DIGEST_INVALID")
            async with up.lock:
                return await self._finish(request, up, expected)
        return self._upload_response(202, name, up)

    async def _mount(self, request: web.Request, name: str, mount: str, source: str | None) -> web.Response | None:
        try:
            digest = Digest.parse(mount)
        except InvalidParameter:
            return None  # not mountable: fall back to an upload session, as the spec allows
        if source is not None:
            if not NAME_RE.match(source) or not await self.auth.allowed(request, Access("repository", source, "pull")):
                return None
            size = await asyncio.to_thread(self.store.blob_size, source, digest)
        else:
            size = await asyncio.to_thread(self.store.blob_size_anywhere, digest)
        if size is None:
            return None
        await asyncio.to_thread(self.store.link_blob, name, digest, size)
        return self._blob_created(name, digest)

    async def upload_status(self, request: web.Request, name: str, m: dict[str, str]) -> web.StreamResponse:
        await self._require(request, name, "pull", "push")
        up = await self._session(name, m["id"])
        return self._upload_response(204, name, up)

    async def patch_upload(self, request: web.Request, name: str, m: dict[str, str]) -> web.StreamResponse:
        await self._require(request, name, "pull", "push")
        up = await self._session(name, m["id"])
        async with up.lock:
            await self._append(request, up)
            return self._upload_response(202, name, up)

    async def put_upload(self, request: web.Request, name: str, m: dict[str, str]) -> web.StreamResponse:
        await self._require(request, name, "pull", "push")
        up = await self._session(name, m["id"])
        if "digest" not in request.query:
            raise E.digest_invalid("digest query parameter is required to complete an upload")
        expected = _digest(request.query["digest"], "DIGEST_INVALID")
        async with up.lock:
            return await self._finish(request, up, expected)

    async def cancel_upload(self, request: web.Request, name: str, m: dict[str, str]) -> web.StreamResponse:
        await self._require(request, name, "pull", "push")
        up = await self._session(name, m["id"])
        async with up.lock:
            self.sessions.forget(up.id)
            await asyncio.to_thread(self.store.end_upload, up.id)
        return web.Response(status=204, headers=API_HEADER)

    async def _session(self, name: str, upload_id: str) -> Upload:
        up = await self.sessions.get(self.store, upload_id, name)
        if up is None:
            raise E.upload_unknown(upload_id)
        return up

    async def _append(self, request: web.Request, up: Upload) -> None:
        """Append the request body, checking Content-Range (416 when out of order)."""
        content_range = request.headers.get("Content-Range")
        if content_range is not None:
            m = re.fullmatch(r"(?:bytes[ =])?(\d+)-(\d+)(?:/\d+|/\*)?", content_range.strip())
            if m is None:
                raise RegistryError("BLOB_UPLOAD_INVALID", "blob upload invalid", 400,
                                    f"bad Content-Range {content_range[:100]!r}")
            start, end = int(m.group(1)), int(m.group(2))
            length = request.content_length
            if start != up.offset or end < start or (length is not None and length != end - start + 1):
                raise RegistryError(
                    "BLOB_UPLOAD_INVALID", "blob upload invalid", 416,
                    f"chunk {start}-{end} does not continue the upload at offset {up.offset}",
                    headers=self._upload_headers(up.repo, up),
                )
        try:
            await up.append(request.content, self.max_blob_size)
        except TooLarge as exc:
            self.sessions.forget(up.id)
            await asyncio.to_thread(self.store.end_upload, up.id)
            raise RegistryError("SIZE_INVALID", "provided length did not match content length", 413, str(exc)) from None

    async def _finish(self, request: web.Request, up: Upload, expected: Digest) -> web.Response:
        if request.can_read_body:
            await self._append(request, up)
        try:
            await up.finish(expected)
        except DigestMismatch as exc:
            self.sessions.forget(up.id)
            await asyncio.to_thread(self.store.end_upload, up.id)
            raise E.digest_invalid(str(exc)) from None
        await asyncio.to_thread(self.store.commit_file, self.store.upload_path(up.id), expected)
        await asyncio.to_thread(self.store.link_blob, up.repo, expected, up.offset)
        self.sessions.forget(up.id)
        await asyncio.to_thread(self.store.end_upload, up.id)
        return self._blob_created(up.repo, expected)

    def _blob_created(self, name: str, digest: Digest) -> web.Response:
        return web.Response(status=201, headers={
            **API_HEADER, "Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": str(digest),
        })

    def _upload_headers(self, name: str, up: Upload) -> dict[str, str]:
        return {
            **API_HEADER, "Location": f"/v2/{name}/blobs/uploads/{up.id}", "Docker-Upload-UUID": up.id,
            "Range": f"0-{max(up.offset - 1, 0)}",
        }

    def _upload_response(self, status: int, name: str, up: Upload) -> web.Response:
        return web.Response(status=status, headers=self._upload_headers(name, up))

    # ---- manifests ---------------------------------------------------------------------------

    async def _resolve(self, name: str, ref: str) -> ManifestRow:
        if ":" in ref:
            try:
                digest = Digest.parse(ref)
            except InvalidParameter:
                raise E.manifest_unknown(ref) from None
        else:
            if not TAG_RE.match(ref):
                raise RegistryError("TAG_INVALID", "manifest tag did not match URI", 400, ref[:200])
            found = await asyncio.to_thread(self.store.resolve_tag, name, ref)
            if found is None:
                raise E.manifest_unknown(ref)
            digest = found
        row = await asyncio.to_thread(self.store.manifest, name, digest)
        if row is None:
            raise E.manifest_unknown(ref)
        return row

    async def get_manifest(self, request: web.Request, name: str, m: dict[str, str]) -> web.StreamResponse:
        await self._require(request, name, "pull")
        row = await self._resolve(name, m["ref"])
        headers = {**API_HEADER, "Docker-Content-Digest": row.digest, "Content-Type": row.media_type,
                   "Etag": f'"{row.digest}"'}
        if request.method == "HEAD":
            headers["Content-Length"] = str(row.size)
            return web.Response(status=200, headers=headers)
        body = await asyncio.to_thread(self.store.blob_path(Digest.parse(row.digest)).read_bytes)
        return web.Response(status=200, body=body, headers=headers)

    async def put_manifest(self, request: web.Request, name: str, m: dict[str, str]) -> web.StreamResponse:
        await self._require(request, name, "pull", "push")
        ref = m["ref"]
        tags = list(request.query.getall("tag", []))
        if ":" in ref:
            try:
                want: Digest | None = Digest.parse(ref)
            except InvalidParameter as exc:
                raise E.digest_invalid(str(exc)) from None
        else:
            want = None
            tags.insert(0, ref)
        for tag in tags:
            if not TAG_RE.match(tag):
                raise RegistryError("TAG_INVALID", "manifest tag did not match URI", 400, tag[:200])
        if (request.content_length or 0) > MAX_MANIFEST_BYTES:
            raise E.manifest_invalid(f"manifest larger than {MAX_MANIFEST_BYTES} bytes", 413)
        body = await _read_capped(request, MAX_MANIFEST_BYTES)
        digest = Digest.from_bytes(body, want.algorithm if want else "sha256")
        if want is not None and digest != want:
            raise E.digest_invalid(f"manifest digest is {digest}, not {want}")
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        try:
            info = parse_manifest(body, content_type)
        except InvalidParameter as exc:
            raise E.manifest_invalid(str(exc)) from None
        missing = [] if self.allow_sparse else await asyncio.to_thread(
            self._missing_refs, name, info.blobs, info.manifests)
        if missing:
            raise RegistryError("MANIFEST_BLOB_UNKNOWN", "blob unknown to registry", 400, missing[0])
        refs = tuple(str(d) for d in (*info.blobs, *info.manifests, *info.optional))
        record = ManifestRecord(name, digest, info.media_type, body, refs,
                                str(info.subject) if info.subject else "", info.artifact_type, info.annotations)
        await asyncio.to_thread(self.store.put_manifest, record, tuple(tags))
        headers = {**API_HEADER, "Location": f"/v2/{name}/manifests/{digest}",
                   "Docker-Content-Digest": str(digest)}
        if info.subject is not None:
            headers["OCI-Subject"] = str(info.subject)
        response = web.Response(status=201, headers=headers)
        if want is not None:
            for tag in tags:
                response.headers.add("OCI-Tag", tag)
        return response

    def _missing_refs(self, name: str, blobs: tuple[Digest, ...], manifests: tuple[Digest, ...]) -> list[str]:
        missing = [str(d) for d in blobs if self.store.blob_size(name, d) is None]
        missing += [str(d) for d in manifests if not self.store.has_manifest(name, str(d))]
        return missing

    async def delete_manifest(self, request: web.Request, name: str, m: dict[str, str]) -> web.StreamResponse:
        await self._require(request, name, "delete")
        ref = m["ref"]
        if ":" in ref:
            digest = _digest(ref, "DIGEST_INVALID")
            gone = await asyncio.to_thread(self.store.delete_manifest, name, digest)
        else:
            if not TAG_RE.match(ref):
                raise RegistryError("TAG_INVALID", "manifest tag did not match URI", 400, ref[:200])
            gone = await asyncio.to_thread(self.store.delete_tag, name, ref)
        if not gone:
            raise E.manifest_unknown(ref)
        return web.Response(status=202, headers=API_HEADER)

    # ---- listings ----------------------------------------------------------------------------

    async def list_tags(self, request: web.Request, name: str, m: dict[str, str]) -> web.StreamResponse:
        await self._require(request, name, "pull")
        limit, last = _page(request)
        if not await asyncio.to_thread(self.store.repo_exists, name):
            raise E.name_unknown(name)
        tags = await asyncio.to_thread(self.store.tags, name, limit, last)
        headers = dict(API_HEADER)
        if limit and len(tags) == limit:
            headers["Link"] = f'</v2/{name}/tags/list?n={limit}&last={tags[-1]}>; rel="next"'
        return web.json_response({"name": name, "tags": tags}, headers=headers)

    async def catalog(self, request: web.Request) -> web.StreamResponse:
        await self.auth.require(request, [Access("registry", "catalog", "*")])
        limit, last = _page(request)
        repos = await asyncio.to_thread(self.store.repositories, limit, last)
        headers = dict(API_HEADER)
        if limit and len(repos) == limit:
            headers["Link"] = f'</v2/_catalog?n={limit}&last={repos[-1]}>; rel="next"'
        return web.json_response({"repositories": repos}, headers=headers)

    async def referrers(self, request: web.Request, name: str, m: dict[str, str]) -> web.StreamResponse:
        await self._require(request, name, "pull")
        subject = _digest(m["digest"], "DIGEST_INVALID")
        rows = await asyncio.to_thread(self.store.referrers, name, subject)
        headers = dict(API_HEADER)
        wanted = request.query.get("artifactType")
        if wanted is not None:
            rows = [r for r in rows if r.artifact_type == wanted]
            headers["OCI-Filters-Applied"] = "artifactType"
        manifests = []
        for r in rows:
            desc: dict[str, object] = {"mediaType": r.media_type, "digest": r.digest, "size": r.size}
            if r.artifact_type:
                desc["artifactType"] = r.artifact_type
            if r.annotations:
                desc["annotations"] = r.annotations
            manifests.append(desc)
        body = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": manifests}).encode()
        return web.Response(body=body, content_type=mt.OCI_INDEX, headers=headers)

    async def search(self, request: web.Request) -> web.StreamResponse:
        """Docker's v1 search: repositories whose name contains the query."""
        await self.auth.require(request, [Access("registry", "catalog", "*")])
        query = request.query.get("q", "")
        n = _int(request.query.get("n", "25"), "n", 1, 100)
        page = _int(request.query.get("page", "1"), "page", 1, 1 << 20)
        repos = await asyncio.to_thread(self.store.repositories, None, "")
        needle = query.lower()
        hits = [r for r in repos if needle in r.lower()]
        shown = hits[(page - 1) * n: page * n]
        results = [{"name": r, "description": "", "star_count": 0, "is_official": False, "is_automated": False}
                   for r in shown]
        return web.json_response({
            "num_results": len(hits), "num_pages": max(1, -(-len(hits) // n)), "page": page, "page_size": n,
            "query": query, "results": results,
        })


def _digest(text: str, code: str) -> Digest:
    try:
        return Digest.parse(text)
    except InvalidParameter as exc:
        if code == "BLOB_UNKNOWN":
            raise E.blob_unknown(text[:200]) from None
        raise RegistryError("DIGEST_INVALID", "provided digest did not match uploaded content", 400, str(exc)) from None


def _int(text: str, what: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise RegistryError("PAGINATION_NUMBER_INVALID", "invalid number of results requested", 400,
                            f"{what}={text[:40]!r}") from None
    if not low <= value <= high:
        raise RegistryError("PAGINATION_NUMBER_INVALID", "invalid number of results requested", 400,
                            f"{what} must be between {low} and {high}")
    return value


def _page(request: web.Request) -> tuple[int | None, str]:
    n = request.query.get("n")
    limit = None if n is None else _int(n, "n", 0, 10000)
    return limit, request.query.get("last", "")


async def _read_capped(request: web.Request, cap: int) -> bytes:
    body = bytearray()
    while chunk := await request.content.readany():
        body += chunk
        if len(body) > cap:
            raise E.manifest_invalid(f"manifest larger than {cap} bytes", 413)
    return bytes(body)


@web.middleware
async def _errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    try:
        return await handler(request)
    except RegistryError as exc:
        return exc.response()


def make_app(registry: Registry, token: TokenAuth | None = None) -> web.Application:
    app = web.Application(middlewares=[_errors], client_max_size=MAX_MANIFEST_BYTES + 1)
    app.router.add_route("GET", "/v2/", registry.ping)
    app.router.add_route("GET", "/v2", registry.ping)
    app.router.add_route("GET", "/v2/_catalog", registry.catalog)
    app.router.add_route("*", "/v2/{tail:.+}", registry.dispatch)
    app.router.add_route("GET", "/v1/search", registry.search)
    if token is not None:
        app.router.add_route("GET", "/token", token.issue)
    return app
