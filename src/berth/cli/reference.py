"""Image references as the docker CLI treats them (``distribution/reference``, the parts it uses).

>>> split_tag("127.0.0.1:5000/bbx:v1"), split_tag("busybox")
(('127.0.0.1:5000/bbx', 'v1'), ('busybox', ''))
>>> normalize_name("busybox"), normalize_name("me/bb"), normalize_name("127.0.0.1:5000/bb")
('docker.io/library/busybox', 'docker.io/me/bb', '127.0.0.1:5000/bb')
>>> familiar_name("docker.io/library/busybox")
'busybox'
"""

from __future__ import annotations

from berth.errors import InvalidParameter

_PATH_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~/:@")


def path_escape(name: str) -> str:
    """Escape a name for a URL path, keeping ``/ : @`` (image names contain them)."""
    return "".join(chr(b) if b in _PATH_SAFE else f"%{b:02X}" for b in name.encode())


def split_digest(ref: str) -> tuple[str, str]:
    name, _, digest = ref.partition("@")
    return name, digest


def split_tag(ref: str) -> tuple[str, str]:
    """(name, tag); the tag is after the last ``:`` that comes after the last ``/``."""
    name, _ = split_digest(ref)
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :]
    return name, ""


def _has_domain(name: str) -> bool:
    first, sep, _ = name.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost" or first != first.lower())


def normalize_name(name: str) -> str:
    if not name or name != name.strip() or any(c.isspace() for c in name):
        raise InvalidParameter(f'invalid reference format: "{name}"')
    if _has_domain(name):
        return name
    if "/" not in name:
        return f"docker.io/library/{name}"
    return f"docker.io/{name}"


def familiar_name(name: str) -> str:
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/", "index.docker.io/"):
        if name.startswith(prefix):
            rest = name[len(prefix) :]
            if prefix.endswith("library/") or "/" in rest:
                return rest
    return name
