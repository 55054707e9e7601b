"""``docker image prune``: delete dangling (or, with ``dangling=false``, all unused) images.

The model is Docker's ``ImagesPrune``: candidates are images without children (every image
with ``dangling=false``), minus untagged parents, minus those created after ``until`` or not
matching the ``label``/``label!`` filters, minus those a container uses. A dangling prune
deletes untagged images; an ``-a`` prune untags and deletes every candidate. The answer is
``{"ImagesDeleted": [records] | None, "SpaceReclaimed": bytes of the layers freed}``::

    prune(Stores(images, layers, content), {"dangling": ["true"], "label": ["spyprune=1"]}, users)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from berth.errors import BerthError, InvalidParameter
from berth.graph import txn
from berth.graph.changes import parse_duration
from berth.graph.filters import dangling_value, labels_match, normalise
from berth.graph.image import parse_rfc3339
from berth.graph.removal import Stores, remove_image

PRUNE_FILTERS = ("dangling", "label", "label!", "until")


def parse_until(value: str, now_ns: int | None = None) -> int:
    """An ``until`` value -- Unix seconds (``1795840368.5``), RFC 3339, or a Go duration ago
    (``24h``) -- as nanoseconds since the epoch."""
    now = time.time_ns() if now_ns is None else now_ns
    try:
        return int(float(value) * 1_000_000_000)
    except ValueError:
        pass
    try:
        return parse_rfc3339(value)
    except ValueError:
        pass
    try:
        return now - parse_duration(value)
    except InvalidParameter as exc:
        raise InvalidParameter(f'failed to parse value as time or duration: "{value}"') from exc  # dockerd's


def prune(graph: Stores, filters: dict[str, Any], users: Callable[[str], list[str]]) -> dict[str, Any]:
    wanted = normalise(filters, PRUNE_FILTERS)
    dangling = dangling_value(wanted.get("dangling", []))
    dangling_only = dangling is not False
    until = min((parse_until(v) for v in wanted.get("until", [])), default=None)
    sizes = {row.chain_id: row.size for row in graph.layers.rows()}
    deleted: list[dict[str, str]] = []
    with txn.locked(graph.images, graph.layers):
        rows = graph.images.rows()
        parents = {row.parent for row in rows if row.parent}
        for row in rows:
            if graph.images.find(row.id) is None:
                continue  # already gone with an earlier candidate
            names = graph.images.repo_tags(row.id) + graph.images.repo_digests(row.id)
            if dangling_only and row.id in parents:
                continue  # not a head
            if not names and row.id in parents:
                continue  # an untagged intermediate image
            if until is not None and row.created_ns > until:
                continue
            labels = (graph.images.config_doc(row.id).get("config") or {}).get("Labels") or {}
            if not labels_match(wanted.get("label", []), labels):
                continue
            if any(labels_match([pattern], labels) for pattern in wanted.get("label!", [])):
                continue
            if users(row.id):
                continue
            deleted += _delete(graph, row.id, dangling_only, users)
    reclaimed = sum(sizes.get(item["Deleted"], 0) for item in deleted if "Deleted" in item)
    return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}


def _delete(
    graph: Stores, image_id: str, dangling_only: bool, users: Callable[[str], list[str]]
) -> list[dict[str, str]]:
    names = graph.images.names(image_id)
    try:
        if not names:
            return remove_image(graph, image_id, False, False, users)
        if dangling_only and any(not n.digest for n in names):
            return []
        out: list[dict[str, str]] = []
        for name in names:
            if graph.images.find(image_id) is None:
                break
            out += remove_image(graph, name.string(), False, False, users)
        return out
    except BerthError:
        return []  # Docker skips an image that cannot be deleted (a conflict) and goes on
