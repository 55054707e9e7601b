"""The merged view of stacked layer directories, computed in user space (no mount).

The model is overlayfs' lookup rule: layers are searched top first; the first layer holding
a name decides it -- a whiteout (0/0 character device) hides it, a non-directory hides
everything below, a directory merges with the directories below it until one is opaque
(``trusted.overlay.opaque=y``). A single vfs directory is the degenerate one-layer case.
Symlinks are followed inside the view (an absolute target starts at the view's root), so a
lookup never leaves the layers::

    path = lookup([rw_diff, image_diff], "/etc/passwd")   # host path of the visible file, or None
    for rel, host_path in walk([rw_diff, image_diff]): ...  # every visible entry, parents first
    walk(subtree([rw_diff, image_diff], "/data"))              # ... of one directory only

Used to read files of a stopped container (``--user`` lookup), to fill the init layer and to
compute ``docker diff``/``commit``/``export`` without mounting anything.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

OPAQUE_XATTR = "trusted.overlay.opaque"
_MAX_SYMLINK_HOPS = 40


def is_whiteout(info: os.stat_result) -> bool:
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == 0


def is_opaque(path: Path | str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False  # no xattr (or a filesystem without xattrs): not opaque


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _step(
    active: list[Path], resolved: list[str], name: str
) -> tuple[Path, os.stat_result, list[Path]] | None:
    """Look ``name`` up under ``resolved`` in the ``active`` layers: (host path, stat, layers
    whose directory of that name merges into the view) or None when absent/whited out."""
    found: tuple[Path, os.stat_result] | None = None
    merging: list[Path] = []
    for layer in active:
        path = layer.joinpath(*resolved, name)
        info = _lstat(path)
        if info is None:
            continue
        if is_whiteout(info):
            break
        if found is None:
            found = (path, info)
        elif not stat.S_ISDIR(info.st_mode):
            break  # a lower non-directory under an upper directory stays hidden
        if not stat.S_ISDIR(found[1].st_mode):
            break
        merging.append(layer)
        if is_opaque(path):
            break
    if found is None:
        return None
    return found[0], found[1], merging


def _active_for(layers: list[Path], resolved: list[str]) -> list[Path]:
    active = list(layers)
    for depth, name in enumerate(resolved):
        step = _step(active, resolved[:depth], name)
        active = step[2] if step else []
    return active


def lookup(layers: list[Path], path: str, follow: bool = True) -> Path | None:
    """The host path that shows at ``path`` in the merged view of ``layers`` (top first)."""
    pending = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    active = list(layers)
    current: Path | None = layers[0] if layers else None
    hops = 0
    while pending:
        name = pending.pop(0)
        if name == "..":
            if resolved:
                resolved.pop()
            active = _active_for(layers, resolved)
            current = active[0].joinpath(*resolved) if active else None
            continue
        step = _step(active, resolved, name)
        if step is None:
            return None
        host, info, merging = step
        if stat.S_ISLNK(info.st_mode) and (pending or follow):
            hops += 1
            if hops > _MAX_SYMLINK_HOPS:
                return None
            target = os.readlink(host)
            if target.startswith("/"):
                resolved = []
            pending = [p for p in target.split("/") if p not in ("", ".")] + pending
            active = _active_for(layers, resolved)
            continue
        if pending and not stat.S_ISDIR(info.st_mode):
            return None
        resolved.append(name)
        active = merging
        current = host
    return current


def subtree(layers: list[Path], path: str) -> list[Path]:
    """The layer directories (top first) that merge into the directory at ``path``, so that
    ``walk(subtree(layers, "/data"))`` walks that directory's view; [] when ``path`` is absent
    or not a directory. Each component is taken literally (no symlink is followed)."""
    parts = [p for p in path.split("/") if p not in ("", ".", "..")]
    return [layer.joinpath(*parts) for layer in _active_for(list(layers), parts)]


def walk(layers: list[Path]) -> Iterator[tuple[str, Path]]:
    """Every entry of the merged view as (``/relative/path``, host path), parents first."""
    yield from _walk(layers, [])


def _walk(active: list[Path], resolved: list[str]) -> Iterator[tuple[str, Path]]:
    names: set[str] = set()
    for layer in active:
        try:
            names.update(os.listdir(layer.joinpath(*resolved)))
        except (FileNotFoundError, NotADirectoryError):
            continue
    for name in sorted(names):
        step = _step(active, resolved, name)
        if step is None:
            continue
        host, info, merging = step
        yield "/" + "/".join([*resolved, name]), host
        if stat.S_ISDIR(info.st_mode):
            yield from _walk(merging, [*resolved, name])
