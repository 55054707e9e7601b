"""Container layers on both drivers: the init layer, reading files without a mount, diff,
export and commit -- with changes made through a real mount of the plan."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.accountfile import AccountFileError
from berth.drivers.graph import new_driver, overlay_supported
from berth.errors import Conflict, InvalidParameter, NotFound
from berth.graph import Graph

from .test_graph_support import run_mounted


@pytest.fixture(params=["overlay2", "vfs"])
def graph(request: pytest.FixtureRequest) -> Iterator[Graph]:
    root = Path(tempfile.mkdtemp(prefix=f"berth-gc-{uuid.uuid4().hex[:8]}-", dir="/var/tmp"))
    try:
        if request.param == "overlay2" and not overlay_supported(root / "overlay2"):
            pytest.skip(f"overlayfs does not work under {root} on this kernel")
        g = Graph(root, root / "berth.db", new_driver(request.param, root))
        yield g
        g.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def container(graph: Graph, busybox_tar: Path) -> Iterator[tuple[str, str]]:
    image_id = graph.import_tar(busybox_tar, "busybox", ['CMD ["sh"]'], "")
    cid = uuid.uuid4().hex * 2
    graph.prepare_rw(cid, image_id)
    yield cid, image_id
    if graph.layers.rw(cid) is not None:
        graph.remove_rw(cid)


def in_container(graph: Graph, cid: str, command: str) -> str:
    target = Path(tempfile.mkdtemp(prefix="berth-rootfs-", dir="/var/tmp"))
    try:
        result = run_mounted(graph.rootfs_mounts(cid, target), f"chroot {target} /bin/sh -ec '{command}'")
        assert result.returncode == 0, result.stderr
        return result.stdout
    finally:
        target.rmdir()


def test_init_layer_provides_mount_points_but_is_not_a_change(
    graph: Graph, container: tuple[str, str]
) -> None:
    cid, _ = container
    out = in_container(
        graph,
        cid,
        "ls -d /etc/hosts /etc/resolv.conf /etc/hostname /.dockerenv /proc /sys "
        "/dev/pts /dev/shm /dev/console; readlink /etc/mtab",
    )
    assert out.split()[-1] == "/proc/mounts"
    assert graph.changes(cid) == []


def test_read_file_sees_the_rw_layer_first(graph: Graph, container: tuple[str, str]) -> None:
    cid, _ = container
    passwd = graph.read_file(cid, "/etc/passwd")
    assert passwd is not None and passwd.startswith(b"root:x:0:0:")
    in_container(graph, cid, "echo app:x:1000:1000::/:/bin/sh >> /etc/passwd; rm /etc/group")
    assert graph.read_file(cid, "/etc/passwd").endswith(b"app:x:1000:1000::/:/bin/sh\n")  # type: ignore[union-attr]
    assert graph.read_file(cid, "/etc/group") is None  # whited out
    # symlinks resolve inside the layers; account files are bounded (1 MiB) and must be regular
    in_container(graph, cid, "ln -s /etc/passwd /etc/passwd-link")
    assert graph.read_file(cid, "/etc/passwd-link") == graph.read_file(cid, "/etc/passwd")
    with pytest.raises(AccountFileError, match="larger than 1 MiB"):
        graph.read_file(cid, "/bin/sh")  # busybox, through its symlink
    with pytest.raises(AccountFileError, match="not a regular file"):
        graph.read_file(cid, "/etc")
    assert graph.read_file(cid, "/nope") is None
    with pytest.raises(NotFound):
        graph.read_file("nope", "/etc/passwd")


def test_diff_kinds_like_docker(graph: Graph, container: tuple[str, str]) -> None:
    cid, _ = container
    in_container(graph, cid, "mkdir /root/x; echo hi > /newfile; rm /bin/ls; touch /etc/passwd")
    found = {c["Path"]: c["Kind"] for c in graph.changes(cid)}
    assert found["/newfile"] == 1 and found["/root/x"] == 1
    assert found["/bin/ls"] == 2 and found["/bin"] == 0
    assert found["/etc/passwd"] == 0 and found["/root"] == 0


def test_commit_makes_a_child_image_that_runs(graph: Graph, container: tuple[str, str]) -> None:
    cid, image_id = container
    in_container(graph, cid, "echo committed > /hello.txt; rm /bin/ls")
    config = graph.config(image_id) | {"Cmd": ["cat", "/hello.txt"], "Image": "busybox"}
    new_id = graph.commit(
        cid, "docker.io/library/spycommit:1", ["ENV Z=1", "LABEL app=test"], "msg", "me", config
    )
    info = graph.inspect("spycommit:1")
    assert info["Id"] == new_id and info["Parent"] == image_id and info["Author"] == "me"
    assert info["Config"]["Env"] == ["Z=1"] and info["Config"]["Labels"] == {"app": "test"}
    assert info["Config"]["Cmd"] == ["cat", "/hello.txt"] and info["Container"] == cid
    assert len(info["RootFS"]["Layers"]) == 2
    history = graph.history("spycommit:1")
    assert [h["Id"] for h in history] == [new_id, image_id]
    assert history[0]["CreatedBy"] == "cat /hello.txt" and history[0]["Comment"] == "msg"
    assert history[0]["Tags"] == ["spycommit:1"] and 0 < history[0]["Size"] < 100
    # the base image cannot go while its child exists
    child = uuid.uuid4().hex * 2
    graph.prepare_rw(child, new_id)
    try:
        assert (
            in_container(graph, child, "cat /hello.txt; ls /bin/ls 2>/dev/null || echo no-ls")
            == "committed\nno-ls\n"
        )
    finally:
        graph.remove_rw(child)
    assert graph.list(False, {"reference": ["spycommit"]})[0]["ParentId"] == image_id


def test_commit_without_changes_adds_an_empty_history_entry(graph: Graph, container: tuple[str, str]) -> None:
    cid, image_id = container
    new_id = graph.commit(cid, None, [], "", "", None)
    doc = graph.image_config(new_id)
    assert doc["rootfs"]["diff_ids"] == graph.image_config(image_id)["rootfs"]["diff_ids"]
    assert doc["history"][-1]["empty_layer"] is True
    assert graph.list(True, {"dangling": ["true"]})[0]["Id"] == new_id


def test_commit_then_rmi_of_parent_is_a_hard_conflict(graph: Graph, container: tuple[str, str]) -> None:
    cid, image_id = container
    in_container(graph, cid, "touch /x")
    graph.commit(cid, "child", [], "", "", None)
    graph.remove_rw(cid)
    with pytest.raises(Conflict, match=r"\(cannot be forced\) - image has dependent child images"):
        graph.remove(image_id, True, False, lambda i: [])
    records = graph.remove("child", False, False, lambda i: [])
    # deleting the child would prune an untagged parent; this one is still tagged busybox: kept
    assert records[0] == {"Untagged": "child:latest"} and graph.resolve("busybox") == image_id


def test_export_is_the_merged_tree(graph: Graph, container: tuple[str, str]) -> None:
    cid, _ = container
    in_container(graph, cid, "echo e > /exported; rm /bin/ls")
    out = io.BytesIO()
    graph.export(cid, out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        names = set(tar.getnames())
        assert {"exported", "bin/busybox", "etc/passwd", ".dockerenv", "etc/hosts"} <= names
        assert "bin/ls" not in names
        member = tar.extractfile("bin/busybox")
        assert member is not None
        assert (
            hashlib.sha256(member.read()).digest()
            == hashlib.sha256(Path("/bin/busybox").read_bytes()).digest()
        )


def test_mkdir_for_a_missing_working_dir(graph: Graph, container: tuple[str, str]) -> None:
    cid, _ = container
    in_container(graph, cid, "ln -s /opt /link")
    graph.mkdir(cid, "/srv/app")
    graph.mkdir(cid, "/link/app/../data")  # through a symlink, resolved inside the container
    graph.mkdir(cid, "/etc")  # exists: nothing to do
    assert (
        in_container(graph, cid, "ls -d /srv/app /opt/data; stat -c %a:%u /srv/app")
        == "/opt/data\n/srv/app\n755:0\n"  # ls sorts
    )
    kinds = {c["Path"]: c["Kind"] for c in graph.changes(cid)}
    assert kinds["/srv"] == kinds["/srv/app"] == kinds["/opt/data"] == 1
    with pytest.raises(InvalidParameter, match="is not a directory"):
        graph.mkdir(cid, "/etc/passwd/x")
