"""berth.container.files on a plain directory used as a view's root: resolution, pack, unpack,
and the escapes docker cp has known (``..``, absolute and relative symlinks, symlinks in the
archive, hard links out, a symlink swapped in while the copy runs)."""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.container.files.pack import pack
from berth.container.files.resolve import clean_path, go_base, go_mode, resolve_resource, scoped_path
from berth.container.files.unpack import UnpackError, UnpackOptions, go_clean, unpack


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[tuple[Path, Path, int]]:
    """(host dir holding a secret, the view root, its fd)"""
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_text("host secret\n")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "secret").write_text("container secret\n")
    (root / "d" / "sub").mkdir(parents=True)
    (root / "d" / "f").write_text("hi\n")
    os.symlink("/etc", root / "d" / "etclink")
    os.symlink("../../..", root / "d" / "up")
    os.symlink(str(host), root / "d" / "hostlink")  # absolute: the host's path, the container's meaning
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    yield host, root, fd
    os.close(fd)


def _tar(members: list[tuple[str, str, str]]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, kind, value in members:
            info = tarfile.TarInfo(name)
            if kind == "f":
                data = value.encode()
                info.size, info.mode = len(data), 0o644
                t.addfile(info, io.BytesIO(data))
            elif kind == "d":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                t.addfile(info)
            elif kind == "l":
                info.type, info.linkname = tarfile.SYMTYPE, value
                t.addfile(info)
            elif kind == "h":
                info.type, info.linkname = tarfile.LNKTYPE, value
                t.addfile(info)
    buf.seek(0)
    return buf


def _names(root_fd: int, path: str) -> dict[str, bytes]:
    data = b"".join(pack(root_fd, resolve_resource(root_fd, path)))
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        for m in t.getmembers():
            f = t.extractfile(m) if m.isreg() else None
            out[m.name] = f.read() if f else m.linkname.encode()
    return out


def test_paths_clean_like_go() -> None:
    assert clean_path("/d/../../etc//hosts") == "/etc/hosts"
    assert clean_path("d/") == "/d/"
    assert clean_path("/d/.") == "/d/."
    assert clean_path(".") == "/."
    assert go_base("/") == "/" and go_base("/d/") == "d" and go_base("/d/.") == "."
    assert go_clean("a/../../x") == "../x" and go_clean("/abs") == "/abs" and go_clean("./") == "."
    assert go_mode(stat.S_IFDIR | 0o755) == (1 << 31) | 0o755
    assert go_mode(stat.S_IFLNK | 0o777) == (1 << 27) | 0o777
    assert go_mode(stat.S_IFDIR | 0o1777) == (1 << 31) | (1 << 20) | 0o777


def test_symlinks_resolve_inside_the_root(tree: tuple[Path, Path, int]) -> None:
    host, _root, fd = tree
    assert scoped_path(fd, "/d/up/etc/secret") == "/etc/secret"
    assert scoped_path(fd, "/d/hostlink/secret") == str(host / "secret")  # a path *in* the container
    res = resolve_resource(fd, "/d/up")
    assert stat.S_ISLNK(res.st.st_mode) and res.link_target == "/"
    res = resolve_resource(fd, "/d/etclink/")
    assert res.is_dir and res.name == "etclink"
    with pytest.raises(FileNotFoundError):
        resolve_resource(fd, "/d/hostlink/secret")  # the host's file is not there in the container


@pytest.mark.parametrize(
    "path",
    ["/../../../secret", "/d/up/../../secret", "/d/hostlink/secret", "/d/hostlink/../host/secret"],
)
def test_pack_never_reads_a_host_file(tree: tuple[Path, Path, int], path: str) -> None:
    _host, _root, fd = tree
    try:
        names = _names(fd, path)
    except FileNotFoundError:
        return
    assert all(b"host secret" not in v for v in names.values())


def test_pack_follows_no_symlink_in_the_tree(tree: tuple[Path, Path, int]) -> None:
    _host, _root, fd = tree
    names = _names(fd, "/d")
    assert names["d/up"] == b"../../.." and names["d/hostlink"].endswith(b"/host")
    assert not any(n.startswith("d/up/") or n.startswith("d/hostlink/") for n in names)
    assert _names(fd, "/d/up/")["up/etc/secret"] == b"container secret\n"


def test_unpack_rules(tree: tuple[Path, Path, int]) -> None:
    host, root, fd = tree
    opts = UnpackOptions(no_overwrite_dir_non_dir=True)
    with pytest.raises(UnpackError, match=r'"../../evil" is outside of "/d"'):
        unpack(fd, "/d", _tar([("../../evil", "f", "x")]), opts)
    with pytest.raises(UnpackError, match=r'invalid symlink "/d/sl" -> "../../../.."'):
        unpack(fd, "/d", _tar([("sl", "l", "../../../..")]), opts)
    with pytest.raises(UnpackError, match=r'invalid hardlink "/etc/secret" -> "../etc/secret"'):
        unpack(fd, "/d", _tar([("hl", "h", "../etc/secret")]), opts)
    with pytest.raises(UnpackError, match=r'cannot overwrite directory "/d/sub" with non-directory "/d"'):
        unpack(fd, "/d", _tar([("sub", "f", "x")]), opts)
    # an absolute symlink is kept; writing through it lands in the container, never on the host:
    # refused while the target is missing in the container (dockerd's MkdirAll fails too) ...
    with pytest.raises(UnpackError, match="mkdir /d/abs"):
        unpack(fd, "/d", _tar([("abs", "l", str(host)), ("abs/pwned", "f", "x")]), opts)
    assert not (host / "pwned").exists()
    # ... and into the container's directory of that name once there is one
    (root / str(host).lstrip("/")).mkdir(parents=True)
    unpack(fd, "/d", _tar([("abs/pwned", "f", "x"), ("/absname", "f", "y")]), opts)
    assert not (host / "pwned").exists()
    assert (root / str(host).lstrip("/") / "pwned").read_text() == "x"
    assert (root / "d" / "absname").read_text() == "y"
    # extracting at a symlink that leads "out": its target is taken inside the root
    unpack(fd, scoped_path(fd, "/d/hostlink"), _tar([("via-link", "f", "z")]), opts)
    assert not (host / "via-link").exists()


def test_unpack_keeps_owner_and_mode(tree: tuple[Path, Path, int]) -> None:
    _host, root, fd = tree
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("own")
        info.size, info.mode, info.uid, info.gid = 1, 0o4755, 1234, 4321
        t.addfile(info, io.BytesIO(b"o"))
    buf.seek(0)
    unpack(fd, "/d", buf, UnpackOptions())
    st = os.stat(root / "d" / "own")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 4321, 0o4755)
    buf.seek(0)
    unpack(fd, "/d", buf, UnpackOptions(chown=(7, 8)))
    st = os.stat(root / "d" / "own")
    assert (st.st_uid, st.st_gid) == (7, 8)


def test_a_symlink_swapped_in_during_the_copy_leads_nowhere(tree: tuple[Path, Path, int]) -> None:
    """CVE-2018-15664: the container swaps a directory for a symlink to the host's directory
    while files are copied in and out; the host's directory is never read or written."""
    host, root, fd = tree
    work = root / "w"
    (work / "real").mkdir(parents=True)
    (work / "real" / "secret").write_text("container file\n")
    os.symlink(str(host), work / "evil")
    stop = threading.Event()

    def swapper() -> None:
        # "dir" is the real directory one moment and a symlink to the host's the next
        while not stop.is_set():
            for src, back in (("real", "real"), ("evil", "evil")):
                try:
                    os.rename(work / src, work / "dir")
                    os.rename(work / "dir", work / back)
                except OSError:
                    if os.path.isdir(work / "dir") and not os.path.islink(work / "dir"):
                        shutil.rmtree(work / "dir", ignore_errors=True)  # made by an unpack meanwhile

    thread = threading.Thread(target=swapper)
    thread.start()
    seen = 0
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                names = _names(fd, "/w/dir/secret")
                seen += 1
                assert all(b"host secret" not in v for v in names.values())
            except (FileNotFoundError, NotADirectoryError):
                pass
            try:
                unpack(fd, "/w/dir", _tar([("dropped", "f", "x")]), UnpackOptions())
            except (UnpackError, FileNotFoundError):
                pass
    finally:
        stop.set()
        thread.join()
    assert seen > 0
    assert sorted(os.listdir(host)) == ["secret"]
    assert (host / "secret").read_text() == "host secret\n"
