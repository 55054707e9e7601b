"""Registry jobs: ``image.pull``, ``image.push``, ``image.search``, ``image.distribution``,
``system.auth`` (login).

The graph is adapted to what a pull needs (:class:`GraphPullStore`); credentials come from the
client's ``X-Registry-Auth`` header (the CLI reads ``~/.docker/config.json`` and its credential
helpers), never from the daemon's own files, as with dockerd. Interrupted downloads stay in
``<data_root>/pull-partial`` so that the next pull resumes them; files there older than a week
are removed at start-up.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from berth.daemon.handlers import HandlerTable
from berth.engine import Job
from berth.errors import BerthError, InvalidParameter, NotFound, Unauthorized
from berth.graph import reference
from berth.jobs import images, system
from berth.jobs.results import AuthResult, JSONList, JSONObject
from berth.registry.client import RegistryClient, RegistryFailure, unauthorized_pull
from berth.registry.digest import Digest
from berth.registry.endpoint import DOCKER_HUB, Endpoints
from berth.registry.progress import Progress
from berth.registry.pull import Platform, platforms_of, pull

if TYPE_CHECKING:
    from berth.daemon.daemon import Daemon
    from berth.graph.content import ContentStore
    from berth.graph.imagestore import ImageStore
    from berth.graph.layerstore import LayerStore

PARTIAL_DIR = "pull-partial"
PARTIAL_MAX_AGE = 7 * 24 * 3600

handlers = HandlerTable()


class GraphPullStore:
    """What a pull writes into: the image store (the image, its names), the layer store (its
    layers, their compressed forms and sources) and the content store (the blobs); the
    registry client's :class:`~berth.registry.pull.PullStore`."""

    def __init__(self, images: ImageStore, layers: LayerStore, content: ContentStore, max_import_size: int) -> None:
        self.images, self.layers, self.content = images, layers, content
        self.max_import_size = max_import_size

    def present_layers(self, diff_ids: list[str]) -> int:
        from berth.graph.image import chain_ids

        n = 0
        for chain in chain_ids(diff_ids):
            if self.layers.get(chain) is None:
                break
            n += 1
        return n

    def create_image(self, config: bytes, open_layer: Callable[[int], BinaryIO], repo_tag: str) -> str:
        from berth.graph.budget import UnpackBudget
        from berth.graph.registration import create_image

        budget = UnpackBudget(self.max_import_size, "pull")
        return create_image(self.images, self.layers, self.content, config, open_layer, repo_tag or None, budget)

    def image_for_tag(self, repo_tag: str) -> str | None:
        try:
            return self.images.resolve(repo_tag)
        except NotFound:
            return None

    def add_digest(self, image_id: str, repo: str, digest: str) -> None:
        self.images.add_digest(image_id, repo, digest)

    def keep_blob(self, path: Path, digest: str, diff_id: str, media_type: str, size: int) -> None:
        d = Digest.parse(digest)
        if d.algorithm != "sha256":
            path.unlink(missing_ok=True)
            return
        target = self.content.path(digest)
        os.chmod(path, 0o600)
        os.replace(path, target)
        try:
            self.layers.record_blob(diff_id, digest, media_type, size)
        except NotFound:
            pass  # the layer went again (pruned by a racing rmi): the blob is garbage then

    def record_sources(self, digests: list[str], repository: str) -> None:
        registry, _, path = repository.partition("/")
        self.layers.add_blob_sources(digests, registry, path)


def _pull_store(d: Daemon) -> GraphPullStore:
    graph = d.graph
    return GraphPullStore(graph.images, graph.layers, graph.content, graph.max_import_size)


def endpoints(d: Daemon) -> Endpoints:
    mirrors: dict[str, list[str]] = {}
    for item in d.cfg.registry_mirrors:
        host, sep, url = item.partition("=")
        if sep and not host.startswith(("http://", "https://")):
            mirrors.setdefault(host, []).append(url)
        else:
            mirrors.setdefault(DOCKER_HUB, []).append(item)
    return Endpoints(d.cfg.insecure_registries, mirrors)


def prune_partials(data_root: Path) -> None:
    folder = data_root / PARTIAL_DIR
    folder.mkdir(mode=0o700, exist_ok=True)
    cutoff = time.time() - PARTIAL_MAX_AGE
    for entry in os.scandir(folder):
        if entry.stat(follow_symlinks=False).st_mtime < cutoff:
            os.unlink(entry.path)


@handlers.on(images.ImagePull)
async def pull_job(d: Daemon, req: images.ImagePull, job: Job) -> None:
    """fromImage=NAME&tag=TAG|DIGEST: the Docker JSON progress stream on stdout."""
    name, tag = req.image, req.tag
    ref = reference.parse(name if not tag else (f"{name}@{tag}" if ":" in tag else f"{name}:{tag}"))
    if not ref.tag and not ref.digest:
        ref = ref.with_default_tag()
    creds = req.auth
    platform = Platform.parse(req.platform)
    progress = Progress(job.sink)
    shown = ref.string() if ref.domain != DOCKER_HUB else ref.familiar()
    try:
        async with RegistryClient.open(endpoints(d), ref.domain, creds) as client:
            result = await pull(
                client, _pull_store(d), ref.path, ref.digest or ref.tag,
                f"{ref.name}:{ref.tag}" if ref.tag else "", ref.name, progress,
                d.cfg.data_root / PARTIAL_DIR, platform, d.cfg.max_concurrent_downloads,
            )
        progress.status(f"Digest: {result.digest}")
        what = "Downloaded newer image" if result.updated else "Image is up to date"
        progress.status(f"Status: {what} for {shown}")
    except RegistryFailure as exc:
        raise _pull_error(exc, ref, shown) from None
    except NotFound as exc:
        if exc.message == "manifest unknown":
            raise NotFound(f"manifest for {shown} not found: manifest unknown: manifest unknown") from None
        raise
    finally:
        await progress.close()
    d.engine.events.publish("image", "pull", shown, {"name": shown})


@handlers.on(images.DistributionInspect)
async def distribution_job(d: Daemon, req: images.DistributionInspect, job: Job) -> JSONObject:
    """GET /distribution/NAME/json: the descriptor of the manifest NAME names in its registry and
    the platforms it serves, as dockerd's (OCI JSON inside: ``mediaType``, ``digest``, ``size``;
    ``architecture``, ``os``)."""
    if reference.full_id(req.name) is not None:
        raise InvalidParameter("no manifest found for full image ID")
    ref = reference.parse(req.name)
    if not ref.tag and not ref.digest:
        ref = ref.with_default_tag()
    shown = ref.string() if ref.domain != DOCKER_HUB else ref.familiar()
    async with RegistryClient.open(endpoints(d), ref.domain, req.auth) as client:
        try:
            manifest = await client.manifest(ref.path, ref.digest or ref.tag)
        except RegistryFailure as exc:
            raise _pull_error(exc, ref, shown) from None
        platforms = await platforms_of(client, ref.path, manifest)
    return {
        "Descriptor": {"mediaType": manifest.media_type, "digest": str(manifest.digest), "size": len(manifest.body)},
        "Platforms": platforms,
    }


def _pull_error(exc: RegistryFailure, ref: reference.Reference, shown: str) -> BerthError:
    if exc.status in (401, 403) or exc.code in ("DENIED", "UNAUTHORIZED", "NAME_UNKNOWN"):
        return unauthorized_pull(ref.familiar_name())
    if exc.status == 404 and exc.code == "MANIFEST_UNKNOWN":
        return NotFound(f"manifest for {shown} not found: manifest unknown: manifest unknown")
    return exc


@handlers.on(images.ImagePush)
async def push_job(d: Daemon, req: images.ImagePush, job: Job) -> None:
    """POST /images/NAME/push?tag=TAG: every tag of NAME when TAG is empty."""
    name, tag = req.name, req.tag
    ref = reference.parse(name)
    if ref.tag and tag:
        raise InvalidParameter(f"push {name}: a tag in the name and the tag parameter")
    tag = tag or ref.tag
    creds = req.auth
    tags = [tag] if tag else await asyncio.to_thread(_tags_of, d, ref.name)
    if not tags:
        raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name()}")
    targets = []
    for t in tags:
        try:
            targets.append((t, await asyncio.to_thread(d.graph.resolve, f"{ref.name}:{t}")))
        except NotFound:
            raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name()}") from None
    from berth.registry.push import push

    progress = Progress(job.sink)
    progress.status(f"The push refers to repository [{ref.name if ref.domain != DOCKER_HUB else 'docker.io/' + ref.path}]")
    try:
        async with RegistryClient.open(endpoints(d), ref.domain, creds) as client:
            for t, image_id in targets:
                digest, size = await push(client, d.graph.distribution, ref.domain, ref.path, t, image_id, progress,
                                          d.cfg.max_concurrent_uploads)
                progress.status(f"{t}: digest: {digest} size: {size}")
                progress.put(_aux({"Tag": t, "Digest": digest, "Size": size}))
                await asyncio.to_thread(d.graph.add_digest, image_id, ref.name, digest)
                d.engine.events.publish("image", "push", f"{ref.familiar_name()}:{t}", {"name": f"{ref.familiar_name()}:{t}"})
    except RegistryFailure as exc:
        if exc.status in (401, 403):
            raise Unauthorized(f"denied: requested access to the resource is denied ({exc.message})") from None
        raise
    finally:
        await progress.close()


def _aux(aux: dict[str, Any]) -> bytes:
    import json

    return json.dumps({"progressDetail": {}, "aux": aux}, separators=(",", ":")).encode() + b"\r\n"


def _tags_of(d: Daemon, name: str) -> list[str]:
    return sorted(d.graph.images.tags_in_repository(name))


@handlers.on(images.ImageSearch)
async def search_job(d: Daemon, req: images.ImageSearch, job: Job) -> JSONList:
    term = req.term
    limit = req.limit
    if not 1 <= limit <= 100:
        raise InvalidParameter(f"invalid limit {limit}: must be between 1 and 100")
    domain, _, rest = term.partition("/")
    if rest and ("." in domain or ":" in domain or domain == "localhost"):
        registry, query = domain, rest
    else:
        registry, query = DOCKER_HUB, term
    async with RegistryClient.open(endpoints(d), registry, req.auth) as client:
        try:
            doc = await client.search(query, limit)
        except RegistryFailure as exc:
            if exc.status == 404:
                raise NotFound(f"registry {registry} does not offer the v1 search API (GET /v1/search answered 404)") from None
            raise
    results = [r for r in doc.get("results") or [] if isinstance(r, dict)]
    filters = req.filters
    out = []
    for r in results:
        item = {"star_count": int(r.get("star_count") or 0), "is_official": bool(r.get("is_official")),
                "name": str(r.get("name", "")), "is_automated": bool(r.get("is_automated")),
                "description": str(r.get("description") or "")}
        if not _search_match(item, filters):
            continue
        out.append(item)
    return out[:limit]


def _search_match(item: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    for key, values in filters.items():
        for v in values:
            if key == "stars":
                try:
                    if item["star_count"] < int(v):
                        return False
                except ValueError:
                    raise InvalidParameter(f"invalid filter 'stars={v}'") from None
            elif key in ("is-official", "is-automated"):
                if v not in ("true", "false"):
                    raise InvalidParameter(f"invalid filter '{key}={v}'")
                if item[key.replace("-", "_")] != (v == "true"):
                    return False
            else:
                raise InvalidParameter(f"invalid filter '{key}'")
    return True


@handlers.on(system.SystemAuth)
async def auth_job(d: Daemon, req: system.SystemAuth, job: Job) -> AuthResult:
    """POST /auth: check the credentials against the registry's /v2/ (and its token realm)."""
    creds = req.auth
    server = req.server.removeprefix("https://").removeprefix("http://").rstrip("/")
    if not server or server in ("index.docker.io/v1", "index.docker.io", "registry-1.docker.io"):
        server = DOCKER_HUB
    if creds.empty:
        raise InvalidParameter("login: username and password are required")
    async with RegistryClient.open(endpoints(d), server, creds) as client:
        async with client.request("GET", "/v2/", "") as resp:
            if resp.status in (401, 403):
                raise Unauthorized(f"Get \"{client.endpoint.url('/v2/')}\": unauthorized: incorrect username or password")
            if resp.status != 200:
                raise Unauthorized(f"login to {server}: /v2/ answered {resp.status}")
    return {"IdentityToken": "", "Status": "Login Succeeded"}


def stream_error(exc: BerthError) -> bytes:
    """A job's error as the last line of a progress stream that has already begun."""
    from berth.registry.progress import error_message

    return error_message(exc.message)


