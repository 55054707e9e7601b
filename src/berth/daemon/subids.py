"""Subordinate ids: ``/etc/subuid`` and ``/etc/subgid``, and berth's own remap user.

Each line is ``NAME_OR_UID:START:COUNT``: the host ids ``START .. START+COUNT-1`` belong to that
user (shadow-utils' format; a user may have several lines). ``--userns-remap`` maps a container's
ids onto the remap user's ranges, as dockerd does::

    ranges("berthremap", 998, Path("/etc/subuid"))   # [(100000, 65536), (165536, 2097152)]

``--userns-remap=default`` names berth's own user, ``berthremap`` (dockerd's is ``dockremap``):
:func:`ensure_default_user` creates it (``useradd --system``, no home, no shell) with two
ranges when it has none, the first free ids from 100000 up: 65536 ids for the daemon-wide
mapping and 32 blocks of 65536 that ``--userns=auto`` containers draw from (docs/decisions.md).
Creation holds a lock so two berthds starting together do not both add ranges.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import subprocess
from pathlib import Path

from berth.errors import InvalidParameter, SystemFailure

DEFAULT_USER = "berthremap"
SUBUID = Path("/etc/subuid")
SUBGID = Path("/etc/subgid")
FIRST_ID = 100000  # where dockerd and shadow-utils start handing out subordinate ids
BLOCK = 65536
AUTO_BLOCKS = 32  # the default user's pool for --userns=auto containers
LOCK = Path("/run/berth-subids.lock")

Range = tuple[int, int]  # (first host id, count)


def parse(text: str) -> list[tuple[str, int, int]]:
    """The lines of a subuid/subgid file: (name or uid, start, count); malformed lines skipped
    (shadow-utils ignores them too)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
            continue
        out.append((parts[0], int(parts[1]), int(parts[2])))
    return out


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def ranges(name: str, uid: int | None, path: Path) -> list[Range]:
    """``name``'s ranges in ``path`` (lines naming the user or its numeric id), in file order."""
    keys = {name} | ({str(uid)} if uid is not None else set())
    return [(start, count) for who, start, count in parse(_read(path)) if who in keys and count > 0]


def free_start(texts: list[str], count: int, first: int = FIRST_ID) -> int:
    """The lowest id >= ``first`` where ``count`` ids overlap no range of any of the files."""
    used = sorted((start, start + n) for text in texts for _who, start, n in parse(text))
    start = first
    for lo, hi in used:
        if hi <= start:
            continue
        if lo >= start + count:
            break
        start = max(start, hi)
    return start


def ensure_default_user() -> None:
    """Create :data:`DEFAULT_USER` and its subordinate ranges if it has none."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            pw = pwd.getpwnam(DEFAULT_USER)
        except KeyError:
            _run("useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                 "--shell", "/bin/false", DEFAULT_USER)
            pw = pwd.getpwnam(DEFAULT_USER)
        if ranges(DEFAULT_USER, pw.pw_uid, SUBUID) and ranges(DEFAULT_USER, pw.pw_uid, SUBGID):
            return
        texts = [_read(SUBUID), _read(SUBGID)]
        first = free_start(texts, BLOCK)
        pool = free_start(texts, BLOCK * AUTO_BLOCKS, first + BLOCK)
        for path in (SUBUID, SUBGID):  # usermod wants the files to exist
            if not path.exists():
                path.touch(mode=0o644)
        # one usermod per range: the daemon-wide one must be the user's first line (given
        # together, usermod writes them in another order)
        for start, count in ((first, BLOCK), (pool, BLOCK * AUTO_BLOCKS)):
            span = f"{start}-{start + count - 1}"
            _run("usermod", "--add-subuids", span, "--add-subgids", span, DEFAULT_USER)
    finally:
        os.close(fd)


def _run(*argv: str) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SystemFailure(f"userns-remap: run {argv[0]}: {exc}") from exc
    if done.returncode != 0:
        raise SystemFailure(f"userns-remap: {' '.join(argv)}: {done.stderr.strip() or done.returncode}")


def lookup(spec: str) -> tuple[str, int | None, str, int | None]:
    """``USER[:GROUP]`` (names or numeric ids) -> (user name, uid, group name, gid); a numeric id
    without a passwd entry keeps no name (its subordinate lines must then name the number)."""
    user, _, group = spec.partition(":")
    if not user:
        raise InvalidParameter(f"invalid --userns-remap {spec!r}: no user")
    uname, uid = _user(user)
    if not group:
        if uid is not None:
            try:
                return uname, uid, _group_name(pwd.getpwuid(uid).pw_gid), pwd.getpwuid(uid).pw_gid
            except KeyError:
                pass
        return uname, uid, uname, None
    gname, gid = _group(group)
    return uname, uid, gname, gid


def _user(text: str) -> tuple[str, int | None]:
    try:
        if text.isdigit():
            return pwd.getpwuid(int(text)).pw_name, int(text)
        pw = pwd.getpwnam(text)
        return pw.pw_name, pw.pw_uid
    except KeyError:
        if text.isdigit():
            return text, int(text)
        raise InvalidParameter(f"--userns-remap: no such user {text!r}") from None


def _group(text: str) -> tuple[str, int | None]:
    import grp

    try:
        if text.isdigit():
            return grp.getgrgid(int(text)).gr_name, int(text)
        gr = grp.getgrnam(text)
        return gr.gr_name, gr.gr_gid
    except KeyError:
        if text.isdigit():
            return text, int(text)
        raise InvalidParameter(f"--userns-remap: no such group {text!r}") from None


def _group_name(gid: int) -> str:
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
