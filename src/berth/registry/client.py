"""A distribution-API client: one registry, one repository's worth of requests, auth retried.

    async with RegistryClient.open(endpoints, "127.0.0.1:5000", creds) as reg:
        m = await reg.manifest("library/bbx", "v1")          # Manifest(digest, media_type, body)
        async with reg.blob("library/bbx", digest, offset=0) as resp: ...
        await reg.upload("library/bbx", digest, path, size)   # HEAD, mount or POST+PUT

Errors the registry sends (``{"errors": [{"code", "message"}]}``) become berth errors: an
unknown manifest is NotFound, an unknown or forbidden repository Unauthorized/NotFound as the
caller words it (``RegistryFailure.code`` keeps the registry's code).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from berth.errors import BerthError, InvalidParameter, NotFound, SystemFailure
from berth.registry import mediatypes as mt
from berth.registry.auth import Authenticator, Credentials
from berth.registry.digest import Digest
from berth.registry.endpoint import Endpoint, Endpoints

MAX_MANIFEST = 4 << 20
ACCEPT = ", ".join([mt.OCI_MANIFEST, mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.OCI_INDEX])
USER_AGENT = "berth/0.1"


class RegistryFailure(BerthError):
    """A registry answered with an error; ``status`` and ``code`` are the registry's."""

    def __init__(self, message: str, status: int, code: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


@dataclass(frozen=True)
class Manifest:
    digest: Digest
    media_type: str
    body: bytes

    def json(self) -> dict[str, Any]:
        doc = json.loads(self.body)
        if not isinstance(doc, dict):
            raise InvalidParameter(f"manifest {self.digest} is not a JSON object")
        return doc


class RegistryClient:
    def __init__(self, session: aiohttp.ClientSession, endpoint: Endpoint, auth: Authenticator) -> None:
        self.session, self.endpoint, self.auth = session, endpoint, auth

    @classmethod
    @asynccontextmanager
    async def open(cls, endpoints: Endpoints, domain: str, creds: Credentials) -> AsyncIterator[RegistryClient]:
        """Connect to the first endpoint of ``domain`` that answers ``GET /v2/``."""
        timeout = aiohttp.ClientTimeout(total=None, connect=15, sock_read=60)
        errors: list[str] = []
        async with aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": USER_AGENT},
                                         auto_decompress=False) as session:
            for ep in endpoints.for_domain(domain):
                try:
                    async with session.get(ep.url("/v2/"), ssl=_ssl(ep)) as resp:
                        await resp.read()
                        if resp.status in (200, 401):
                            yield cls(session, ep, Authenticator(creds))
                            return
                        errors.append(f"{ep.url('/v2/')}: HTTP {resp.status}")
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    errors.append(f"Get \"{ep.url('/v2/')}\": {_why(exc)}")
            raise SystemFailure(errors[-1])  # as dockerd: the last endpoint's error

    # ---- plumbing ----------------------------------------------------------------------------

    @asynccontextmanager
    async def request(self, method: str, path: str, scope: str, **kw: Any) -> AsyncIterator[aiohttp.ClientResponse]:
        """A request answered with anything but 401 (which is answered once by authenticating)."""
        url = path if path.startswith(("http://", "https://")) else self.endpoint.url(path)
        headers = dict(kw.pop("headers", {}) or {})
        cached = self.auth.cached(scope)
        if cached:
            headers["Authorization"] = cached
        for attempt in (0, 1):
            data = kw.get("data")
            if attempt and isinstance(data, _FileBody):
                data.seek(0)
            try:
                resp = await self.session.request(method, url, headers=headers, ssl=_ssl(self.endpoint), **kw)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                raise SystemFailure(f"{method.capitalize()} \"{url}\": {_why(exc)}") from None
            if resp.status == 401 and attempt == 0:
                challenge = resp.headers.get("WWW-Authenticate", "")
                resp.release()
                headers["Authorization"] = await self.auth.authorize(self.session, challenge, scope)
                continue
            try:
                yield resp
            finally:
                resp.release()
            return

    async def _fail(self, resp: aiohttp.ClientResponse, what: str) -> RegistryFailure:
        body = await resp.content.read(64 << 10)
        code, message = "", ""
        try:
            errs = json.loads(body).get("errors") or []
            if errs and isinstance(errs[0], dict):
                code, message = str(errs[0].get("code", "")), str(errs[0].get("message", "")).lower()
        except (ValueError, AttributeError):
            message = body.decode(errors="replace").strip()[:200]
        text = f"{what}: {code.lower().replace('_', ' ')}: {message}" if code else f"{what}: {message or resp.reason}"
        if resp.status == 401:
            return RegistryFailure(text, 401, code or "UNAUTHORIZED")
        return RegistryFailure(text, resp.status, code)

    # ---- reading -----------------------------------------------------------------------------

    async def manifest(self, repo: str, ref: str) -> Manifest:
        scope = f"repository:{repo}:pull"
        async with self.request("GET", f"/v2/{repo}/manifests/{ref}", scope, headers={"Accept": ACCEPT}) as resp:
            if resp.status != 200:
                raise await self._fail(resp, "manifest")
            if (resp.content_length or 0) > MAX_MANIFEST:
                raise InvalidParameter(f"manifest {repo}:{ref} is larger than {MAX_MANIFEST} bytes")
            body = await resp.content.read(MAX_MANIFEST + 1)
            if len(body) > MAX_MANIFEST:
                raise InvalidParameter(f"manifest {repo}:{ref} is larger than {MAX_MANIFEST} bytes")
            media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
            header_digest = resp.headers.get("Docker-Content-Digest", "")
        if ":" in ref:
            want = Digest.parse(ref)
            got = Digest.from_bytes(body, want.algorithm)
            if got != want:
                raise InvalidParameter(f"manifest verification failed for digest {want}")
            digest = want
        else:
            digest = Digest.from_bytes(body)
            if header_digest and Digest.parse(header_digest).algorithm == "sha256" and str(digest) != header_digest:
                raise InvalidParameter(f"manifest {repo}:{ref}: content digest {digest} is not {header_digest}")
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            raise InvalidParameter(f"manifest {repo}:{ref} is not JSON") from None
        if isinstance(doc, dict) and isinstance(doc.get("mediaType"), str) and doc["mediaType"]:
            media_type = doc["mediaType"]
        if isinstance(doc, dict) and doc.get("schemaVersion") == 1:
            raise InvalidParameter(
                f"{repo}:{ref}: image manifest schema version 1 is no longer supported (Docker removed it too)"
            )
        if media_type not in mt.MANIFEST_TYPES:
            if isinstance(doc, dict) and "manifests" in doc:
                media_type = mt.OCI_INDEX
            elif isinstance(doc, dict) and "config" in doc:
                media_type = mt.OCI_MANIFEST
            else:
                raise InvalidParameter(f"manifest {repo}:{ref} has unsupported media type {media_type[:100]!r}")
        return Manifest(digest, media_type, body)

    @asynccontextmanager
    async def blob(self, repo: str, digest: Digest, offset: int = 0) -> AsyncIterator[aiohttp.ClientResponse]:
        """The blob's response: 200 from the start, or 206 from ``offset`` when the registry can."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        async with self.request("GET", f"/v2/{repo}/blobs/{digest}", f"repository:{repo}:pull",
                                headers=headers) as resp:
            if resp.status not in (200, 206):
                raise await self._fail(resp, f"blob {digest}")
            yield resp

    async def tags(self, repo: str) -> list[str]:
        out: list[str] = []
        path = f"/v2/{repo}/tags/list"
        while path:
            async with self.request("GET", path, f"repository:{repo}:pull") as resp:
                if resp.status != 200:
                    raise await self._fail(resp, "tags")
                doc = json.loads(await resp.content.read(16 << 20))
                link = resp.headers.get("Link", "")
            out += [t for t in (doc.get("tags") or []) if isinstance(t, str)]
            path = link[1:link.index(">")] if link.startswith("<") and ">" in link else ""
        return out

    async def search(self, term: str, limit: int) -> dict[str, Any]:
        async with self.request("GET", f"/v1/search?q={term}&n={limit}", "registry:catalog:*") as resp:
            if resp.status != 200:
                raise await self._fail(resp, "search")
            doc = json.loads(await resp.content.read(16 << 20))
        if not isinstance(doc, dict):
            raise InvalidParameter("search answer is not a JSON object")
        return doc

    # ---- writing -----------------------------------------------------------------------------

    async def has_blob(self, repo: str, digest: Digest) -> bool:
        async with self.request("HEAD", f"/v2/{repo}/blobs/{digest}", f"repository:{repo}:pull,push") as resp:
            if resp.status == 200:
                return True
            if resp.status == 404:
                return False
            raise await self._fail(resp, f"blob {digest}")

    async def mount(self, repo: str, digest: Digest, source: str) -> bool:
        scope = f"repository:{repo}:pull,push repository:{source}:pull"
        async with self.request("POST", f"/v2/{repo}/blobs/uploads/?mount={digest}&from={source}", scope) as resp:
            if resp.status == 201:
                return True
            if resp.status == 202:  # the registry started an upload instead: cancel it
                loc = resp.headers.get("Location", "")
                if loc:
                    async with self.request("DELETE", _absolute(self.endpoint, loc), f"repository:{repo}:pull,push"):
                        pass
                return False
            raise await self._fail(resp, f"mount {digest}")

    async def upload(self, repo: str, digest: Digest, path: Path, size: int,
                     progress: Any = None, chunk_size: int = 0) -> None:
        """POST an upload session, then either PUT the whole blob with its digest (monolithic),
        or, for a blob larger than ``chunk_size`` (0: never), PATCH it in ``chunk_size`` pieces
        with ``Content-Range`` and close the session with an empty PUT (chunked). A chunk the
        registry refuses (416) is resent from the offset its ``Range`` header reports."""
        scope = f"repository:{repo}:pull,push"
        async with self.request("POST", f"/v2/{repo}/blobs/uploads/", scope) as resp:
            if resp.status != 202:
                raise await self._fail(resp, f"blob upload {digest}")
            loc = resp.headers.get("Location", "")
        if not loc:
            raise SystemFailure(f"blob upload {digest}: the registry gave no upload location")
        url = _absolute(self.endpoint, loc)
        with open(path, "rb") as f:
            if chunk_size and size > chunk_size:
                url = await self._patch_chunks(url, scope, digest, f, size, chunk_size, progress)
                body: Any = b""
                length = 0
            else:
                body, length = _FileBody(f, size, progress), size
            url += ("&" if "?" in url else "?") + f"digest={digest}"
            async with self.request("PUT", url, scope, data=body,
                                    headers={"Content-Type": "application/octet-stream",
                                             "Content-Length": str(length)}) as resp:
                if resp.status != 201:
                    raise await self._fail(resp, f"blob upload {digest}")

    async def _patch_chunks(self, url: str, scope: str, digest: Digest, f: Any, size: int, chunk_size: int,
                            progress: Any) -> str:
        offset = 0
        refusals = 0
        while offset < size:
            f.seek(offset)
            data = f.read(min(chunk_size, size - offset))
            end = offset + len(data) - 1
            async with self.request("PATCH", url, scope, data=data, headers={
                    "Content-Type": "application/octet-stream", "Content-Range": f"{offset}-{end}",
                    "Content-Length": str(len(data))}) as resp:
                if resp.status == 416 and refusals < 3:
                    refusals += 1
                    got = resp.headers.get("Range", "0-0").rpartition("-")[2]
                    offset = int(got) + 1 if got.isdigit() and offset else 0
                    url = _absolute(self.endpoint, resp.headers.get("Location") or url)
                    continue
                if resp.status != 202:
                    raise await self._fail(resp, f"blob upload {digest}")
                url = _absolute(self.endpoint, resp.headers.get("Location") or url)
            offset = end + 1
            if progress is not None:
                progress(offset)
        return url

    async def put_manifest(self, repo: str, ref: str, media_type: str, body: bytes) -> Digest:
        scope = f"repository:{repo}:pull,push"
        async with self.request("PUT", f"/v2/{repo}/manifests/{ref}", scope, data=body,
                                headers={"Content-Type": media_type}) as resp:
            if resp.status != 201:
                raise await self._fail(resp, "manifest put")
        return Digest.from_bytes(body)


class _FileBody:
    """A file sent as a request body in 1 MiB reads, reporting bytes sent; seekable for a retry."""

    def __init__(self, f: Any, size: int, progress: Any) -> None:
        self.f, self.size, self.progress = f, size, progress

    def seek(self, pos: int) -> None:
        self.f.seek(pos)

    async def __aiter__(self) -> AsyncIterator[bytes]:  # pragma: no cover - aiohttp drives it
        sent = 0
        while chunk := self.f.read(1 << 20):
            sent += len(chunk)
            if self.progress is not None:
                self.progress(sent)
            yield chunk


def _absolute(ep: Endpoint, loc: str) -> str:
    return loc if loc.startswith(("http://", "https://")) else ep.url(loc)


def _ssl(ep: Endpoint) -> Any:
    if ep.scheme == "http":
        return None
    if ep.ssl_context is not None:
        return ep.ssl_context
    return None if ep.verify else False


def _why(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        err = exc.os_error
        why = os.strerror(err.errno).lower() if err.errno else str(err)
        return f"dial tcp {exc.host}:{exc.port}: connect: {why}"
    return str(exc) or type(exc).__name__


def unauthorized_pull(name: str) -> NotFound:
    # dockerd answers 404 here (its notFoundError): a 401 would make the docker CLI ask to log in
    return NotFound(
        f"pull access denied for {name}, repository does not exist or may require 'docker login': "
        "denied: requested access to the resource is denied"
    )

