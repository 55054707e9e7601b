"""Checking an image config or a ``docker load`` manifest from outside before anything is written.

The model: a config that comes from an archive or a registry is read by many later operations
(inspect, history, run, save), so every field berth reads is checked here, once, for its JSON
type; a config that passes cannot make a later operation fail. Fields berth does not read are
left alone, as Docker does. Optional fields follow OCI: ``created`` may be absent; a present
one must be an RFC 3339 time (any year, 0001 included). Every failure is an
``InvalidParameter`` that names the field::

    doc = parse_json(data, "load: abc.json", MAX_CONFIG_SIZE)
    diff_ids = check_config(doc, "load: abc.json")        # ['sha256:...', ...]
"""

from __future__ import annotations

import re
from typing import Any

from berth import jsondoc
from berth.errors import InvalidParameter
from berth.graph.image import parse_rfc3339

MAX_CONFIG_SIZE = 8 << 20  # an image config or a load manifest; real ones are a few KB
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")

# container config fields berth reads, with the JSON type each must have (None is always allowed)
_CONTAINER_FIELDS: dict[str, str] = {
    "Hostname": "str", "Domainname": "str", "User": "str", "Env": "strs", "Cmd": "strslice",
    "Entrypoint": "strslice", "WorkingDir": "str", "Labels": "strmap", "ExposedPorts": "map",
    "Volumes": "map", "StopSignal": "str", "OnBuild": "strs", "Shell": "strslice", "Healthcheck": "map",
    "StopTimeout": "int", "Tty": "bool", "OpenStdin": "bool", "StdinOnce": "bool",
    "AttachStdin": "bool", "AttachStdout": "bool", "AttachStderr": "bool", "ArgsEscaped": "bool",
    "Image": "str",
}
_TOP_STRINGS = ("architecture", "os", "variant", "author", "comment", "container", "docker_version")
_HISTORY_STRINGS = ("created", "created_by", "author", "comment")


def parse_json(data: bytes, what: str, limit: int = MAX_CONFIG_SIZE) -> Any:
    """``data`` as JSON; too big, malformed or nested too deep is an InvalidParameter."""
    if len(data) > limit:
        raise InvalidParameter(f"{what}: {len(data)} bytes of JSON (the limit is {limit})")
    return jsondoc.loads(data, what)


def check_config(doc: Any, what: str) -> list[str]:
    """Check an image config document; return its ``rootfs.diff_ids``."""
    if not isinstance(doc, dict):
        raise InvalidParameter(f"{what}: an image config must be a JSON object, not {json_kind(doc)}")
    rootfs = doc.get("rootfs")
    if not isinstance(rootfs, dict):
        raise InvalidParameter(f"{what}: rootfs must be an object with type and diff_ids")
    if rootfs.get("type") != "layers":
        raise InvalidParameter(f"{what}: rootfs.type must be \"layers\", not {rootfs.get('type')!r:.40}")
    diff_ids = rootfs.get("diff_ids") or []
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) and _DIGEST.match(d) for d in diff_ids):
        raise InvalidParameter(f"{what}: rootfs.diff_ids must be a list of sha256:<64 hex> digests")
    created = doc.get("created")
    if created is not None:
        _check_time(created, f"{what}: created")
    for key in _TOP_STRINGS:
        _check(doc.get(key), "str", f"{what}: {key}")
    for key in ("config", "container_config"):
        section = doc.get(key)
        if section is None:
            continue
        if not isinstance(section, dict):
            raise InvalidParameter(f"{what}: {key} must be an object, not {json_kind(section)}")
        for name, kind in _CONTAINER_FIELDS.items():
            _check(section.get(name), kind, f"{what}: {key}.{name}")
    history = doc.get("history")
    if history is not None:
        if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
            raise InvalidParameter(f"{what}: history must be a list of objects")
        for index, entry in enumerate(history):
            for key in _HISTORY_STRINGS:
                _check(entry.get(key), "str", f"{what}: history[{index}].{key}")
            if entry.get("created") is not None:
                _check_time(entry["created"], f"{what}: history[{index}].created")
            _check(entry.get("empty_layer"), "bool", f"{what}: history[{index}].empty_layer")
    return list(diff_ids)


def _check_time(value: Any, what: str) -> None:
    if not isinstance(value, str):
        raise InvalidParameter(f"{what} must be an RFC 3339 time string, not {json_kind(value)}")
    try:
        parse_rfc3339(value)
    except ValueError as exc:
        raise InvalidParameter(f"{what}: {exc}") from None


def _check(value: Any, kind: str, what: str) -> None:
    if value is None:
        return
    ok = {
        "str": lambda v: isinstance(v, str),
        "bool": lambda v: isinstance(v, bool),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "strs": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        # Docker's strslice: a list of strings, or one string
        "strslice": lambda v: isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v)),
        "map": lambda v: isinstance(v, dict),
        "strmap": lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
    }[kind](value)
    if not ok:
        want = {"str": "a string", "bool": "a boolean", "int": "an integer", "strs": "a list of strings",
                "strslice": "a string or a list of strings", "map": "an object", "strmap": "an object of strings"}[kind]
        raise InvalidParameter(f"{what} must be {want}, not {json_kind(value)}")


def json_kind(value: Any) -> str:
    """How a message names a JSON value's type: ``null``, ``a number``, ``an object``..."""
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)
