"""remove_tree: a directory with mounts below it goes, what is mounted there never does.

Real bind and id-mapped mounts on the host (root); the "unmount impossible" case is real too: a
child in a user and mount namespace of its own, where the copied mounts are locked to it (umount
fails with EINVAL), removes the tree there. shutil.rmtree, which berth used until now, deletes the
sentinel in every one of these set-ups (test_volume_removal_keeps_a_mount_below_it goes through a
caller that used it)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.errors import NotFound
from berth.libcontainer import kernel
from berth.libcontainer.removetree import mounts_under, remove_tree


def _unmount_all(root: Path) -> None:
    for point in mounts_under(str(root)):
        try:
            kernel.umount2(point, kernel.MNT_DETACH)
        except OSError:
            pass


@pytest.fixture
def place(tmp_path: Path) -> Iterator[Path]:
    """<tmp>/vol/sentinel (the user's data) and <tmp>/tree/… (the container's directory)."""
    root = tmp_path / f"rt-{uuid.uuid4().hex[:8]}"
    (root / "vol" / "sub").mkdir(parents=True)
    (root / "vol" / "sentinel").write_text("keep")
    (root / "vol" / "sub" / "deep").write_text("keep too")
    tree = root / "tree"
    (tree / "bundle" / "rootfs").mkdir(parents=True)
    (tree / "bundle" / "idmapped" / "0").mkdir(parents=True)
    (tree / "with space\tand tab").mkdir()
    (tree / "bundle" / "config.json").write_text("{}")
    (tree / "a" / "b" / "c").mkdir(parents=True)
    (tree / "a" / "b" / "c" / "f").write_text("x")
    os.mkfifo(tree / "a" / "fifo")
    os.symlink(root / "vol", tree / "link-to-vol")  # never followed
    os.symlink(root / "vol", tree / "a" / "b" / "dirlink")
    yield root
    _unmount_all(root)
    shutil.rmtree(root, ignore_errors=True)


def _bind(source: Path, target: Path) -> None:
    kernel.mount(str(source), str(target), None, kernel.MS_BIND)


def _idmapped_bind(source: Path, target: Path) -> bool:
    """An id-mapped bind of ``source`` at ``target`` (0 -> 100000 for 65536), as the shim makes a
    runc container's volume; False where this kernel or file system cannot id-map."""
    from berth.libcontainer import Mount, idmapped
    from berth.libcontainer.spec import IdMap

    maps = (IdMap(0, 100000, 65536),)
    try:
        tree = idmapped.mount_clone(Mount("bind", str(source), str(target), ("rbind",), maps, maps))
    except Exception:  # noqa: BLE001 -- any refusal means: no id-mapped mounts here
        return False
    try:
        kernel.move_mount(tree, "", kernel.AT_FDCWD, str(target), kernel.MOVE_MOUNT_F_EMPTY_PATH)
    finally:
        os.close(tree)
    return True


def _data_intact(root: Path) -> None:
    assert (root / "vol" / "sentinel").read_text() == "keep"
    assert (root / "vol" / "sub" / "deep").read_text() == "keep too"


def test_volume_removal_keeps_a_mount_below_it(place: Path) -> None:
    """``docker volume rm`` of a volume with a mount below it (propagated back from a container's
    rshared bind, or made on the host): the volume goes, the mount is not berth's to take away and
    stays, with the files it shows. shutil.rmtree deleted them."""
    from berth.daemon.volumestore import VolumeStore

    store = VolumeStore(place / "volumes")
    store.create("v1")
    data = store.mountpoint("v1")
    (data / "mine").write_text("volume's own")
    (data / "mnt").mkdir()
    _bind(place / "vol", data / "mnt")
    store.remove("v1")
    _data_intact(place)
    assert (data / "mnt" / "sentinel").read_text() == "keep"  # still mounted, untouched
    assert not (data / "mine").exists()
    with pytest.raises(NotFound):
        store.get("v1")


def test_mounts_are_unmounted_then_everything_goes(place: Path) -> None:
    tree = place / "tree"
    _bind(place / "vol", tree / "bundle" / "rootfs")
    _bind(place / "vol", tree / "with space\tand tab")  # mountinfo escapes both
    _bind(place / "vol", tree / "with space\tand tab")  # stacked on the first
    idmapped = _idmapped_bind(place / "vol", tree / "bundle" / "idmapped" / "0")
    assert len(mounts_under(str(tree))) == 3 + idmapped
    assert remove_tree(tree) == []
    assert not tree.exists()
    assert mounts_under(str(place)) == []
    _data_intact(place)


def test_a_mount_left_in_place_is_never_entered(place: Path, caplog: pytest.LogCaptureFixture) -> None:
    """unmount=False (a volume's directory: not our mounts to take away): each mount stays,
    with the directories above it; everything else goes. A plain bind of the same file system
    keeps st_dev: only the mount id tells."""
    tree = place / "tree"
    bound = tree / "bundle" / "rootfs"
    _bind(place / "vol", bound)
    assert os.stat(bound).st_dev == os.stat(tree).st_dev
    kept = [str(bound)]
    if _idmapped_bind(place / "vol", tree / "bundle" / "idmapped" / "0"):
        kept.append(str(tree / "bundle" / "idmapped" / "0"))
    assert sorted(remove_tree(tree, unmount=False)) == sorted(kept)
    assert "still mounted" in caplog.text
    _data_intact(place)
    assert (bound / "sentinel").read_text() == "keep"  # still mounted, untouched
    inside = tuple(k + "/" for k in kept)  # what is in a mount that stayed: the volume's files
    left = sorted(str(p.relative_to(tree)) for p in tree.rglob("*") if not str(p).startswith(inside))
    # the mount points and the directories that hold them; no file, no symlink, nothing else
    assert left == sorted({"bundle", "bundle/rootfs", "bundle/idmapped", *(
        ["bundle/idmapped/0"] if len(kept) == 2 else [])})
    assert (place / "vol").is_dir() and not (place / "vol").is_symlink()


def test_a_mount_that_cannot_be_unmounted(place: Path) -> None:
    """In a user namespace of its own, a child's copies of the host's mounts are locked together
    (umount: EINVAL): remove_tree tries, fails, and leaves them (and their files) alone."""
    tree = place / "tree"
    _bind(place / "vol", tree / "bundle" / "rootfs")
    _bind(place / "vol", tree / "a" / "b")  # a mount over a directory that has files of its own
    r, w = os.pipe()
    go_r, go_w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(r)
            kernel.unshare(kernel.CLONE_NEWUSER | kernel.CLONE_NEWNS)
            os.write(ready_w, b"1")
            os.read(go_r, 1)  # the parent wrote our maps (only a process outside may map root)
            try:
                kernel.umount2(str(tree / "a" / "b"), kernel.MNT_DETACH)
                os.write(w, b"unlocked")  # the kernel let it go: the test proves nothing
            except OSError:
                kept = remove_tree(tree)
                os.write(w, "\n".join(sorted(kept)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    try:
        assert os.read(ready_r, 1) == b"1"
        Path(f"/proc/{pid}/setgroups").write_text("deny")
        Path(f"/proc/{pid}/uid_map").write_text("0 0 4294967295")
        Path(f"/proc/{pid}/gid_map").write_text("0 0 4294967295")
    finally:
        os.write(go_w, b"1")
        for fd in (go_r, go_w, ready_r, ready_w):
            os.close(fd)
    with os.fdopen(r, "rb") as f:
        said = f.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert said != "unlocked", "the mount was not locked in the child's namespace"
    assert said.split("\n") == sorted([str(tree / "a" / "b"), str(tree / "bundle" / "rootfs")])
    _data_intact(place)
    assert not (tree / "link-to-vol").exists() and not (tree / "bundle" / "config.json").exists()


def test_the_path_itself_a_mount_and_symlinks(place: Path) -> None:
    """A path that is itself a mount that stays is left whole; a symlink given as the path is
    removed, never followed."""
    tree = place / "tree"
    _bind(place / "vol", tree)
    assert remove_tree(tree, unmount=False) == [str(tree)]
    _data_intact(place)
    kernel.umount2(str(tree), kernel.MNT_DETACH)
    link = place / "link"
    os.symlink(place / "vol", link)
    assert remove_tree(link) == []
    assert not os.path.lexists(link)
    _data_intact(place)
    assert remove_tree(place / "missing") == []


def test_both_mount_ids_agree(place: Path) -> None:
    """statx's STATX_MNT_ID and name_to_handle_at's mount id (the walk's fallback on kernels
    before 5.8) name the same mount, and tell a bind of the same file system from its parent."""
    tree = place / "tree"
    bound = tree / "bundle" / "rootfs"
    _bind(place / "vol", bound)
    ids = []
    for path in (tree, bound):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            mnt_id, root = kernel.statx_mount(fd)
            assert mnt_id is not None, "kernel before 5.8: no STATX_MNT_ID"
            assert kernel.handle_mount_id(fd) == mnt_id
            ids.append((mnt_id, root))
        finally:
            os.close(fd)
    assert ids[0][0] != ids[1][0] and ids[1][1] and not ids[0][1]


def test_deep_tree_without_recursion_limit(place: Path) -> None:
    tree = place / "tree"
    fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(1200):  # deeper than Python's default recursion limit (and PATH_MAX)
        os.mkdir("d", dir_fd=fd)
        fd, old = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd), fd
        os.close(old)
    os.close(os.open("f", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd))
    os.close(fd)
    assert remove_tree(tree) == []
    assert not tree.exists()
