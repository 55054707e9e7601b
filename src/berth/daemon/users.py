"""``--user``: ``uid[:gid]`` or names looked up in the container's /etc/passwd and /etc/group.

Like runc, a name must exist in the container's files ("unable to find user nosuch: no
matching entries in passwd file"); a numeric uid need not. The user's supplementary groups are
its primary gid (as dockerd's since 20.10.18) and, unless ``--user`` names a group, the groups
/etc/group lists it in. The files are read from the container's layers (the rw layer first) through
the graph, which never blocks on them, never follows a symlink out of the container and reads
at most 1 MiB of a regular file (:mod:`berth.accountfile`); anything else fails the lookup with
runc's "unable to find user ..." and the reason.

``--group-add`` (``HostConfig.GroupAdd``) adds groups by name (looked up in the container's
/etc/group) or by number (need not exist), for the container's process and for every exec, as
Docker's ``getUser`` does:

    >>> additional_groups(["audio", "4242"], "root:x:0:\\naudio:x:29:\\n")
    [29, 4242]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from berth.accountfile import AccountFileError
from berth.errors import ContainerStartError

if TYPE_CHECKING:
    from berth.container.record import Container
    from berth.graph.graph import Graph


def parse_passwd(text: str) -> list[tuple[str, int, int]]:
    out = []
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 4 and parts[2].isdigit() and parts[3].isdigit():
            out.append((parts[0], int(parts[2]), int(parts[3])))
    return out


def parse_group(text: str) -> list[tuple[str, int, list[str]]]:
    out = []
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 3 and parts[2].isdigit():
            members = [m for m in (parts[3].split(",") if len(parts) > 3 else []) if m]
            out.append((parts[0], int(parts[2]), members))
    return out


def lookup(user: str, passwd: str, group: str) -> tuple[int, int, list[int]]:
    """(uid, gid, supplementary gids) for ``user`` given the two files' text.

    The supplementary list starts with the primary gid, as dockerd's since 20.10.18 (the fix of
    CVE-2022-36109: a process must not shed its primary group with setgroups to get past a file
    whose group permissions are narrower than its others'); the groups ``/etc/group`` names the
    user a member of follow, only when ``user`` gives no group of its own (runc's rule):

        >>> lookup("root", "root:x:0:0::/:/bin/sh\\n", "root:x:0:\\nwheel:x:10:root\\ntty:x:5:\\n")
        (0, 0, [0, 10])
        >>> lookup("root:tty", "root:x:0:0::/:/bin/sh\\n", "root:x:0:\\nwheel:x:10:root\\ntty:x:5:\\n")
        (0, 5, [5])
    """
    name, _, grp = user.partition(":")
    users = parse_passwd(passwd)
    groups = parse_group(group)
    username = None
    if name.isdigit():
        uid, gid = int(name), 0
        for uname, u, g in users:
            if u == uid:
                username, gid = uname, g
                break
    else:
        for uname, u, g in users:
            if uname == name:
                username, uid, gid = uname, u, g
                break
        else:
            raise ContainerStartError(f"unable to find user {name}: no matching entries in passwd file", 126)
    if grp:
        if grp.isdigit():
            gid = int(grp)
        else:
            for gname, g, _ in groups:
                if gname == grp:
                    gid = g
                    break
            else:
                raise ContainerStartError(f"unable to find group {grp}: no matching entries in group file", 126)
    # runc's GetExecUser: /etc/group memberships only in the implicit form (no ``:group``);
    # dockerd >= 20.10.18 (CVE-2022-36109) lists the primary gid among them, first
    member = sorted({g for _, g, members in groups if not grp and username and username in members})
    return uid, gid, [gid, *(g for g in member if g != gid)]


def additional_groups(names: list[str], group: str) -> list[int]:
    """gids for ``--group-add`` entries: a group name or gid found in ``group``, else a number."""
    groups = parse_group(group)
    out: list[int] = []
    for name in names:
        for gname, gid, _ in groups:
            if gname == name or str(gid) == name:
                break
        else:
            if not name.isdigit() or int(name) > 0xFFFFFFFE:
                raise ContainerStartError(f"Unable to find group {name}: no matching entries in group file", 126)
            gid = int(name)
        if gid not in out:
            out.append(gid)
    return out


def read_account_file(graph: Graph, c: Container, path: str, user: str) -> str:
    """The container's /etc/passwd or /etc/group ("" when absent). The graph reads it without
    blocking or following a symlink out of the container; a file that is not a regular one of
    at most 1 MiB (:mod:`berth.accountfile`) fails the lookup of ``user`` (runc's wording)."""
    if not hasattr(graph, "read_file"):
        return ""
    try:
        data = graph.read_file(c.id, path)
    except AccountFileError as exc:
        raise ContainerStartError(f"unable to find user {user}: {exc}", 126) from exc
    return (data or b"").decode(errors="replace")


def read_account_files(graph: Graph, c: Container, paths: tuple[str, ...], user: str) -> list[str]:
    """:func:`read_account_file` of each path, the container's layers looked up once (the
    start's host-side thread reads /etc/passwd and /etc/group)."""
    if not hasattr(graph, "read_files"):
        return [read_account_file(graph, c, p, user) for p in paths]
    try:
        found = graph.read_files(c.id, paths)
    except AccountFileError as exc:
        raise ContainerStartError(f"unable to find user {user}: {exc}", 126) from exc
    return [(data or b"").decode(errors="replace") for data in found]


def resolve_user(graph: Graph, c: Container, user: str) -> tuple[int, int, list[int]]:
    """(uid, gid, supplementary gids) for ``user`` in container ``c``: :func:`lookup`'s, then the
    container's --group-add (each gid once; the kernel sorts the list)."""
    if not user:
        user = "0"
    passwd, group = read_account_files(graph, c, ("/etc/passwd", "/etc/group"), user)
    uid, gid, extra = lookup(user, passwd, group)
    group_add = (getattr(c, "host_config", None) or {}).get("GroupAdd") or []
    for g in additional_groups([str(n) for n in group_add], group):
        if g not in extra:
            extra.append(g)
    return uid, gid, extra
