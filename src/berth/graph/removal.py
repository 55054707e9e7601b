"""``docker rmi``: untag, then delete an image and the layers nothing else uses.

The model is Docker's ``ImageDelete``. Given a *name*: remove that name; if other names
remain, that is all. Given an *id* (or once the last name is gone): delete the image unless
a conflict stops it. Conflicts are *hard* (child images: even ``force`` cannot) or *soft*
(a container uses the image, the image still has names in several repositories: ``force``
overrides). A container's read-write layer keeps its image's layers alive even after a
forced delete; they go when the container does. Results are Docker's records::

    [{"Untagged": "busybox:latest"}, {"Deleted": "sha256:<image>"}, {"Deleted": "sha256:<chain>"}]

``users(image_id)`` returns the ids of containers created from the image (the daemon's
knowledge). berth cannot tell running from stopped users here, so every user is a soft
conflict: ``rmi -f`` deletes the image record while the container keeps its layers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from berth.errors import Conflict
from berth.graph import reference
from berth.graph.layers import drop_blobs, layer_chain, referenced_layers
from berth.graph.rwlayer import init_id

if TYPE_CHECKING:
    from berth.graph.graph import Graph

Records = list[dict[str, str]]


def remove_image(
    graph: Graph, ref: str, force: bool, noprune: bool, users: Callable[[str], list[str]]
) -> Records:
    image_id = graph.resolve(ref)
    records: Records = []
    names = _names(graph, image_id)
    if not reference.is_id_prefix(image_id, ref):
        if not force and _single_reference(names):
            using = users(image_id)
            if using:
                raise Conflict(
                    f'conflict: unable to remove repository reference "{ref}" (must force) - container '
                    f"{reference.short_id(using[0])} is using its referenced image {reference.short_id(image_id)}"
                )
        parsed = reference.parse(ref).with_default_tag()
        with graph.db.transaction():
            _remove_name(graph, parsed)
        records.append({"Untagged": parsed.familiar()})
        names = _names(graph, image_id)
        if not parsed.digest and not any(not n.digest and n.name == parsed.name for n in names):
            # the last tag of this repository went: its digest references go too
            for name in [n for n in names if n.digest and n.name == parsed.name]:
                with graph.db.transaction():
                    _remove_name(graph, name)
                records.append({"Untagged": name.familiar()})
            names = _names(graph, image_id)
        if names:
            return records
        _delete(graph, image_id, records, force, not noprune, users, quiet=True)
        return records
    if _single_reference(names):
        _check(graph, image_id, users, hard=True, soft=not force, active_reference=False)
        with graph.db.transaction():
            for name in names:
                _remove_name(graph, name)
        records.extend({"Untagged": name.familiar()} for name in names)
    _delete(graph, image_id, records, force, not noprune, users, quiet=False)
    return records


def _names(graph: Graph, image_id: str) -> list[reference.Reference]:
    tags = [reference.Reference(r, t) for r, t in graph.db.tags_of(image_id)]
    return tags + [reference.Reference(r, "", d) for r, d in graph.db.digests_of(image_id)]


def _remove_name(graph: Graph, ref: reference.Reference) -> None:
    if ref.digest:
        graph.db.delete_digest(ref.name, ref.digest)
    else:
        graph.db.delete_tag(ref.name, ref.tag)


def _single_reference(names: list[reference.Reference]) -> bool:
    """Docker's ``isSingleReference``: one tag, possibly with digests of that same repository."""
    if len(names) <= 1:
        return len(names) == 1
    tags = [n for n in names if not n.digest]
    digest_repos = {n.name for n in names if n.digest}
    if len(tags) > 1:
        return False
    single = tags[0] if tags else names[0]
    return len(digest_repos) == 1 and single.name in digest_repos


class _DeleteConflict(Conflict):
    def __init__(self, image_id: str, message: str, hard: bool, used: bool) -> None:
        how = "cannot be forced" if hard else "must be forced"
        super().__init__(f"conflict: unable to delete {reference.short_id(image_id)} ({how}) - {message}")
        self.used = used


def _check(
    graph: Graph,
    image_id: str,
    users: Callable[[str], list[str]],
    hard: bool,
    soft: bool,
    active_reference: bool,
) -> None:
    conflict = _find_conflict(graph, image_id, users, hard, soft, active_reference)
    if conflict is not None:
        raise conflict


def _find_conflict(
    graph: Graph,
    image_id: str,
    users: Callable[[str], list[str]],
    hard: bool,
    soft: bool,
    active_reference: bool,
) -> _DeleteConflict | None:
    if hard and graph.db.children(image_id):
        return _DeleteConflict(image_id, "image has dependent child images", hard=True, used=False)
    if soft and active_reference and _names(graph, image_id):
        return _DeleteConflict(
            image_id, "image is referenced in multiple repositories", hard=False, used=False
        )
    if soft:
        using = users(image_id)
        if using:
            return _DeleteConflict(
                image_id,
                f"image is being used by stopped container {reference.short_id(using[0])}",
                hard=False,
                used=True,
            )
    return None


def _delete(
    graph: Graph,
    image_id: str,
    records: Records,
    force: bool,
    prune: bool,
    users: Callable[[str], list[str]],
    quiet: bool,
) -> None:
    """Docker's ``imageDeleteHelper``: delete ``image_id`` and maybe its untagged parents."""
    conflict = _find_conflict(graph, image_id, users, hard=True, soft=not force, active_reference=True)
    if conflict is not None:
        dangling = not _names(graph, image_id) and not graph.db.children(image_id)
        if quiet and (not dangling or conflict.used):
            return
        raise conflict
    row = graph.image(image_id)
    names = _names(graph, image_id)
    chain = layer_chain(graph.db, row.top_layer)
    with graph.db.transaction():
        for name in names:
            _remove_name(graph, name)
        graph.db.delete_image(image_id)
        used = referenced_layers(graph.db, graph.held_layers())
        freed = [layer for layer in chain if layer.chain_id not in used]
        for layer in freed:
            graph.db.delete_layer(layer.chain_id)
    records.extend({"Untagged": name.familiar()} for name in names)
    records.append({"Deleted": image_id})
    records.extend({"Deleted": layer.chain_id} for layer in freed)
    for layer in freed:
        graph.driver.remove_layer(init_id(layer.cache_id))
        graph.driver.remove_layer(layer.cache_id)
    drop_blobs(graph.db, graph.content, [layer.diff_id for layer in freed])
    graph.content.delete(row.config_digest)
    graph.forget_config(image_id)
    if prune and row.parent and graph.db.image(row.parent) is not None:
        _delete(graph, row.parent, records, False, True, users, quiet=True)
