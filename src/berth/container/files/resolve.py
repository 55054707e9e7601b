"""Paths inside a view's root, resolved the way dockerd resolves them for ``docker cp``.

Docker's model (``container.ResolvePath`` and ``StatPath``): the asked path is made absolute and
cleaned, keeping a trailing ``/`` or ``/.``; its directory part is resolved with every symlink
followed inside the container (``FollowSymlinkInScope``: ``..`` stops at ``/``, an absolute
target starts again at the container's ``/``, a missing part is taken literally); its last
element is not followed unless the path ends in ``/`` or ``/.``. So ``/etc/link`` is the link
itself and ``/etc/link/`` is the directory it leads to.

The string resolution here only decides *what* to open; the open itself is always
``openat2(root, path, RESOLVE_IN_ROOT)`` (:func:`open_in`), which re-resolves inside the root in
the kernel, so a symlink swapped in between cannot lead out.

    >>> clean_path("d/../etc//")
    '/etc/'
    >>> clean_path(".")
    '/.'
    >>> go_base("/etc/"), go_base("/"), go_base("/d/.")
    ('etc', '/', '.')
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from typing import Any

from berth.libcontainer import kernel, securepath

RESOLVE = kernel.RESOLVE_IN_ROOT | kernel.RESOLVE_NO_MAGICLINKS
MAX_LINKS = 255  # FollowSymlinkInScope's limit

# Go's os.FileMode bits (what X-Docker-Container-Path-Stat's "mode" carries)
GO_DIR = 1 << 31
GO_SYMLINK = 1 << 27
GO_DEVICE = 1 << 26
GO_NAMED_PIPE = 1 << 25
GO_SOCKET = 1 << 24
GO_SETUID = 1 << 23
GO_SETGID = 1 << 22
GO_CHAR_DEVICE = 1 << 21
GO_STICKY = 1 << 20


def open_in(root_fd: int, path: str, flags: int, mode: int = 0) -> int:
    """``path`` opened inside the root: symlinks followed, but never out of it."""
    return kernel.openat2(root_fd, path or "/", flags | os.O_CLOEXEC, mode, RESOLVE)


def open_resolved(root_fd: int, path: str, flags: int) -> int:
    """``path`` (already resolved) opened inside the root with no symlink on the way: if one
    was swapped in since it was resolved, ELOOP instead of following it."""
    return kernel.openat2(root_fd, path or "/", flags | os.O_CLOEXEC, 0, RESOLVE | kernel.RESOLVE_NO_SYMLINKS)


def clean_path(path: str) -> str:
    """``filepath.Join("/", path)`` with a trailing ``/`` or ``/.`` kept (Docker's
    ``PreserveTrailingDotOrSeparator``)."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    cleaned = "/" + "/".join(parts)
    if go_base(path) == "." and go_base(cleaned) != ".":
        cleaned = cleaned.rstrip("/") + "/."
    if path.endswith("/") and not cleaned.endswith("/"):
        cleaned += "/"
    return cleaned


def go_base(path: str) -> str:
    """Go's ``filepath.Base``: the last element, trailing slashes ignored; ``/`` for the root."""
    stripped = path.rstrip("/")
    if not stripped:
        return "/" if path else "."
    return stripped.rsplit("/", 1)[-1]


def scoped_path(root_fd: int, path: str) -> str:
    """``path`` with every symlink resolved inside the root (``FollowSymlinkInScope``, up to
    its 255 links); parts that do not exist are kept as they are (libcontainer's one walk)."""
    return securepath.scoped_path(root_fd, path, max_links=MAX_LINKS)


def go_mode(st_mode: int) -> int:
    """A stat mode as Go's ``os.FileMode`` (permission bits plus Go's type and special bits)."""
    mode = st_mode & 0o777
    kind = stat.S_IFMT(st_mode)
    mode |= {
        stat.S_IFDIR: GO_DIR,
        stat.S_IFLNK: GO_SYMLINK,
        stat.S_IFIFO: GO_NAMED_PIPE,
        stat.S_IFSOCK: GO_SOCKET,
        stat.S_IFBLK: GO_DEVICE,
        stat.S_IFCHR: GO_DEVICE | GO_CHAR_DEVICE,
    }.get(kind, 0)
    if st_mode & stat.S_ISUID:
        mode |= GO_SETUID
    if st_mode & stat.S_ISGID:
        mode |= GO_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= GO_STICKY
    return mode


def rfc3339(ns: int) -> str:
    """Go's ``time.Time`` JSON form in UTC: RFC3339 with the nanoseconds' trailing zeros cut."""
    secs, nanos = divmod(ns, 1_000_000_000)
    frac = f".{nanos:09d}".rstrip("0").rstrip(".")
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + frac + "Z"


@dataclass(frozen=True)
class Resource:
    """A path in the view as dockerd's cp sees it."""

    asked: str  # the cleaned absolute path, with a trailing "/" or "/." kept
    parent: str  # its directory, symlinks resolved
    base: str  # its last element, not followed ("" or "." when the path ends in "/" or "/.")
    st: os.stat_result
    link_target: str  # for a symlink: the path it leads to, resolved inside the root

    @property
    def name(self) -> str:
        return go_base(self.asked)

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)

    @property
    def path(self) -> str:
        """The resolved path of the resource itself (its directory when it ends in / or /.)."""
        if self.base in ("", "."):
            return self.parent
        return self.parent.rstrip("/") + "/" + self.base

    def to_docker(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.st.st_size,
            "mode": go_mode(self.st.st_mode),
            "mtime": rfc3339(self.st.st_mtime_ns),
            "linkTarget": self.link_target,
        }


def resolve_resource(root_fd: int, path: str) -> Resource:
    """Docker's ResolvePath and StatPath for ``path``: OSError (ENOENT, ENOTDIR...) as lstat."""
    asked = clean_path(path)
    head, _, base = asked.rpartition("/")
    parent = scoped_path(root_fd, head or "/")
    if base in ("", "."):
        fd = open_in(root_fd, parent, os.O_PATH | os.O_DIRECTORY)
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
    else:
        fd = open_in(root_fd, parent, os.O_PATH | os.O_DIRECTORY)
        try:
            st = os.stat(base, dir_fd=fd, follow_symlinks=False)
        finally:
            os.close(fd)
    link_target = scoped_path(root_fd, asked) if stat.S_ISLNK(st.st_mode) else ""
    return Resource(asked, parent, base, st, link_target)
