"""The distribution spec's error codes, raised by handlers and written as its JSON body.

    raise RegistryError("BLOB_UNKNOWN", "blob unknown to registry", 404, detail=str(digest))

becomes ``404 {"errors": [{"code": "BLOB_UNKNOWN", "message": "...", "detail": "sha256:..."}]}``.
"""

from __future__ import annotations

import json

from aiohttp import web


class RegistryError(Exception):
    def __init__(self, code: str, message: str, status: int, detail: object = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status, self.detail = code, message, status, detail
        self.headers = headers or {}

    def response(self) -> web.Response:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            body["detail"] = self.detail
        headers = {"Docker-Distribution-API-Version": "registry/2.0", **self.headers}
        return web.Response(
            status=self.status, body=json.dumps({"errors": [body]}).encode(),
            content_type="application/json", headers=headers,
        )


def blob_unknown(digest: object) -> RegistryError:
    return RegistryError("BLOB_UNKNOWN", "blob unknown to registry", 404, str(digest))


def manifest_unknown(ref: str) -> RegistryError:
    return RegistryError("MANIFEST_UNKNOWN", "manifest unknown", 404, {"Tag" if ":" not in ref else "Digest": ref})


def name_unknown(repo: str) -> RegistryError:
    return RegistryError("NAME_UNKNOWN", "repository name not known to registry", 404, {"name": repo})


def name_invalid(repo: str) -> RegistryError:
    return RegistryError("NAME_INVALID", "invalid repository name", 400, {"name": repo[:300]})


def digest_invalid(message: str) -> RegistryError:
    return RegistryError("DIGEST_INVALID", "provided digest did not match uploaded content", 400, message)


def upload_unknown(upload_id: str) -> RegistryError:
    return RegistryError("BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", 404, upload_id[:100])


def manifest_invalid(message: str, status: int = 400) -> RegistryError:
    return RegistryError("MANIFEST_INVALID", "manifest invalid", status, message)


def unsupported(message: str) -> RegistryError:
    return RegistryError("UNSUPPORTED", "The operation is unsupported.", 405, message)
