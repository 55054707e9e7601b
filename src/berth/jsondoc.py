"""JSON from outside (request bodies, archive manifests, image configs), parsed with bounds.

The model: Python's ``json`` parser recurses, so a document nested some thousand levels deep
raises ``RecursionError``, and one a little shallower parses but breaks whatever later recurses
over it (``json.dumps`` of a record, ``copy.deepcopy``). :func:`loads` turns every way a
document can be bad into an ``InvalidParameter`` and refuses nesting deeper than
:data:`MAX_DEPTH`, far beyond any Docker API body or image config (they nest 5 or 6 deep)::

    loads(b'{"Image": "busybox"}', "container create")     # {'Image': 'busybox'}
    loads(b"[" * 100_000, "container create")              # InvalidParameter
"""

from __future__ import annotations

import json
from typing import Any

from berth.errors import InvalidParameter

MAX_DEPTH = 100


def loads(data: bytes | str, what: str, max_depth: int = MAX_DEPTH) -> Any:
    """``data`` parsed; malformed or nested deeper than ``max_depth`` is an InvalidParameter
    whose message starts with ``what``."""
    try:
        doc = json.loads(data)
    except RecursionError:
        raise InvalidParameter(f"{what}: invalid JSON: nested more than {max_depth} levels deep") from None
    except ValueError as exc:  # JSONDecodeError, and UnicodeDecodeError for bytes that are not UTF-8
        raise InvalidParameter(f"{what}: invalid JSON: {exc}") from None
    if depth(doc, max_depth) > max_depth:
        raise InvalidParameter(f"{what}: invalid JSON: nested more than {max_depth} levels deep")
    return doc


def depth(doc: Any, stop: int) -> int:
    """How deep ``doc`` nests (a scalar is 0, ``[]`` is 1), without recursion; counting stops
    once past ``stop``."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(doc, 1)]
    while pending:
        node, level = pending.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        if deepest > stop:
            return deepest
        pending.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def go_fields(doc: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """``doc`` with its keys matched to ``fields`` as Go's encoding/json fills a struct: a key
    names the field it equals, else the one it equals case-insensitively (``detachKeys`` fills
    ``DetachKeys``, as docker-py sends it), and a later key for the same field wins; keys that
    match no field are kept as they are."""
    by_fold = {f.casefold(): f for f in fields}
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name = key if key in fields else by_fold.get(key.casefold(), key)
        out.pop(name, None)
        out[name] = value
    return out
