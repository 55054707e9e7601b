"""``--userns-remap``: containers' root is an unprivileged id range of the host (dockerd's
daemon-wide user namespaces), and berth's per-container ``--userns=auto`` and explicit maps.

The daemon-wide mapping is the remap user's first subordinate range (``/etc/subuid`` and
``/etc/subgid``, :mod:`berth.daemon.subids`): container id 0 is its first id. As dockerd, the
daemon then keeps everything under ``<data-root>/<uid>.<gid>`` (a remapped daemon has its own
images, containers and volumes), and a container opts out with ``--userns=host``::

    remap = Remap.configure("default")         # berthremap, created with its ranges if need be
    remap.root                                 # (100000, 100000): the container root's host ids
    remap.maps_for(host_config, labels, taken) # {"uid": [[0, 100000, 65536]], "gid": [...]}, or None

Per container (berth's extension; Docker has only the daemon-wide form), ``UsernsMode`` or,
for the docker CLI, which passes only ``""`` and ``host`` through, the label ``io.berth.userns``:

- ``auto``: a block of 65536 ids of its own, from the remap user's *other* ranges, never one
  another container holds (the blocks are read from the containers' records, under no await);
- ``map=C:H:N[,C:H:N...]``: those uid and gid ranges (container id, host id, count), which must
  lie inside the remap user's subordinate ranges and map the container's id 0.

The map a container runs with is fixed at create and kept in its record (``Container.userns``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from berth.daemon import subids
from berth.errors import InvalidParameter, SystemFailure

LABEL = "io.berth.userns"
Maps = dict[str, list[list[int]]]  # {"uid": [[container, host, size], ...], "gid": [...]}


@dataclass(frozen=True)
class Remap:
    user: str
    group: str
    uid_ranges: tuple[subids.Range, ...]
    gid_ranges: tuple[subids.Range, ...]

    @classmethod
    def configure(cls, spec: str) -> Remap:
        """The remapping ``--userns-remap SPEC`` asks for (``default``, ``USER[:GROUP]``, ids)."""
        if spec == "default":
            subids.ensure_default_user()
            spec = subids.DEFAULT_USER
        user, uid, group, gid = subids.lookup(spec)
        uids = tuple(subids.ranges(user, uid, subids.SUBUID))
        gids = tuple(subids.ranges(group, gid, subids.SUBGID))
        if not uids:
            raise InvalidParameter(f"userns-remap: no subuid ranges found for user {user!r} in {subids.SUBUID}")
        if not gids:
            raise InvalidParameter(f"userns-remap: no subgid ranges found for group {group!r} in {subids.SUBGID}")
        return cls(user, group, uids, gids)

    @property
    def root(self) -> tuple[int, int]:
        """The host uid and gid of the daemon-wide mapping's root."""
        return self.uid_ranges[0][0], self.gid_ranges[0][0]

    def default_maps(self) -> Maps:
        (us, un), (gs, gn) = self.uid_ranges[0], self.gid_ranges[0]
        return {"uid": [[0, us, un]], "gid": [[0, gs, gn]]}

    def _pool(self) -> list[tuple[int, int]]:
        """The 65536-id blocks ``auto`` draws from: the ranges after the first, uid and gid
        ranges paired in order (block i is [uid start, gid start])."""
        blocks = []
        for (us, un), (gs, gn) in zip(self.uid_ranges[1:], self.gid_ranges[1:], strict=False):
            for i in range(min(un, gn) // subids.BLOCK):
                blocks.append((us + i * subids.BLOCK, gs + i * subids.BLOCK))
        return blocks

    def maps_for(self, host: dict[str, Any], labels: dict[str, str], taken: list[Maps]) -> Maps | None:
        """The maps a new container gets (None: the host's user namespace); ``taken``: the maps
        of every other container (an ``auto`` block is never one of theirs)."""
        mode = mode_of(host, labels)
        if mode == "host":
            return None
        if mode in ("", "private"):
            return self.default_maps()
        if mode == "auto":
            held = [(h, h + n) for m in taken for _c, h, n in m.get("uid") or ()]
            for ustart, gstart in self._pool():
                if not any(lo < ustart + subids.BLOCK and ustart < hi for lo, hi in held):
                    return {"uid": [[0, ustart, subids.BLOCK]], "gid": [[0, gstart, subids.BLOCK]]}
            if not self._pool():
                raise InvalidParameter(
                    f"--userns=auto: the remap user {self.user!r} has no subordinate range besides the "
                    "daemon-wide one to draw from (give it a second range in /etc/subuid and /etc/subgid)"
                )
            raise InvalidParameter(f"--userns=auto: every block of {subids.BLOCK} ids of {self.user!r} is in use")
        maps = parse_map(mode)
        for kind, allowed in (("uid", self.uid_ranges), ("gid", self.gid_ranges)):
            for _c, h, n in maps[kind]:
                if not any(s <= h and h + n <= s + c for s, c in allowed):
                    raise InvalidParameter(
                        f"--userns {mode}: host {kind}s {h}-{h + n - 1} are not subordinate ids of {self.user!r}"
                    )
        return maps

    def security_option(self) -> str:
        return "name=userns"


def check_create(remap: Remap | None, host: dict[str, Any], labels: dict[str, str]) -> None:
    """dockerd's refusals for a container in the remapped user namespace (400s, its texts), and
    berth's per-container modes without the subordinate ids they need."""
    mode = mode_of(host, labels)
    if mode not in ("", "host", "private"):
        if mode != "auto":
            parse_map(mode)
        if remap is None:
            raise InvalidParameter(
                f"--userns {mode.partition('=')[0]}: berthd runs without --userns-remap, whose subordinate "
                "ids containers are mapped onto"
            )
    if remap is None or mode == "host":
        return
    if host.get("Privileged"):
        raise InvalidParameter(
            "privileged mode is incompatible with user namespaces.  You must run the container in the "
            "host namespace when running privileged mode"
        )
    if host.get("NetworkMode") == "host":
        raise InvalidParameter("cannot share the host's network namespace when user namespaces are enabled")
    if host.get("PidMode") == "host":
        raise InvalidParameter("cannot share the host PID namespace when user namespaces are enabled")


def container_maps(
    remap: Remap | None, host: dict[str, Any], labels: dict[str, str], taken: list[Maps | None]
) -> Maps | None:
    """The maps a new container is created with (None: the host's user namespace)."""
    if remap is None:
        return None
    return remap.maps_for(host, labels, [m for m in taken if m])


NETWORK_FILES = ("hosts", "hostname", "resolv.conf")


def own_container_files(c: Any, rootfs_mounts: list[Any] | None) -> None:
    """Before a start in a user namespace: the container's read-write layer (the overlay's upper
    directory: what the container writes lands there with host ids), or with ``rootfs_mounts``
    None its ``hosts``, ``hostname`` and ``resolv.conf`` (once the network driver has written
    them), belong to its root, as dockerd chowns them to the remapped root. Lower layers are
    id-mapped at mount time instead (berth.libcontainer.idmapped)."""
    uid, gid = root_of(c.userns)
    paths = [Path(c.dir) / name for name in NETWORK_FILES] if rootfs_mounts is None else []
    for m in rootfs_mounts or ():
        paths += [Path(o[len("upperdir="):]) for o in m.options if o.startswith("upperdir=")]
    for path in paths:
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        if (info.st_uid, info.st_gid) != (uid, gid):
            os.lchown(path, uid, gid)


def with_network_userns(
    d: Any, c: Any, netns: str, joined: tuple[tuple[str, str], ...]
) -> tuple[tuple[str, str], ...]:
    """The namespaces a container joins, with the user namespace its network namespace was made
    in (the network driver's, beside it: berth.drivers.network.netns; with ``--network
    container:X``, X's, which must have the same maps), unless another container's is joined
    already (--pid/--ipc container:X)."""
    from berth.drivers.network.netns import userns_path

    if not c.userns or not netns.startswith("/") or any(kind == "user" for kind, _ in joined):
        return joined
    kind, _, ref = str(c.host_config.get("NetworkMode") or "").partition(":")
    if kind == "container" and ref:
        donor = d.find(ref)
        if donor.userns and donor.userns != c.userns:
            raise InvalidParameter(
                f"cannot join the network namespace of container {donor.id}: its user namespace has other id maps"
            )
    user = userns_path(Path(netns))
    return (*joined, ("user", str(user))) if user.exists() else joined


def mode_of(host: dict[str, Any], labels: dict[str, str]) -> str:
    """The container's user namespace mode: ``UsernsMode``, else the ``io.berth.userns`` label."""
    mode = str(host.get("UsernsMode") or "")
    label = labels.get(LABEL, "")
    if mode and label:
        raise InvalidParameter(f"conflicting options: --userns {mode} and the label {LABEL}={label}")
    return mode or label


def parse_map(text: str) -> Maps:
    """``map=C:H:N[,C:H:N...]`` -> the same uid and gid maps; id 0 must be mapped."""
    if not text.startswith("map="):
        raise InvalidParameter(f"invalid USER mode: {text} (host, private, auto or map=C:H:N[,C:H:N...])")
    lines = []
    for item in text[len("map="):].split(","):
        parts = item.split(":")
        if len(parts) != 3 or not all(p.isdigit() for p in parts) or int(parts[2]) == 0:
            raise InvalidParameter(f"invalid USER mode: {text}: {item!r} is not CONTAINER:HOST:COUNT")
        lines.append([int(p) for p in parts])
    if len(lines) > 340:
        raise InvalidParameter(f"invalid USER mode: {text}: more than 340 ranges")
    lines.sort()
    for a, b in zip(lines, lines[1:], strict=False):
        if a[0] + a[2] > b[0]:
            raise InvalidParameter(f"invalid USER mode: {text}: container ranges overlap")
    if not any(c <= 0 < c + n for c, _h, n in lines):
        raise InvalidParameter(f"invalid USER mode: {text}: the container's id 0 is not mapped")
    return {"uid": lines, "gid": [list(x) for x in lines]}


def volume_maps(owner: Maps | None, maps: Maps | None) -> Maps | None:
    """How a container with ``maps`` sees the daemon's volumes, whose files are kept in
    ``owner``'s host ids (the daemon-wide mapping's, as dockerd keeps them): an id map for an
    id-mapped mount (the OCI mount's uidMappings) on which the on-disk id of the owner's
    container id c reads as the container's host id for c. On-disk id 0 stays the host's root
    (as without the map: nobody inside), so root on the host can still create files there
    (docker cp creates, then chowns to the container's ids; an unmapped creator gets EOVERFLOW).
    None when the two are the same (the daemon-wide mapping, or none: the volume is seen as it is).

        >>> own = {"uid": [[0, 100000, 65536]], "gid": [[0, 100000, 65536]]}
        >>> volume_maps(own, {"uid": [[0, 165536, 65536]], "gid": [[0, 300000, 65536]]})
        {'uid': [[0, 0, 1], [100000, 165536, 65536]], 'gid': [[0, 0, 1], [100000, 300000, 65536]]}
        >>> volume_maps(own, {"uid": [[0, 165536, 1000]], "gid": [[0, 165536, 1000]]})["uid"]
        [[0, 0, 1], [100000, 165536, 1000]]
        >>> volume_maps(own, own) is None
        True
    """
    if not owner or not maps or owner == maps:
        return None
    out: Maps = {}
    for kind in ("uid", "gid"):
        lines = []
        for c, h, n in maps.get(kind) or ():
            for oc, oh, on in owner.get(kind) or ():
                lo, hi = max(c, oc), min(c + n, oc + on)
                if lo < hi:
                    lines.append([oh + (lo - oc), h + (lo - c), hi - lo])
        if not lines:
            return None  # nothing in common: the volume's files read as unmapped ids either way
        if not any(a <= 0 < a + n or b <= 0 < b + n for a, b, n in lines):
            lines.append([0, 0, 1])
        out[kind] = sorted(lines)
    return out


def container_volume_maps(d: Any, c: Any) -> Maps | None:
    """:func:`volume_maps` for container ``c`` of daemon ``d`` (its start and its ``docker cp``)."""
    return volume_maps(d.cfg.remap.default_maps() if d.cfg.remap else None, c.userns)


def root_of(maps: Maps | None) -> tuple[int, int]:
    """The host (uid, gid) the container's root maps to; (0, 0) without maps."""
    if not maps:
        return 0, 0
    return to_host(maps["uid"], 0), to_host(maps["gid"], 0)


def to_container(maps: Maps | None) -> Callable[[int, int], tuple[int, int]] | None:
    """Host (uid, gid) -> the container's, for the tars of what a container in a user namespace
    wrote (commit, export); an id outside its maps (a file the daemon put there) is kept."""
    if not maps:
        return None
    uids, gids = maps["uid"], maps["gid"]

    def back(lines: list[list[int]], hid: int) -> int:
        for c, h, n in lines:
            if h <= hid < h + n:
                return c + hid - h
        return hid

    return lambda uid, gid: (back(uids, uid), back(gids, gid))


def to_host_ids(maps: Maps | None) -> Callable[[int, int], tuple[int, int]] | None:
    """The container's (uid, gid) -> the host's, for files put into a container in a user
    namespace (docker cp); an id its maps lack is dockerd's error."""
    if not maps:
        return None
    uids, gids = maps["uid"], maps["gid"]

    def forth(lines: list[list[int]], cid: int) -> int:
        for c, h, n in lines:
            if c <= cid < c + n:
                return h + cid - c
        raise InvalidParameter(f"Container ID {cid} cannot be mapped to a host ID")

    return lambda uid, gid: (forth(uids, uid), forth(gids, gid))


def shift_tree(root: Path, maps: Maps | None) -> None:
    """Give the files under ``root`` (written with the container's ids: a new volume's copy of
    the image) the host ids its maps give them; modes are set again (chown clears setuid bits)."""
    ids = to_host_ids(maps)
    if ids is None:
        return
    seen: set[tuple[int, int]] = set()  # a hard-linked file is shifted once
    for top, dirs, files in os.walk(root):
        for name in (top, *(os.path.join(top, n) for n in dirs + files)):
            info = os.lstat(name)
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            os.lchown(name, *ids(info.st_uid, info.st_gid))
            if not stat.S_ISLNK(info.st_mode):
                os.chmod(name, stat.S_IMODE(info.st_mode))


def to_host(lines: list[list[int]], cid: int) -> int:
    for c, h, n in lines:
        if c <= cid < c + n:
            return h + cid - c
    return 65534  # unmapped: the overflow id, as the kernel shows it


def remapped_data_root(root: Path, remap: Remap) -> Path:
    """dockerd's ``setupDaemonRoot``: the data root searchable by everyone (0711) so the
    remapped root can walk to its rootfs and volumes, and ``<root>/<uid>.<gid>`` under it, which
    becomes the data root. A directory above that the remapped root cannot search would make
    every start fail: refused here, with dockerd's text."""
    root.mkdir(mode=0o711, parents=True, exist_ok=True)
    os.chmod(root, 0o711)
    uid, gid = remap.root
    sub = root / f"{uid}.{gid}"
    sub.mkdir(mode=0o711, exist_ok=True)
    os.chmod(sub, 0o711)
    path = root
    while path != path.parent:
        path = path.parent
        mode = os.stat(path).st_mode
        if not mode & stat.S_IXOTH:
            raise SystemFailure(
                f"a subdirectory in your graphroot path ({sub}) restricts access to the remapped root "
                f"uid/gid; please fix by allowing 'o+x' permissions on existing directories ({path})"
            )
    return sub
