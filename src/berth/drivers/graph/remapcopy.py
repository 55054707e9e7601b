"""Layers chowned for a user namespace: dockerd's way, for kernels without id-mapped layers.

Where the kernel cannot mount an overlay over id-mapped layers (before Linux 5.19), a container
in a user namespace gets, per lower layer and per mapping, a copy of the layer whose ids are the
host ids the mapping gives them (dockerd keeps such a copy of every layer per remapped root).
The copy lives in the layer's own directory, so it goes with the layer, and gets a short link
beside the layer's own, so the ``lowerdir=`` option stays short::

    <root>/l/6Q3HTJ4LYB2X.1a2b3c4d -> ../<layer id>/remap/1a2b3c4d
    <root>/<layer id>/remap/1a2b3c4d/      the layer, every id shifted by the mapping

    premapped(plan, maps)   # the overlay plan with those lower dirs, marked PREMAPPED

A copy is made once (beside, then renamed into place: a crash or a concurrent start never leaves
half of one in use) and reused by every container with the same mapping. An id the mapping
lacks becomes the overflow id 65534, as an id-mapped mount shows it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

from berth.errors import SystemFailure
from berth.libcontainer import Mount
from berth.libcontainer.idmapped import PREMAPPED

OVERFLOW_ID = 65534
Maps = dict[str, list[list[int]]]


def key_of(maps: Maps) -> str:
    return hashlib.sha256(json.dumps(maps, sort_keys=True).encode()).hexdigest()[:8]


def premapped(plan: list[Mount], maps: Maps) -> list[Mount]:
    """``plan`` (the overlay2 driver's) with every lower layer replaced by its copy for
    ``maps``; the upper directory is the container's own (it writes host ids there itself)."""
    out = []
    for m in plan:
        if m.type != "overlay":
            raise SystemFailure(
                f"user namespaces without id-mapped mounts need the overlay2 driver (the rootfs is a {m.type} mount)"
            )
        options = []
        for opt in m.options:
            if opt.startswith("lowerdir="):
                lowers = [str(_copy_for(Path(p), maps)) for p in opt[len("lowerdir=") :].split(":")]
                opt = "lowerdir=" + ":".join(lowers)
            options.append(opt)
        out.append(Mount(m.type, m.source, m.target, (*options, PREMAPPED)))
    return out


def _copy_for(lower: Path, maps: Maps) -> Path:
    """The short link to ``lower``'s copy for ``maps``, made if missing."""
    key = key_of(maps)
    link = lower.with_name(f"{lower.name}.{key}")
    if link.exists():
        return link
    diff = Path(os.path.realpath(lower))
    copies = diff.parent / "remap"
    copies.mkdir(mode=0o700, exist_ok=True)
    final = copies / key
    if not final.is_dir():
        partial = copies / f"{key}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        done = subprocess.run(["cp", "-a", "--reflink=auto", str(diff), str(partial)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            raise SystemFailure(f"copy layer {diff} for a user namespace: {done.stderr.strip()}")
        shift(partial, maps)
        try:
            os.rename(partial, final)
        except OSError:  # another start made it meanwhile: theirs is as good
            shutil.rmtree(partial, ignore_errors=True)
    try:
        os.symlink(os.path.relpath(final, link.parent), link)
    except FileExistsError:
        pass  # made meanwhile by another start: the same target
    return link


def _to_host(lines: list[list[int]], cid: int) -> int:
    for c, h, n in lines:
        if c <= cid < c + n:
            return h + cid - c
    return OVERFLOW_ID


def shift(root: Path, maps: Maps) -> None:
    """Every entry under ``root`` (and ``root``) to the host ids of its ids under ``maps``;
    modes are set again (chown clears setuid bits)."""
    seen: set[tuple[int, int]] = set()  # a hard-linked file is shifted once
    for top, dirs, files in os.walk(root):
        for name in (top, *(os.path.join(top, n) for n in dirs + files)):
            info = os.lstat(name)
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            os.lchown(name, _to_host(maps["uid"], info.st_uid), _to_host(maps["gid"], info.st_gid))
            if not stat.S_ISLNK(info.st_mode):
                os.chmod(name, stat.S_IMODE(info.st_mode))
