"""Docker image references: parse, normalise, and print the familiar form.

The model is distribution/reference's grammar: ``[domain/]path[:tag][@digest]``. A reference
is stored normalised (``busybox`` -> ``docker.io/library/busybox:latest``) and shown in its
familiar form (``busybox:latest``, ``127.0.0.1:5000/bbx:v1``)::

    >>> ref = parse("busybox")
    >>> ref.name, ref.tag, ref.familiar()
    ('docker.io/library/busybox', 'latest', 'busybox:latest')

Image ids are ``sha256:<64 hex>``; a bare 64-hex string is an id, never a repository name.
Malformed input raises ``InvalidParameter`` with Docker's text ``invalid reference format``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from berth.errors import InvalidParameter

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]*)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_REFERENCE_RE = re.compile(
    rf"^((?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)(?::({_TAG}))?(?:@({_DIGEST}))?$"
)
_ANY_CASE_NAME_RE = re.compile(
    rf"^((?:{_DOMAIN}/)?[a-zA-Z0-9]+(?:{_SEPARATOR}[a-zA-Z0-9]+)*(?:/[a-zA-Z0-9]+(?:{_SEPARATOR}[a-zA-Z0-9]+)*)*)"
    rf"(?::({_TAG}))?(?:@({_DIGEST}))?$"
)
_DOMAIN_RE = re.compile(rf"^{_DOMAIN}$")
_PATH_RE = re.compile(rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$")
_TAG_RE = re.compile(rf"^{_TAG}$")
_HEX64_RE = re.compile(r"^[a-f0-9]{64}$")
_ID_PREFIX_RE = re.compile(r"^(?:sha256:)?[a-f0-9]{1,64}$")

INVALID = "invalid reference format"


@dataclass(frozen=True)
class Reference:
    """A normalised reference: ``name`` is ``domain/path``; tag and digest may be empty."""

    name: str
    tag: str = ""
    digest: str = ""

    @property
    def domain(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def path(self) -> str:
        return self.name.split("/", 1)[1]

    def string(self) -> str:
        """The full normalised form: ``docker.io/library/busybox:latest``."""
        return self.name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def familiar_name(self) -> str:
        """``busybox`` for ``docker.io/library/busybox``; other registries stay whole."""
        return familiar_name(self.name)

    def familiar(self) -> str:
        """``busybox:latest``, ``127.0.0.1:5000/bbx:v1``, ``busybox@sha256:...``."""
        out = self.familiar_name()
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    def with_default_tag(self) -> Reference:
        """Docker's ``TagNameOnly``: add ``latest`` unless a tag or digest is present."""
        if self.tag or self.digest:
            return self
        return Reference(self.name, DEFAULT_TAG, "")


def familiar_name(name: str) -> str:
    """Strip ``docker.io/`` and ``library/`` from a normalised repository name."""
    if name.startswith(DEFAULT_DOMAIN + "/"):
        rest = name[len(DEFAULT_DOMAIN) + 1 :]
        if rest.startswith(OFFICIAL_PREFIX) and rest.count("/") == 1:
            rest = rest[len(OFFICIAL_PREFIX) :]
        return rest
    return name


def _split_domain(name: str) -> tuple[str, str]:
    """Docker's ``splitDockerDomain``: the first component is a domain if it looks like one."""
    first, sep, rest = name.partition("/")
    if not sep or (not any(c in first for c in ".:") and first != "localhost" and first.lower() == first):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, rest
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_PREFIX + remainder
    return domain, remainder


def parse(text: str) -> Reference:
    """Parse and normalise ``text`` (Docker's ``ParseNormalizedNamed``); no default tag added."""
    if not text:
        raise InvalidParameter(INVALID)
    if _HEX64_RE.match(text):
        raise InvalidParameter(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    match = _REFERENCE_RE.match(text)
    if match is None:
        loose = _ANY_CASE_NAME_RE.match(text)
        if loose is not None and loose.group(1).lower() != loose.group(1):
            raise InvalidParameter(f"{INVALID}: repository name ({loose.group(1)}) must be lowercase")
        raise InvalidParameter(INVALID)
    raw_name, tag, digest = match.group(1), match.group(2) or "", match.group(3) or ""
    domain, remainder = _split_domain(raw_name)
    if not _DOMAIN_RE.match(domain) or not _PATH_RE.match(remainder):
        if remainder.lower() != remainder:
            raise InvalidParameter(f"{INVALID}: repository name ({remainder}) must be lowercase")
        raise InvalidParameter(INVALID)
    name = f"{domain}/{remainder}"
    if len(name) > NAME_TOTAL_MAX:
        raise InvalidParameter(
            f"{INVALID}: repository name must not be more than {NAME_TOTAL_MAX} characters"
        )
    if digest:
        digest = _check_digest(digest)
    return Reference(name, tag, digest)


def parse_tagged(text: str) -> Reference:
    """Parse ``text`` and add the default tag ``latest`` when it has neither tag nor digest."""
    return parse(text).with_default_tag()


def parse_repository(repo: str, tag: str = "") -> Reference:
    """Parse a ``repo`` plus a separate ``tag`` (``POST /images/x/tag?repo=..&tag=..``).

    The repo may carry its own tag (``docker import`` puts it there); a separate ``tag`` wins.
    """
    ref = parse(repo)
    if ref.digest:
        raise InvalidParameter(f"{INVALID}: cannot tag with a digest reference {repo}")
    if ref.familiar_name() == "sha256":
        # "sha256:<hex>" would read as an image id (dockerd's reference store refuses it too)
        raise InvalidParameter("refusing to create an ambiguous tag using digest algorithm as name")
    if tag:
        if not _TAG_RE.match(tag):
            raise InvalidParameter(f"{INVALID}: tag {tag!r} is not valid")
        return Reference(ref.name, tag, "")
    return ref.with_default_tag()


def _check_digest(digest: str) -> str:
    algorithm, _, hex_part = digest.partition(":")
    if algorithm == "sha256" and not _HEX64_RE.match(hex_part):
        raise InvalidParameter(f"{INVALID}: invalid checksum digest length")
    if algorithm not in ("sha256", "sha384", "sha512"):
        raise InvalidParameter(f"{INVALID}: unsupported digest algorithm")
    return digest


def full_id(text: str) -> str | None:
    """``sha256:<hex>`` when ``text`` is a full image id (with or without the prefix), else None."""
    hex_part = text[len("sha256:") :] if text.startswith("sha256:") else text
    if _HEX64_RE.match(hex_part):
        return "sha256:" + hex_part
    return None


def id_prefix(text: str) -> str | None:
    """The hex part of a possible short id (``5e38``, ``sha256:5e38``), or None."""
    if _ID_PREFIX_RE.match(text):
        return text[len("sha256:") :] if text.startswith("sha256:") else text
    return None


def short_id(image_id: str) -> str:
    """The 12-character form Docker prints: ``5e38fda097eb``."""
    return image_id.removeprefix("sha256:")[:12]


def is_id_prefix(image_id: str, text: str) -> bool:
    """Docker's ``isImageIDPrefix``: ``text`` names the image by (a prefix of) its id."""
    return image_id.startswith(text) or image_id.removeprefix("sha256:").startswith(text)
