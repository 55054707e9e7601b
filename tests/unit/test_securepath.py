"""The one symlink-safe walk, against hostile trees: both ways (openat2's RESOLVE_IN_ROOT and the
component walk) must keep every path inside the root and agree on every answer."""

from __future__ import annotations

import doctest
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.libcontainer import kernel, securepath
from berth.libcontainer.securepath import mkdir_all_in_root, open_in_root, resolve_in_root


def _has_openat2() -> bool:
    try:
        os.close(kernel.openat2(kernel.AT_FDCWD, "/", os.O_PATH, resolve=kernel.RESOLVE_IN_ROOT))
    except OSError:
        return False
    return True


@pytest.fixture(params=["openat2", "walk"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "openat2":
        if not _has_openat2():
            pytest.skip("this kernel has no openat2 (Linux < 5.6) or a filter refuses it")
        monkeypatch.setattr(securepath, "_openat2_usable", True)
    else:
        monkeypatch.setattr(securepath, "_openat2_usable", False)
    yield request.param


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/ holds links that try every way out; outside/ is the host they aim at."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host secret")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("inside")
    (root / "deep" / "a").mkdir(parents=True)
    (root / "file").write_text("plain")
    os.symlink("/etc", root / "abs")  # absolute: the root's /etc
    os.symlink("../../../../..", root / "up")  # climbs past the root: stays at it
    os.symlink("../../../etc", root / "deep" / "a" / "b")
    os.symlink("../outside", root / "escape")  # relative, out of the root
    os.symlink(str(outside), root / "hostabs")  # the host's absolute path
    os.symlink("/proc/self/root/etc", root / "magic")  # through the host's /proc
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    os.symlink("/nowhere/x", root / "dangling")
    for i in range(41):  # chain0 -> chain1 -> ... -> chain40 -> etc: 41 links
        os.symlink(f"chain{i + 1}" if i < 40 else "etc", root / f"chain{i}")
    os.mkfifo(root / "etc" / "fifo")
    return root


def _read(root: Path, path: str, **kw: bool) -> str:
    fd = open_in_root(str(root), path, os.O_RDONLY, **kw)
    try:
        return os.read(fd, 100).decode()
    finally:
        os.close(fd)


def _errno(root: Path | str, path: str, flags: int = os.O_RDONLY, **kw: bool) -> int:
    with pytest.raises(OSError) as info:
        os.close(open_in_root(str(root), path, flags, **kw))
    return info.value.errno or 0


def test_docstring_examples() -> None:
    result = doctest.testmod(securepath)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("path", ["etc/passwd", "/etc/passwd", "abs/passwd", "up/etc/passwd", "up/up/abs/passwd",
                                  "deep/a/b/passwd", "/../../etc/passwd", "deep/../deep/a/b/../etc/passwd",
                                  "chain1/passwd"])
def test_links_resolve_inside_the_root(tree: Path, way: str, path: str) -> None:
    assert _read(tree, path) == "inside"


@pytest.mark.parametrize("path", ["escape/secret", "hostabs/secret", "../outside/secret", "up/../outside/secret",
                                  "magic/passwd"])
def test_nothing_leads_out(tree: Path, way: str, path: str) -> None:
    assert _errno(tree, path) == errno.ENOENT  # what is asked for does not exist in the root


def test_loops_and_long_chains_are_eloop(tree: Path, way: str) -> None:
    assert _errno(tree, "loop1") == errno.ELOOP
    assert _errno(tree, "chain0/passwd") == errno.ELOOP  # 41 links: one past the kernel's 40


def test_a_file_in_the_middle_is_enotdir(tree: Path, way: str) -> None:
    assert _errno(tree, "file/x") == errno.ENOTDIR


def test_nofollow_gives_the_link_itself(tree: Path, way: str) -> None:
    fd = open_in_root(str(tree), "abs", os.O_PATH | os.O_NOFOLLOW)
    try:
        assert stat.S_ISLNK(os.fstat(fd).st_mode)
    finally:
        os.close(fd)
    assert _errno(tree, "abs", os.O_RDONLY | os.O_NOFOLLOW) == errno.ELOOP
    assert _read(tree, "abs/passwd") == "inside"  # only the last component is left alone


def test_symlinks_refused_when_asked(tree: Path, way: str) -> None:
    assert _read(tree, "etc/passwd", symlinks=False) == "inside"
    assert _errno(tree, "abs/passwd", symlinks=False) == errno.ELOOP
    assert _errno(tree, "abs", symlinks=False) == errno.ELOOP


def test_root_as_a_descriptor_and_root_itself(tree: Path, way: str) -> None:
    rfd = os.open(tree, os.O_PATH | os.O_DIRECTORY)
    try:
        fd = open_in_root(rfd, "up/abs/passwd", os.O_RDONLY)
        assert os.read(fd, 10) == b"inside"
        os.close(fd)
        fd = open_in_root(rfd, "/..", os.O_RDONLY | os.O_DIRECTORY)
        assert os.fstat(fd).st_ino == os.stat(tree).st_ino
        os.close(fd)
    finally:
        os.close(rfd)


def test_a_fifo_opens_without_blocking(tree: Path, way: str) -> None:
    fd = open_in_root(str(tree), "abs/fifo", os.O_RDONLY | os.O_NONBLOCK)
    assert stat.S_ISFIFO(os.fstat(fd).st_mode)
    os.close(fd)


def test_creating_is_refused(tree: Path) -> None:
    with pytest.raises(ValueError):
        open_in_root(str(tree), "new", os.O_WRONLY | os.O_CREAT)


def test_resolve_in_root_keeps_the_missing_tail_literal(tree: Path) -> None:
    r = str(tree)
    assert resolve_in_root(r, "/abs/passwd") == f"{r}/etc/passwd"
    assert resolve_in_root(r, "escape/secret") == f"{r}/outside/secret"  # clamped, not the host's
    assert resolve_in_root(r, "hostabs/secret") == f"{r}{tree.parent}/outside/secret"
    assert resolve_in_root(r, "/deep/a/b/new/../hosts") == f"{r}/etc/hosts"
    assert resolve_in_root(r, "dangling") == f"{r}/nowhere/x"
    assert resolve_in_root(r, "file/x") == f"{r}/file/x"  # not a directory: literal, the mount fails later
    assert resolve_in_root(r, "/missing/../abs") == f"{r}/etc"
    with pytest.raises(OSError) as info:
        resolve_in_root(r, "loop1/x")
    assert info.value.errno == errno.ELOOP


def test_mkdir_all_in_root(tree: Path, tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        made = mkdir_all_in_root(str(tree), "abs/new/dir")
        assert made == f"{tree}/etc/new/dir"
        assert stat.S_IMODE(os.stat(made).st_mode) == 0o755 and stat.S_IMODE(os.stat(tree / "etc/new").st_mode) == 0o755
        assert mkdir_all_in_root(str(tree), "escape/x") == f"{tree}/outside/x"
        assert not (tmp_path / "outside" / "x").exists() and (tree / "outside" / "x").is_dir()
        assert mkdir_all_in_root(str(tree), "dangling") == f"{tree}/nowhere/x"  # the link's target, inside
        for bad in ("file/x", "etc/passwd"):
            with pytest.raises(OSError) as info:
                mkdir_all_in_root(str(tree), bad)
            assert info.value.errno == errno.ENOTDIR
        assert mkdir_all_in_root(str(tree), "etc") == f"{tree}/etc"  # there already: fine
    finally:
        os.umask(old)


def test_the_walk_never_reads_a_path_string(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every lookup of the walk is relative to a descriptor it holds: a component swapped for a
    link after it was walked cannot redirect what follows (here: no open without dir_fd)."""
    monkeypatch.setattr(securepath, "_openat2_usable", False)
    real_open = os.open
    seen: list[object] = []

    def watch(path: str, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        seen.append((path, dir_fd))
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "open", watch)
    fd = open_in_root(str(tree), "up/abs/passwd", os.O_RDONLY)
    os.close(fd)
    assert seen[0] == (str(tree), None)  # the root itself
    assert all(d is not None for _, d in seen[1:]) and all("/" not in str(p) for p, _ in seen[1:])


def test_scoped_path_is_the_path_inside_the_root(tree: Path, way: str) -> None:
    from berth.libcontainer.securepath import scoped_path

    rfd = os.open(tree, os.O_PATH | os.O_DIRECTORY)
    try:
        assert scoped_path(rfd, "up/abs/passwd") == "/etc/passwd"
        assert scoped_path(rfd, "escape/secret") == "/outside/secret"
        assert scoped_path(str(tree), "/") == "/" == scoped_path(rfd, "..")
        with pytest.raises(OSError) as info:
            scoped_path(rfd, "chain0")  # 41 links
        assert info.value.errno == errno.ELOOP
        assert scoped_path(rfd, "chain0", max_links=255) == "/etc"  # Docker's FollowSymlinkInScope limit
    finally:
        os.close(rfd)
