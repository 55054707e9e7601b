"""Reading a pushed manifest: what it is, what it references, and whether it is acceptable.

Pure functions over the bytes the client sent (hostile input: size, nesting, shapes)::

    info = parse_manifest(body, content_type)   # ManifestInfo(media_type, blobs, manifests, subject, ...)
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from berth.errors import InvalidParameter
from berth.registry import mediatypes as mt
from berth.registry.digest import Digest

MAX_MANIFEST_BYTES = 4 << 20  # the distribution spec's recommended limit


@dataclass(frozen=True)
class ManifestInfo:
    media_type: str
    blobs: tuple[Digest, ...]  # config and layers that must be in the repository
    manifests: tuple[Digest, ...]  # manifests an index lists (must be in the repository)
    optional: tuple[Digest, ...]  # referenced but need not be held (non-distributable layers)
    subject: Digest | None
    artifact_type: str
    annotations: dict[str, str]


def parse_manifest(body: bytes, content_type: str) -> ManifestInfo:
    """Check a manifest's shape; InvalidParameter says what is wrong."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InvalidParameter(f"manifest is not JSON: {str(exc)[:200]}") from None
    if not isinstance(doc, dict):
        raise InvalidParameter("manifest is not a JSON object")
    declared = doc.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise InvalidParameter("mediaType is not a string")
    media_type = _media_type(content_type, declared, doc)
    if media_type not in mt.MANIFEST_TYPES:
        raise InvalidParameter(f"unsupported manifest media type {media_type[:200]!r}")
    if declared and content_type and declared != content_type and content_type in mt.MANIFEST_TYPES:
        raise InvalidParameter(f"mediaType {declared!r} does not match Content-Type {content_type!r}")
    if doc.get("schemaVersion") != 2:
        raise InvalidParameter("schemaVersion must be 2")
    subject = _descriptor(doc["subject"], "subject").digest if doc.get("subject") is not None else None
    artifact_type = doc.get("artifactType") or ""
    if not isinstance(artifact_type, str):
        raise InvalidParameter("artifactType is not a string")
    annotations = _annotations(doc.get("annotations"), "annotations")
    blobs: list[Digest] = []
    manifests: list[Digest] = []
    optional: list[Digest] = []
    if media_type in mt.INDEX_TYPES:
        children = doc.get("manifests")
        if not isinstance(children, list):
            raise InvalidParameter("manifests is not a list")
        manifests = [_descriptor(child, f"manifests[{i}]").digest for i, child in enumerate(children)]
    else:
        config = _descriptor(doc.get("config"), "config")
        if not artifact_type:
            artifact_type = config.media_type  # the referrers API's rule for images
        blobs.append(config.digest)
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise InvalidParameter("layers is not a list")
        for i, layer in enumerate(layers):
            desc = _descriptor(layer, f"layers[{i}]")
            (optional if mt.is_nondistributable(desc.media_type) else blobs).append(desc.digest)
    return ManifestInfo(media_type, tuple(blobs), tuple(manifests), tuple(optional), subject,
                        artifact_type, annotations)


@dataclass(frozen=True)
class _Desc:
    media_type: str
    digest: Digest


def _descriptor(obj: object, where: str) -> _Desc:
    if not isinstance(obj, dict):
        raise InvalidParameter(f"{where} is not a descriptor object")
    media_type, digest, size = obj.get("mediaType"), obj.get("digest"), obj.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise InvalidParameter(f"{where}.mediaType is missing")
    if not isinstance(digest, str):
        raise InvalidParameter(f"{where}.digest is missing")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidParameter(f"{where}.size is not a non-negative integer")
    return _Desc(media_type, Digest.parse(digest))


def _annotations(obj: object, where: str) -> dict[str, str]:
    if obj is None:
        return {}
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in obj.items()):
        raise InvalidParameter(f"{where} is not a map of strings")
    return dict(obj)


def _media_type(content_type: str, declared: str | None, doc: dict[str, object]) -> str:
    """The manifest's media type: the body's own, else the Content-Type, else guessed by shape."""
    if declared:
        return declared
    if content_type in mt.MANIFEST_TYPES:
        return content_type
    return mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST
