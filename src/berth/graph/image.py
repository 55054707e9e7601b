"""Image configs: the JSON document whose sha256 is the image id.

The model is Docker's image config (a superset of the OCI image config)::

    {"architecture": "amd64", "comment": "Imported from -", "config": {...container config...},
     "container_config": {...}, "created": "2026-11-28T04:29:50.514306475Z", "os": "linux",
     "rootfs": {"type": "layers", "diff_ids": ["sha256:..."]},
     "history": [{"created": "...", "comment": "Imported from -"}]}

The id is ``sha256:`` + sha256 of the exact bytes stored, so the bytes are produced once
(:func:`encode`) and never re-serialised. The container config carries Docker's zero values
(``"Env": null``) so inspect shows what ``docker image inspect`` shows.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import re
import time
from typing import Any

# Docker's container.Config, in Go's field order; None/"" values are Go's zero values.
_CONFIG_FIELDS: tuple[tuple[str, Any, bool], ...] = (
    # (name, zero value, omitted when empty)
    ("Hostname", "", False),
    ("Domainname", "", False),
    ("User", "", False),
    ("AttachStdin", False, False),
    ("AttachStdout", False, False),
    ("AttachStderr", False, False),
    ("ExposedPorts", None, True),
    ("Tty", False, False),
    ("OpenStdin", False, False),
    ("StdinOnce", False, False),
    ("Env", None, False),
    ("Cmd", None, False),
    ("Healthcheck", None, True),
    ("ArgsEscaped", False, True),
    ("Image", "", False),
    ("Volumes", None, False),
    ("WorkingDir", "", False),
    ("Entrypoint", None, False),
    ("NetworkDisabled", False, True),
    ("MacAddress", "", True),
    ("OnBuild", None, False),
    ("Labels", None, False),
    ("StopSignal", "", True),
    ("StopTimeout", None, True),
    ("Shell", None, True),
)

ZERO_TIME = "0001-01-01T00:00:00Z"
_STRSLICE_FIELDS = ("Cmd", "Entrypoint", "Shell")


def container_config(values: dict[str, Any] | None = None) -> dict[str, Any]:
    """A container config in Docker's shape: every field, Go's order, zero values filled in."""
    values = values or {}
    out: dict[str, Any] = {}
    for name, zero, omit_empty in _CONFIG_FIELDS:
        value = values.get(name, zero)
        if omit_empty and not value:
            continue
        if name in _STRSLICE_FIELDS and isinstance(value, str):
            value = [value]  # Docker's strslice: one string is a list of one
        out[name] = value
    for name, value in values.items():  # keep fields newer than this table
        if name not in out and value not in (None, "", False, [], {}):
            out[name] = value
    return out


def go_arch() -> tuple[str, str]:
    """(GOARCH, variant) of this machine: ``("amd64", "")``, ``("arm", "v7")``."""
    machine = platform.machine().lower()
    table = {
        "x86_64": ("amd64", ""),
        "amd64": ("amd64", ""),
        "aarch64": ("arm64", ""),
        "arm64": ("arm64", ""),
        "armv7l": ("arm", "v7"),
        "armv6l": ("arm", "v6"),
        "i386": ("386", ""),
        "i686": ("386", ""),
        "ppc64le": ("ppc64le", ""),
        "s390x": ("s390x", ""),
        "riscv64": ("riscv64", ""),
    }
    return table.get(machine, (machine, ""))


def new_config(
    *,
    diff_ids: list[str],
    config: dict[str, Any],
    created_ns: int,
    comment: str = "",
    created_by: str = "",
    author: str = "",
    parent_config: dict[str, Any] | None = None,
    container: str = "",
    container_config_values: dict[str, Any] | None = None,
    empty_layer: bool = False,
) -> dict[str, Any]:
    """A new image config; with ``parent_config`` the history is the parent's plus one entry."""
    created = rfc3339_nano(created_ns)
    architecture, variant = go_arch()
    doc: dict[str, Any] = {}
    if comment and parent_config is None:
        doc["comment"] = comment  # Docker sets the top-level comment on imports only
    doc["created"] = created
    if container:
        doc["container"] = container
    doc["container_config"] = container_config(container_config_values)
    if author:
        doc["author"] = author
    doc["config"] = container_config(config)
    doc["architecture"] = architecture
    if variant:
        doc["variant"] = variant
    doc["os"] = "linux"
    doc["rootfs"] = {"type": "layers", "diff_ids": list(diff_ids)}
    entry: dict[str, Any] = {"created": created}
    if author:
        entry["author"] = author
    if created_by:
        entry["created_by"] = created_by
    if comment:
        entry["comment"] = comment
    if empty_layer:
        entry["empty_layer"] = True
    history = list((parent_config or {}).get("history") or [])
    doc["history"] = history + [entry]
    return doc


def encode(doc: dict[str, Any]) -> bytes:
    """The canonical bytes of a config document as Docker writes them: compact JSON, top-level
    keys sorted (Docker re-marshals a map), nested objects in their own (Go field) order."""
    ordered = {key: doc[key] for key in sorted(doc)}
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in _GO_ESCAPES:  # these occur only inside JSON strings
        text = text.replace(char, escaped)
    return text.encode()


# Go's encoding/json escapes these (HTML-safe output); Docker's config bytes carry them so.
_GO_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


def image_id(config_bytes: bytes) -> str:
    return "sha256:" + hashlib.sha256(config_bytes).hexdigest()


def chain_id(parent_chain: str | None, diff_id: str) -> str:
    """OCI ChainID: the first layer's is its diff id; then sha256(parent + " " + diff id)."""
    if not parent_chain:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent_chain} {diff_id}".encode()).hexdigest()


def chain_ids(diff_ids: list[str]) -> list[str]:
    out: list[str] = []
    for diff_id in diff_ids:
        out.append(chain_id(out[-1] if out else None, diff_id))
    return out


def now_ns() -> int:
    return time.time_ns()


def rfc3339_nano(ns: int) -> str:
    """Go's ``time.RFC3339Nano`` in UTC: trailing zeros of the fraction dropped."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    stamp = _dt.datetime.fromtimestamp(seconds, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        stamp += "." + f"{fraction:09d}".rstrip("0")
    return stamp + "Z"


_RFC3339_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)


def parse_rfc3339(text: str) -> int:
    """Nanoseconds since the epoch for an RFC 3339 time (any fraction length, any offset)."""
    match = _RFC3339_RE.match(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction = int((match.group(7) or "0")[:9].ljust(9, "0"))
    try:
        moment = _dt.datetime(year, month, day, hour, minute, second, tzinfo=_dt.UTC)
        if match.group(9):
            offset = _dt.timedelta(hours=int(match.group(10)), minutes=int(match.group(11)))
            moment -= offset if match.group(9) == "+" else -offset
    except OverflowError:  # an offset that leaves years 1..9999
        raise ValueError(f"not an RFC 3339 time in years 1 to 9999: {text!r}") from None
    return int(moment.timestamp()) * 1_000_000_000 + fraction


INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def sortable_ns(created: str | None) -> int:
    """Nanoseconds since the epoch for the images table (SQLite INTEGER is 64-bit): 0 when the
    config has no ``created`` (optional in OCI), clamped to 1677..2262 for times beyond."""
    if not created:
        return 0
    return min(max(parse_rfc3339(created), INT64_MIN), INT64_MAX)
