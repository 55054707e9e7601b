"""The API's version constants, importable without aiohttp (the early listener needs them)."""

from __future__ import annotations

API_VERSION = "1.45"
MIN_API_VERSION = "1.24"
MAX_ACCEPTED_VERSION = (1, 99)  # tolerate newer clients' paths rather than answering 400
SERVER = "Berth/0.1.0 (linux)"


def parse_version(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)
