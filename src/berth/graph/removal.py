"""``docker rmi``: untag, then delete an image and the layers nothing else uses.

The model is Docker's ``ImageDelete``. Given a *name*: remove that name; if other names
remain, that is all. Given an *id* (or once the last name is gone): delete the image unless
a conflict stops it. Conflicts are *hard* (child images: even ``force`` cannot) or *soft*
(a container uses the image, the image still has names in several repositories: ``force``
overrides). A container's read-write layer keeps its image's layers alive even after a
forced delete; they go when the container does. Results are Docker's records::

    [{"Untagged": "busybox:latest"}, {"Deleted": "sha256:<image>"}, {"Deleted": "sha256:<chain>"}]

``users(image_id)`` returns the ids of containers created from the image (the daemon's
knowledge), ``running(image_id)`` those of them that run. A running user is a hard conflict
when the image itself would be deleted (as dockerd: ``rmi -f ID`` refuses; ``rmi -f NAME`` of
the last name untags and leaves the image, the conflict ignored as dockerd's ``quiet``); every
other user is a soft one: ``rmi -f`` deletes the image record while the container keeps its layers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from berth.errors import Conflict
from berth.graph import reference, txn
from berth.graph.content import ContentStore
from berth.graph.imagestore import ImageStore
from berth.graph.layerstore import LayerStore

Records = list[dict[str, str]]


@dataclass(frozen=True)
class Stores:
    """What a removal changes: the images, their layers, the config blobs."""

    images: ImageStore
    layers: LayerStore
    content: ContentStore


def remove_image(
    graph: Stores, ref: str, force: bool, noprune: bool, users: Callable[[str], list[str]],
    running: Callable[[str], list[str]] = lambda _id: [],
) -> Records:
    """``docker rmi``, with both stores locked for the whole of it (images first)."""
    with txn.locked(graph.images, graph.layers):
        return _remove_image(graph, ref, force, noprune, _Users(users, running))


class _Users:
    """The containers created from an image (``all``) and those of them that run."""

    def __init__(self, users: Callable[[str], list[str]], running: Callable[[str], list[str]]) -> None:
        self.all, self.running = users, running

    def __call__(self, image_id: str) -> list[str]:
        return self.all(image_id)


def _remove_image(graph: Stores, ref: str, force: bool, noprune: bool, users: _Users) -> Records:
    image_id = graph.images.resolve(ref)
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
        with graph.layers.transaction():
            graph.images.remove_name(parsed)
        records.append({"Untagged": parsed.familiar()})
        names = _names(graph, image_id)
        if not parsed.digest and not any(not n.digest and n.name == parsed.name for n in names):
            # the last tag of this repository went: its digest references go too
            for name in [n for n in names if n.digest and n.name == parsed.name]:
                with graph.layers.transaction():
                    graph.images.remove_name(name)
                records.append({"Untagged": name.familiar()})
            names = _names(graph, image_id)
        if names:
            return records
        _delete(graph, image_id, records, force, not noprune, users, quiet=True)
        return records
    if _single_reference(names):
        _check(graph, image_id, users, hard=True, soft=not force, active_reference=False)
        with graph.layers.transaction():
            for name in names:
                graph.images.remove_name(name)
        records.extend({"Untagged": name.familiar()} for name in names)
    _delete(graph, image_id, records, force, not noprune, users, quiet=False)
    return records


def _names(graph: Stores, image_id: str) -> list[reference.Reference]:
    return graph.images.names(image_id)


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
    graph: Stores,
    image_id: str,
    users: _Users,
    hard: bool,
    soft: bool,
    active_reference: bool,
) -> None:
    conflict = _find_conflict(graph, image_id, users, hard, soft, active_reference)
    if conflict is not None:
        raise conflict


def _find_conflict(
    graph: Stores,
    image_id: str,
    users: _Users,
    hard: bool,
    soft: bool,
    active_reference: bool,
) -> _DeleteConflict | None:
    if hard and graph.images.children(image_id):
        return _DeleteConflict(image_id, "image has dependent child images", hard=True, used=False)
    if hard:
        running = users.running(image_id)
        if running:
            return _DeleteConflict(image_id, f"image is being used by running container {reference.short_id(running[0])}",
                                   hard=True, used=True)
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
    graph: Stores,
    image_id: str,
    records: Records,
    force: bool,
    prune: bool,
    users: _Users,
    quiet: bool,
) -> None:
    """Docker's ``imageDeleteHelper``: delete ``image_id`` and maybe its untagged parents."""
    conflict = _find_conflict(graph, image_id, users, hard=True, soft=not force, active_reference=True)
    if conflict is not None:
        dangling = not _names(graph, image_id) and not graph.images.children(image_id)
        if quiet and (not dangling or conflict.used):
            return
        raise conflict
    row = graph.images.get(image_id)
    names = _names(graph, image_id)
    chain = graph.layers.chain(row.top_layer)
    with graph.layers.transaction():
        for name in names:
            graph.images.remove_name(name)
        graph.images.delete(image_id)
        freed = graph.layers.release(chain, graph.images.tops())
    records.extend({"Untagged": name.familiar()} for name in names)
    records.append({"Deleted": image_id})
    records.extend({"Deleted": layer.chain_id} for layer in freed)
    graph.layers.discard(freed)
    graph.content.delete(row.config_digest)
    if prune and row.parent and graph.images.find(row.parent) is not None:
        _delete(graph, row.parent, records, False, True, users, quiet=True)
