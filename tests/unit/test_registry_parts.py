"""Pure parts of the registry: digests, manifest parsing, scopes and tokens."""

from __future__ import annotations

import json

import pytest

from berth.errors import InvalidParameter
from berth.registry import mediatypes as mt
from berth.registry.digest import Digest, is_digest
from berth.registry.server.auth import Access, TokenAuth, _join_scopes, _parse_scope
from berth.registry.server.manifest import parse_manifest

HEX = "ab" * 32


def test_digest_parse() -> None:
    d = Digest.parse(f"sha256:{HEX}")
    assert (d.algorithm, d.encoded, str(d)) == ("sha256", HEX, f"sha256:{HEX}")
    assert Digest.parse("sha512:" + "0" * 128).algorithm == "sha512"
    for bad in ("sha256:" + HEX.upper(), "sha256:" + HEX[:-1], "md5:" + HEX, HEX, "sha256:../../etc/passwd", ""):
        assert not is_digest(bad), bad
    assert Digest.from_bytes(b"") == Digest.parse(
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


def desc(media_type: str, data: bytes = b"x") -> dict[str, object]:
    return {"mediaType": media_type, "digest": str(Digest.from_bytes(data)), "size": len(data)}


def test_parse_image_manifest() -> None:
    body = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": desc(mt.OCI_CONFIG, b"c"),
            "layers": [desc(mt.OCI_LAYER_GZIP, b"l"),
                       desc("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", b"n")],
            "subject": desc(mt.OCI_MANIFEST, b"s")}
    info = parse_manifest(json.dumps(body).encode(), mt.OCI_MANIFEST)
    assert info.media_type == mt.OCI_MANIFEST
    assert info.blobs == (Digest.from_bytes(b"c"), Digest.from_bytes(b"l"))
    assert info.optional == (Digest.from_bytes(b"n"),)
    assert info.subject == Digest.from_bytes(b"s")
    assert info.artifact_type == mt.OCI_CONFIG  # an image's artifact type is its config's media type


def test_parse_index_without_media_type_uses_content_type() -> None:
    body = {"schemaVersion": 2, "manifests": [desc(mt.OCI_MANIFEST, b"m")]}
    info = parse_manifest(json.dumps(body).encode(), mt.OCI_INDEX)
    assert info.media_type == mt.OCI_INDEX and info.manifests == (Digest.from_bytes(b"m"),)


@pytest.mark.parametrize("body", [
    b"null", b"[]", b'"x"', b'{"schemaVersion": 1, "mediaType": "' + mt.OCI_MANIFEST.encode() + b'"}',
    json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": {"digest": 5}, "layers": []}).encode(),
    json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": desc(mt.OCI_CONFIG),
                "layers": [{"mediaType": "x", "digest": f"sha256:{HEX}", "size": -1}]}).encode(),
    json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": "nope"}).encode(),
    json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": desc(mt.OCI_CONFIG),
                "layers": [], "annotations": {"a": 1}}).encode(),
    b"[" * 50000,
])
def test_parse_manifest_refuses(body: bytes) -> None:
    with pytest.raises(InvalidParameter):
        parse_manifest(body, mt.OCI_MANIFEST)


def test_media_type_must_match_content_type() -> None:
    body = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": desc(mt.OCI_CONFIG), "layers": []}
    with pytest.raises(InvalidParameter, match="does not match Content-Type"):
        parse_manifest(json.dumps(body).encode(), mt.OCI_INDEX)


def test_scopes() -> None:
    assert _parse_scope("repository:a/b:pull,push") == [Access("repository", "a/b", "pull"),
                                                       Access("repository", "a/b", "push")]
    assert _parse_scope("registry:catalog:*") == [Access("registry", "catalog", "*")]
    assert _parse_scope("junk") == []
    assert _join_scopes([Access("repository", "a", "pull"), Access("repository", "a", "push")]) == "repository:a:pull,push"


def test_token_signature_and_expiry() -> None:
    auth = TokenAuth(None, b"k" * 32, "svc", anonymous_pull=True)
    token = auth._sign({"exp": 2**40, "nbf": 0, "access": []})
    assert auth._verify(token) is not None
    assert TokenAuth(None, b"x" * 32, "svc", True)._verify(token) is None  # another key
    assert auth._verify(auth._sign({"exp": 1, "nbf": 0})) is None  # expired
    assert auth._verify("a.b") is None and auth._verify("a.b.c") is None


def test_blob_response_hooks_file_response() -> None:
    """BlobResponse replaces the body sending of aiohttp's FileResponse through its _sendfile hook: if an
    aiohttp release renames it, blobs would silently go out by sendfile again (docs/decisions.md)."""
    import inspect

    from aiohttp import web

    from berth.registry.server.blobsend import BlobResponse

    assert "_sendfile" in vars(web.FileResponse)
    assert "self._sendfile(" in inspect.getsource(web.FileResponse)  # and FileResponse calls it
    assert BlobResponse._sendfile is not web.FileResponse._sendfile
    assert list(inspect.signature(BlobResponse._sendfile).parameters) == list(
        inspect.signature(web.FileResponse._sendfile).parameters)
