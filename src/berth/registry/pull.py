"""Pulling an image: manifest (an index resolved to one platform), config, then layers.

The flow, as Docker's with two additions (resumable downloads, verified-before-use):

1. the manifest by tag or digest; an index/manifest list is resolved to the platform asked for
   (default linux/amd64); the config blob is fetched and verified;
2. layers the graph already has (by chain id) print ``Already exists``; the others download
   concurrently (at most ``max_concurrent``) into ``partial_dir/<alg>-<hex>``, hashed as they
   arrive. A file left by an interrupted pull is resumed with ``Range: bytes=N-`` (a registry that
   ignores the range sends the whole blob and the file starts again);
3. each layer is unpacked *while* it downloads (the store's ``create_image`` runs in a worker
   thread and reads the growing file through :class:`berth.registry.download.Arrival`) into a
   driver dir that nothing records yet; its reader sees the end of the blob only once the digest
   matched, so a bad blob fails the unpacking, the dir is removed and nothing is used. The graph
   checks each layer against the config's diff id; the image is registered, tagged and given its
   repo digest in one step at the end, so a pull that fails or is killed leaves no visible image.

    result = await pull(client, store, ref, progress, platform=Platform("linux", "amd64"))
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from berth.errors import BerthError, InvalidParameter, NotFound
from berth.registry import mediatypes as mt
from berth.registry.client import Manifest, RegistryClient, RegistryFailure
from berth.registry.digest import Digest
from berth.registry.download import Arrival, Follower, fetch_blob
from berth.registry.progress import BAR_INTERVAL, Progress

MAX_CONFIG = 8 << 20


@dataclass(frozen=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> Platform:
        if not text:
            return cls()
        parts = text.lower().split("/")
        if len(parts) > 3 or not all(parts):
            raise InvalidParameter(f"invalid platform {text!r}: want OS/ARCH[/VARIANT]")
        return cls(parts[0], _normalize_arch(parts[1]) if len(parts) > 1 else "amd64", parts[2] if len(parts) > 2 else "")

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def _normalize_arch(arch: str) -> str:
    return {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64"}.get(arch, arch)


class PullStore(Protocol):
    """What a pull needs from the graph (the daemon adapts its graph to this)."""

    def present_layers(self, diff_ids: list[str]) -> int:
        """How many of the first layers (by chain) the graph already has."""

    def create_image(self, config: bytes, open_layer: Callable[[int], BinaryIO], repo_tag: str) -> str: ...

    def image_for_tag(self, repo_tag: str) -> str | None: ...

    def add_digest(self, image_id: str, repo: str, digest: str) -> None: ...

    def keep_blob(self, path: Path, digest: str, diff_id: str, media_type: str, size: int) -> None:
        """Keep a verified compressed layer blob (for a later push); the file may be moved."""

    def record_sources(self, digests: list[str], repository: str) -> None:
        """Remember that ``repository`` (``domain/path``) holds these blobs (a push mounts from it)."""


@dataclass(frozen=True)
class PullResult:
    image_id: str
    digest: str
    updated: bool  # the tag now points at another image than before


@dataclass
class _Layer:
    index: int
    digest: Digest
    media_type: str
    size: int
    short: str
    arrival: Arrival


async def resolve_manifest(client: RegistryClient, repo: str, ref: str, platform: Platform) -> tuple[str, dict[str, Any], str]:
    """The image manifest to pull: (its digest, its JSON, the digest the user's ref names)."""
    try:
        top = await client.manifest(repo, ref)
    except RegistryFailure as exc:
        if exc.status == 404:
            raise NotFound("manifest unknown") from None
        raise
    named = str(top.digest)
    if top.media_type not in mt.INDEX_TYPES:
        return str(top.digest), top.json(), named
    entries = top.json().get("manifests")
    if not isinstance(entries, list):
        raise InvalidParameter(f"manifest list {top.digest} has no manifests")
    chosen = _choose(entries, platform)
    if chosen is None:
        raise NotFound(f"no matching manifest for {platform} in the manifest list entries")
    child = await client.manifest(repo, chosen)
    if child.media_type in mt.INDEX_TYPES:
        raise InvalidParameter(f"manifest list {top.digest} nests another list: not supported")
    return str(child.digest), child.json(), named


async def platforms_of(client: RegistryClient, repo: str, manifest: Manifest) -> list[dict[str, Any]] | None:
    """The platforms a manifest serves, as dockerd's distribution inspect gives them (OCI
    ``Platform`` objects): an index's entries' platforms; for an image manifest, the os and
    architecture (variant, os.version, os.features) of its config, None when it has neither."""
    doc = manifest.json()
    if manifest.media_type in mt.INDEX_TYPES:
        out: list[dict[str, Any]] = []
        for e in doc.get("manifests") or []:
            raw = e.get("platform") if isinstance(e, dict) else None
            p: dict[str, Any] = raw if isinstance(raw, dict) else {}
            out.append(_platform_json(p))
        return out or None
    config = doc.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("digest"), str):
        return None
    try:
        cfg = json.loads(await _fetch_small(client, repo, config, Path()))
    except (BerthError, ValueError, RecursionError):
        return None  # as dockerd: a config it cannot read gives no platform
    if not isinstance(cfg, dict) or not (cfg.get("os") or cfg.get("architecture")):
        return None
    return [_platform_json(cfg)]


def _platform_json(p: dict[str, Any]) -> dict[str, Any]:
    """An OCI Platform's JSON: architecture and os always, the rest when set."""
    out: dict[str, Any] = {"architecture": str(p.get("architecture") or ""), "os": str(p.get("os") or "")}
    if p.get("os.version"):
        out["os.version"] = str(p["os.version"])
    if isinstance(p.get("os.features"), list) and p["os.features"]:
        out["os.features"] = [str(f) for f in p["os.features"]]
    if p.get("variant"):
        out["variant"] = str(p["variant"])
    return out


def _choose(entries: list[Any], platform: Platform) -> str | None:
    best: tuple[int, str] | None = None
    for e in entries:
        if not isinstance(e, dict) or not isinstance(e.get("digest"), str):
            continue
        raw = e.get("platform")
        p: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if p.get("os") != platform.os or _normalize_arch(str(p.get("architecture", ""))) != platform.architecture:
            continue
        variant = str(p.get("variant", ""))
        score = 2 if variant == platform.variant else (1 if not platform.variant or not variant else 0)
        if score and (best is None or score > best[0]):
            best = (score, e["digest"])
    return best[1] if best else None


def _decompressed(raw: BinaryIO, media_type: str) -> BinaryIO:
    """The layer's tar from its blob: zstd by media type; gzip and plain tar as they are."""
    if media_type.endswith(("+zstd", ".zstd")):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(raw, closefd=False)
    # gzip (and a plain tar) as it is: the layer's reader recognises gzip by its magic bytes and
    # decompresses it with zlib directly, twice as fast as a GzipFile here would
    return raw


class _Counting:
    """A read-only file that reports how far its underlying compressed file has been read."""

    def __init__(self, inner: BinaryIO, raw: Follower, report: Callable[[int], None]) -> None:
        self.inner, self.raw, self.report = inner, raw, report

    def read(self, n: int = -1) -> bytes:
        data = self.inner.read(n)
        self.report(self.raw.tell())
        return data

    def __enter__(self) -> _Counting:
        return self

    def __exit__(self, *exc: object) -> None:
        self.inner.close()
        self.raw.close()


async def pull(
    client: RegistryClient,
    store: PullStore,
    repo: str,
    ref: str,
    repo_tag: str,
    full_name: str,
    progress: Progress,
    partial_dir: Path,
    platform: Platform = Platform(),
    max_concurrent: int = 3,
) -> PullResult:
    """Pull ``repo`` (the path on the registry) at ``ref`` (tag or digest); tag the image
    ``repo_tag`` (may be "" for a digest pull) and record ``full_name@digest`` as its repo digest."""
    manifest_digest, manifest, named = await resolve_manifest(client, repo, ref, platform)
    config_desc, layers_desc = _image_parts(manifest)
    progress.status(f"Pulling from {repo}", id=ref)
    config = await _fetch_small(client, repo, config_desc, partial_dir)
    doc = _config_json(config)
    diff_ids = doc["rootfs"]["diff_ids"]
    if len(diff_ids) != len(layers_desc):
        raise InvalidParameter(f"image {manifest_digest}: {len(layers_desc)} layers but {len(diff_ids)} diff ids")
    before = await asyncio.to_thread(store.image_for_tag, repo_tag) if repo_tag else None
    present = await asyncio.to_thread(store.present_layers, diff_ids)
    partial_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    arrivals: dict[Digest, Arrival] = {}  # a blob listed twice is downloaded once
    layers = []
    for i, d in enumerate(layers_desc):
        digest = Digest.parse(d["digest"])
        arrival = arrivals.setdefault(digest, Arrival(partial_dir / f"{digest.algorithm}-{digest.encoded}",
                                                      f"layer {digest}"))
        layers.append(_Layer(i, digest, d["mediaType"], d["size"], digest.encoded[:12], arrival))
    for layer in layers[:present]:
        progress.status("Already exists", layer.short, detail=True)
    todo = layers[present:]
    for layer in todo:
        progress.status("Pulling fs layer", layer.short, detail=True)
    gate = asyncio.Semaphore(max(1, max_concurrent))
    cancel = threading.Event()

    async def download(layer: _Layer) -> None:
        try:
            if gate.locked():
                progress.status("Waiting", layer.short, detail=True)
            async with gate:
                await fetch_blob(client, repo, layer.digest, layer.arrival.path, layer.size,
                                 lambda n: progress.bar("Downloading", layer.short, n, layer.size), layer.arrival)
                progress.status("Verifying Checksum", layer.short, detail=True)
                progress.status("Download complete", layer.short, detail=True)
            layer.arrival.verified()
        except BaseException as exc:
            layer.arrival.failed(exc)
            raise

    def open_layer(index: int) -> BinaryIO:
        # The layer is unpacked while it downloads: the reader follows the file and sees its
        # end only once the blob's digest matched (a mismatch is an error in the unpacking).
        layer = layers[index]
        raw = layer.arrival.reader(cancel)
        inner = _decompressed(raw, layer.media_type)  # type: ignore[arg-type]  # a read-only file
        size = layer.size
        last = [0.0]

        def report(n: int) -> None:
            # "Extracting" once the download is complete (Docker's order), at most every BAR_INTERVAL
            now = time.monotonic()
            if layer.arrival.done and (now - last[0] >= BAR_INTERVAL or n >= size):
                last[0] = now
                progress.threadsafe_bar("Extracting", layer.short, n, size)

        return _Counting(inner, raw, report)  # type: ignore[return-value]

    first = {layer.arrival: layer for layer in reversed(todo)}
    tasks = [asyncio.create_task(download(layer)) for layer in first.values()]
    create = asyncio.create_task(asyncio.to_thread(store.create_image, config, open_layer, repo_tag))
    try:
        await asyncio.gather(*tasks)
        image_id = await create
    except BaseException:
        cancel.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, create, return_exceptions=True)
        raise
    kept = set()
    for layer in todo:
        progress.status("Pull complete", layer.short, detail=True)
        if layer.digest not in kept:
            kept.add(layer.digest)
            await asyncio.to_thread(store.keep_blob, layer.arrival.path, str(layer.digest), diff_ids[layer.index],
                                    layer.media_type, layer.size)
    await asyncio.to_thread(store.add_digest, image_id, full_name, named)
    await asyncio.to_thread(store.record_sources, [config_desc["digest"], *(str(layer.digest) for layer in layers)],
                            full_name)
    return PullResult(image_id, named, before != image_id)


def _image_parts(manifest: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    config = manifest.get("config")
    layers = manifest.get("layers")
    if not isinstance(config, dict) or not isinstance(layers, list):
        raise InvalidParameter("image manifest lacks config or layers")
    for d in [config, *layers]:
        if not isinstance(d, dict) or not isinstance(d.get("digest"), str) or not isinstance(d.get("mediaType"), str) \
                or not isinstance(d.get("size"), int) or d["size"] < 0:
            raise InvalidParameter("image manifest has a malformed descriptor")
        Digest.parse(d["digest"])
        if mt.is_nondistributable(d["mediaType"]):
            raise InvalidParameter(f"layer {d['digest']} is non-distributable: berth cannot pull it")
        known = d is config or d["mediaType"].endswith(("tar", "tar+gzip", "tar.gzip", "tar+zstd", "diff.tar.gzip"))
        if not known:
            raise InvalidParameter(f"unsupported layer media type {d['mediaType'][:100]!r}")
    if config["size"] > MAX_CONFIG:
        raise InvalidParameter(f"image config is larger than {MAX_CONFIG} bytes")
    return config, layers


async def _fetch_small(client: RegistryClient, repo: str, desc: dict[str, Any], partial_dir: Path) -> bytes:
    digest = Digest.parse(desc["digest"])
    async with client.blob(repo, digest) as resp:
        data = await resp.content.read(MAX_CONFIG + 1)
    if len(data) > MAX_CONFIG:
        raise InvalidParameter(f"image config {digest} is larger than {MAX_CONFIG} bytes")
    if Digest.from_bytes(data, digest.algorithm) != digest:
        raise InvalidParameter(f"image config verification failed for digest {digest}")
    return data


def _config_json(config: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(config)
    except (ValueError, RecursionError):
        raise InvalidParameter("image config is not JSON") from None
    rootfs = doc.get("rootfs") if isinstance(doc, dict) else None
    if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids"), list) \
            or not all(isinstance(d, str) for d in rootfs["diff_ids"]):
        raise InvalidParameter("image config has no rootfs.diff_ids")
    checked: dict[str, Any] = doc
    return checked
