"""``os/arch[/variant]`` platform strings (the create and pull ``platform`` parameter), parsed and
normalised as containerd's ``platforms.Parse`` does, and matched against an image (pure)::

    >>> parse("x86_64")
    Platform(os='linux', architecture='amd64', variant='')
    >>> parse("linux/armhf").format(), matches(parse("linux/amd64/v3"), {"os": "linux", "architecture": "amd64"})
    ('linux/arm/v7', True)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from berth.errors import InvalidParameter

KNOWN_OS = frozenset(
    "aix android darwin dragonfly freebsd hurd illumos ios js linux nacl netbsd openbsd plan9 solaris windows zos".split()
)
KNOWN_ARCH = frozenset(
    "386 amd64 amd64p32 arm armbe arm64 arm64be ppc64 ppc64le loong64 mips mipsle mips64 mips64le mips64p32 "
    "mips64p32le ppc riscv riscv64 s390 s390x sparc sparc64 wasm".split()
)
_COMPONENT = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def format(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def _arch(arch: str, variant: str) -> tuple[str, str]:
    arch, variant = arch.lower(), variant.lower()
    if arch in ("i386",):
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        return "arm64", "" if variant in ("8", "v8") else variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            return "arm", "v7"
        if variant in ("5", "6", "8"):
            return "arm", "v" + variant
    return arch, variant


def host_arch() -> str:
    return _arch(os.uname().machine, "")[0]


def parse(text: str) -> Platform:
    """A platform string as containerd reads it; InvalidParameter with containerd's text."""
    parts = text.split("/")
    for part in parts:
        if not _COMPONENT.match(part):
            raise InvalidParameter(
                f'"{part}" is an invalid component of "{text}": platform specifier component must match '
                '"^[A-Za-z0-9_-]+$": invalid argument'
            )
    if len(parts) == 1:
        word = parts[0].lower()
        if word in KNOWN_OS or word == "macos":
            return Platform("darwin" if word == "macos" else word, host_arch())
        arch, variant = _arch(word, "")
        if arch in KNOWN_ARCH:
            return Platform("linux", arch, variant)
        raise InvalidParameter(f'"{text}": unknown operating system or architecture: invalid argument')
    if len(parts) in (2, 3):
        os_name = parts[0].lower()
        arch, variant = _arch(parts[1], parts[2] if len(parts) == 3 else "")
        return Platform("darwin" if os_name == "macos" else os_name, arch, variant)
    raise InvalidParameter(f'"{text}": cannot parse platform specifier: invalid argument')


def of_image(config: dict[str, Any]) -> Platform:
    """An image's platform from its config (``os``, ``architecture``, ``variant``)."""
    arch, variant = _arch(config.get("architecture") or host_arch(), config.get("variant") or "")
    return Platform((config.get("os") or "linux").lower(), arch, variant)


def matches(wanted: Platform, config: dict[str, Any]) -> bool:
    """dockerd's check of a local image: same OS and architecture; a variant counts only when
    both name one (many images record none)."""
    have = of_image(config)
    if (wanted.os, wanted.architecture) != (have.os, have.architecture):
        return False
    return not (wanted.variant and have.variant) or wanted.variant == have.variant
