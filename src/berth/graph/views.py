"""What the API shows of images: ``/images/json``, ``/images/{name}/json``, ``/history``.

The model: pure read-out of the graph into Docker's JSON shapes (API 1.41, the shapes of
``transcripts/images.txt``, ``image-inspect.txt`` and ``history.txt``). Untagged images
show ``<none>:<none>``/``<none>@<none>`` as API <= 1.42 does; from 1.43 on ``berth.api``
replaces those with empty lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from berth.errors import NotFound
from berth.graph import reference
from berth.graph.filters import dangling_value, labels_match, normalise, path_match
from berth.graph.image import INT64_MAX, INT64_MIN, ZERO_TIME, container_config, parse_rfc3339
from berth.graph.imagestore import ImageStore
from berth.graph.layerstore import LayerStore


@dataclass(frozen=True)
class Views:
    """What the read-outs use: the image store, and the layer store for sizes and paths."""

    images: ImageStore
    layers: LayerStore


def inspect_image(graph: Views, image_id: str) -> dict[str, Any]:
    """``GET /images/{name}/json``."""
    row = graph.images.get(image_id)
    doc = graph.images.config_doc(image_id)
    data = graph.layers.metadata(row.top_layer)
    out: dict[str, Any] = {
        "Id": image_id,
        "RepoTags": graph.images.repo_tags(image_id),
        "RepoDigests": graph.images.repo_digests(image_id),
        "Parent": row.parent,
        # Docker: the config's comment, else the newest history entry's (commits keep it there)
        "Comment": doc.get("comment") or ((doc.get("history") or [{}])[-1].get("comment", "")),
        "Created": doc.get("created", ""),
        "Container": doc.get("container", ""),
        "ContainerConfig": container_config(doc.get("container_config")),
        "DockerVersion": doc.get("docker_version", ""),
        "Author": doc.get("author", ""),
        "Config": container_config(doc["config"]) if doc.get("config") is not None else None,
        "Architecture": doc.get("architecture", ""),
    }
    if doc.get("variant"):
        out["Variant"] = doc["variant"]
    out["Os"] = doc.get("os", "")
    if doc.get("os.version"):
        out["OsVersion"] = doc["os.version"]
    out["Size"] = row.size
    out["VirtualSize"] = row.size
    out["GraphDriver"] = {"Data": data or None, "Name": graph.layers.driver.name}
    rootfs: dict[str, Any] = {"Type": (doc.get("rootfs") or {}).get("type", "layers")}
    diff_ids = (doc.get("rootfs") or {}).get("diff_ids") or []
    if diff_ids:
        rootfs["Layers"] = list(diff_ids)
    out["RootFS"] = rootfs
    out["Metadata"] = {"LastTagTime": row.last_tag_time or ZERO_TIME}
    return out


def list_images(graph: Views, all_images: bool, filters: dict[str, Any]) -> list[dict[str, Any]]:
    """``GET /images/json``, newest first."""
    wanted = normalise(filters)
    dangling = dangling_value(wanted.get("dangling", []))
    before = _threshold(graph, wanted.get("before", []))
    since = _threshold(graph, wanted.get("since", []))
    patterns = wanted.get("reference", [])
    tags = graph.images.all_tags()
    digests = graph.images.all_digests()
    rows = graph.images.rows()
    parents = {row.parent for row in rows if row.parent}
    out = []
    for row in rows:
        if before is not None and not row.created_ns < before:
            continue
        if since is not None and not row.created_ns > since:
            continue
        try:
            labels = (graph.images.config_doc(row.id).get("config") or {}).get("Labels") or None
        except NotFound:
            continue  # removed while the list was read (reads take no lock): not listed
        if "label" in wanted and not labels_match(wanted["label"], labels):
            continue
        repo_tags = _names([reference.Reference(r, t) for r, t in tags.get(row.id, [])], patterns)
        repo_digests = _names([reference.Reference(r, "", d) for r, d in digests.get(row.id, [])], patterns)
        if not repo_tags and not repo_digests:
            if not all_images and row.id in parents:
                continue  # an intermediate image: shown with -a only
            if dangling is False or patterns:
                continue
            repo_tags, repo_digests = ["<none>:<none>"], ["<none>@<none>"]
        elif dangling is True and repo_tags:
            continue
        out.append(
            {
                "Containers": -1,
                # the table clamps to 64-bit nanoseconds; Docker's year 0001 is -62135596800
                "Created": row.created_ns // 1_000_000_000
                if INT64_MIN < row.created_ns < INT64_MAX
                else _unix(row.created),
                "Id": row.id,
                "Labels": labels,
                "ParentId": row.parent,
                "RepoDigests": repo_digests or None,
                "RepoTags": repo_tags or None,
                "SharedSize": -1,
                "Size": row.size,
                "VirtualSize": row.size,
            }
        )
    return out


def _names(refs: list[reference.Reference], patterns: list[str]) -> list[str]:
    names = []
    for ref in refs:
        if patterns and not any(
            path_match(p, ref.familiar()) or path_match(p, ref.familiar_name()) for p in patterns
        ):
            continue
        names.append(ref.familiar())
    return names


def _threshold(graph: Views, values: list[str]) -> int | None:
    """Created time (ns) of the image the last ``before``/``since`` value names."""
    if not values:
        return None
    return graph.images.get(graph.images.resolve(values[-1])).created_ns


def image_history(graph: Views, image_id: str) -> list[dict[str, Any]]:
    """``GET /images/{name}/history``: newest first; ids filled in along the parent chain."""
    row = graph.images.get(image_id)
    doc = graph.images.config_doc(image_id)
    layers = list(reversed(graph.layers.chain(row.top_layer)))
    items: list[dict[str, Any]] = []
    index = 0
    for entry in doc.get("history") or []:
        size = 0
        if not entry.get("empty_layer") and index < len(layers):
            size = layers[index].size
            index += 1
        items.append(
            {
                "Comment": entry.get("comment", ""),
                "Created": _unix(entry.get("created", "")),
                "CreatedBy": entry.get("created_by", ""),
                "Id": "<missing>",
                "Size": size,
                "Tags": None,
            }
        )
    items.reverse()
    # Docker names the newest entry after the image, the next after its parent, and so on.
    current: str | None = image_id
    for item in items:
        if current is None or graph.images.find(current) is None:
            break
        item["Id"] = current
        item["Tags"] = graph.images.repo_tags(current) or None
        current = graph.images.get(current).parent or None
    return items


def _unix(created: str) -> int:
    try:
        return parse_rfc3339(created) // 1_000_000_000
    except ValueError:
        return 0
