"""The Graph on the real kernel, on both drivers: import a busybox rootfs, run it, list,
inspect, tag, rmi, and the all-or-nothing guarantees (a bad tar, a crash mid-import)."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import sqlite3
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.drivers.graph import new_driver, overlay_supported
from berth.errors import Conflict, InvalidParameter, NotFound
from berth.graph import Graph

from .test_graph_support import entry, make_tar, run_mounted


@pytest.fixture(params=["overlay2", "vfs"])
def graph(request: pytest.FixtureRequest) -> Iterator[Graph]:
    root = Path(tempfile.mkdtemp(prefix=f"berth-graph-{uuid.uuid4().hex[:8]}-", dir="/var/tmp"))
    try:
        if request.param == "overlay2" and not overlay_supported(root / "overlay2"):
            pytest.skip(f"overlayfs does not work under {root} on this kernel")
        g = Graph(root, root / "berth.db", new_driver(request.param, root))
        yield g
        g.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def reopen(graph: Graph) -> Graph:
    graph.close()
    return Graph(graph.root, graph.root / "berth.db", new_driver(graph.driver.name, graph.root))


def apparent_size(tar_path: Path) -> int:
    with tarfile.open(tar_path) as tar:
        return sum(m.size if m.isreg() else len(m.linkname) if m.issym() else 0 for m in tar)


def on_disk(graph: Graph) -> tuple[list[str], list[str], list[tuple], list[tuple]]:  # type: ignore[type-arg]
    conn = sqlite3.connect(graph.root / "berth.db")
    try:
        rows = (
            conn.execute("SELECT * FROM images").fetchall(),
            conn.execute("SELECT * FROM layers").fetchall(),
        )
    finally:
        conn.close()
    return graph.driver.layers(), sorted(p.name for p in graph.content.dir.iterdir()), *rows


def test_import_busybox_inspect_and_run_it(graph: Graph, busybox_tar: Path) -> None:
    image_id = graph.import_tar(busybox_tar, "busybox", ['CMD ["sh"]'], "")
    assert graph.resolve("busybox") == graph.resolve("busybox:latest") == image_id
    info = graph.inspect("busybox")
    assert info["Id"] == image_id and info["RepoTags"] == ["busybox:latest"] and info["RepoDigests"] == []
    assert info["Comment"] == "Imported from -" and info["Parent"] == ""
    assert info["Config"]["Cmd"] == ["sh"] and info["Config"]["Env"] is None
    assert info["RootFS"] == {
        "Type": "layers",
        "Layers": ["sha256:" + hashlib.sha256(busybox_tar.read_bytes()).hexdigest()],
    }
    assert info["Size"] == info["VirtualSize"] == apparent_size(busybox_tar)
    assert info["GraphDriver"]["Name"] == graph.driver.name
    assert info["Metadata"]["LastTagTime"] != "0001-01-01T00:00:00Z"
    assert graph.config(image_id)["Cmd"] == ["sh"]
    # the image id is the sha256 of the stored config bytes
    assert "sha256:" + hashlib.sha256(graph.config_bytes(image_id)).hexdigest() == image_id

    cid = uuid.uuid4().hex * 2
    graph.prepare_rw(cid, image_id)
    target = Path(tempfile.mkdtemp(prefix="berth-rootfs-", dir="/var/tmp"))
    try:
        script = (
            f"chroot {target} /bin/sh -c 'echo hello from $(/bin/busybox basename /bin/sh); echo x > /tmp/w'"
        )
        result = run_mounted(graph.rootfs_mounts(cid, target), script)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "hello from sh\n"
        assert graph.rw_size(cid) >= 2
    finally:
        graph.remove_rw(cid)
        target.rmdir()
    with pytest.raises(NotFound):
        graph.rootfs_mounts(cid, target)


def test_import_gzip_with_changes_and_message(graph: Graph, busybox_tar: Path, tmp_path: Path) -> None:
    zipped = tmp_path / "rootfs.tar.gz"
    zipped.write_bytes(gzip.compress(busybox_tar.read_bytes()))
    image_id = graph.import_tar(
        zipped,
        "127.0.0.1:5000/bbx:v1",
        [
            'CMD ["sh"]',
            "ENV A=1",
            "LABEL app=test",
            "EXPOSE 80",
            "WORKDIR /srv",
            "USER nobody",
            "VOLUME /data",
        ],
        "imported for test",
    )
    info = graph.inspect("127.0.0.1:5000/bbx:v1")
    assert info["Id"] == image_id and info["RepoTags"] == ["127.0.0.1:5000/bbx:v1"]
    assert info["Comment"] == "imported for test"
    config = info["Config"]
    assert (config["Env"], config["Labels"], config["ExposedPorts"]) == (
        ["A=1"],
        {"app": "test"},
        {"80/tcp": {}},
    )
    assert (config["WorkingDir"], config["User"], config["Volumes"]) == ("/srv", "nobody", {"/data": {}})
    assert graph.image_config(image_id)["history"] == [
        {"created": info["Created"], "comment": "imported for test"}
    ]
    # the same content imported twice shares one layer
    graph.import_tar(busybox_tar, "plain", [], "")
    assert len(graph.layers.rows()) == 1


def test_bad_tar_or_bad_change_leaves_nothing_behind(graph: Graph, busybox_tar: Path, tmp_path: Path) -> None:
    graph.import_tar(busybox_tar, "busybox", [], "")
    before = on_disk(graph)
    cut = tmp_path / "cut.tar"
    cut.write_bytes(busybox_tar.read_bytes()[:300_000])
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"not a tar\n" * 1000)
    for path in (cut, garbage):
        with pytest.raises(InvalidParameter):
            graph.import_tar(path, "broken", [], "")
    with pytest.raises(InvalidParameter, match="run is not a valid change command"):
        graph.import_tar(busybox_tar, "broken", ["RUN true"], "")
    with pytest.raises(InvalidParameter, match="invalid reference format"):
        graph.import_tar(busybox_tar, "Broken:x", [], "")
    escaping = tmp_path / "escape.tar"
    escaping.write_bytes(make_tar(entry("ok", data=b"1"), entry("../../etc/evil", data=b"2")))
    with pytest.raises(InvalidParameter, match="outside of the layer"):
        graph.import_tar(escaping, "broken", [], "")
    assert on_disk(graph) == before
    with pytest.raises(NotFound):
        graph.resolve("broken")


def test_a_crash_mid_import_is_collected_at_restart(graph: Graph, busybox_tar: Path) -> None:
    image_id = graph.import_tar(busybox_tar, "busybox", [], "")
    orphan = uuid.uuid4().hex * 2
    graph.driver.create_layer(orphan, None)  # what a SIGKILL between apply and commit leaves
    (graph.content.dir / ".tmp-partial").write_bytes(b"half a blob")
    graph = reopen(graph)
    assert orphan not in graph.driver.layers()
    assert not (graph.content.dir / ".tmp-partial").exists()
    assert graph.resolve("busybox") == image_id and graph.inspect(image_id)["RepoTags"] == ["busybox:latest"]
    graph.close()


def test_resolve_by_ids_and_not_found_texts(graph: Graph, busybox_tar: Path) -> None:
    image_id = graph.import_tar(busybox_tar, None, [], "")
    hex_id = image_id[7:]
    for text in (image_id, hex_id, hex_id[:12], hex_id[:1], "sha256:" + hex_id[:5]):
        assert graph.resolve(text) == image_id
    with pytest.raises(NotFound, match="^No such image: x:latest$"):
        graph.resolve("x")
    with pytest.raises(NotFound, match="^no such image: x: No such image: x:latest$"):
        graph.inspect("x")
    with pytest.raises(NotFound, match=f"^No such image: sha256:{'0' * 64}$"):
        graph.resolve("0" * 64)
    with pytest.raises(InvalidParameter, match="invalid reference format"):
        graph.resolve("UP:per:case")


def test_list_and_filters(graph: Graph, busybox_tar: Path) -> None:
    first = graph.import_tar(busybox_tar, "spybuild:1", ["LABEL stage=test"], "")
    second = graph.import_tar(busybox_tar, "spycommit:1", ["LABEL app=test"], "")
    third = graph.import_tar(busybox_tar, None, [], "")
    graph.tag(second, "docker.io/library/spycommit", "2")
    graph.tag("spybuild:1", "127.0.0.1:5051/bbx", "v1")
    rows = graph.list(False, {})
    assert [r["Id"] for r in rows] == [third, second, first]  # newest first
    assert rows[0]["RepoTags"] == ["<none>:<none>"] and rows[0]["RepoDigests"] == ["<none>@<none>"]
    assert rows[1]["RepoTags"] == ["spycommit:1", "spycommit:2"] and rows[1]["RepoDigests"] is None
    assert (
        rows[1]["Labels"] == {"app": "test"} and rows[1]["Containers"] == -1 and rows[1]["SharedSize"] == -1
    )
    assert rows[1]["Size"] == apparent_size(busybox_tar) and isinstance(rows[1]["Created"], int)

    def ids(filters: dict) -> list[str]:  # type: ignore[type-arg]
        return [r["Id"] for r in graph.list(True, filters)]

    assert ids({"reference": {"spy*": True}}) == [second, first]
    assert graph.list(True, {"reference": ["spycommit:2"]})[0]["RepoTags"] == ["spycommit:2"]
    assert ids({"reference": ["127.0.0.1:5051/bbx"]}) == [first]
    assert ids({"label": ["app=test"]}) == [second] and ids({"label": ["stage"]}) == [first]
    assert ids({"dangling": ["true"]}) == [third] and ids({"dangling": {"false": True}}) == [second, first]
    assert ids({"before": [second]}) == [first] and ids({"since": ["spybuild:1"]}) == [third, second]
    with pytest.raises(InvalidParameter):
        graph.list(False, {"bogus": ["1"]})


def test_rmi_untags_conflicts_and_deletes(graph: Graph, busybox_tar: Path) -> None:
    image_id = graph.import_tar(busybox_tar, "busybox", [], "")
    graph.tag("busybox", "docker.io/myrepo/bb", "v1")
    container = "f8c7ca271393" + "0" * 52
    users = lambda i: [container] if i == image_id else []  # noqa: E731
    # more than one tag: rmi of a name only untags, even while a container uses the image
    assert graph.remove("myrepo/bb:v1", False, False, users) == [{"Untagged": "myrepo/bb:v1"}]
    short = image_id[7:19]
    with pytest.raises(Conflict) as err:
        graph.remove("busybox", False, False, users)
    assert str(err.value) == (
        'conflict: unable to remove repository reference "busybox" (must force) - '
        f"container f8c7ca271393 is using its referenced image {short}"
    )
    with pytest.raises(
        Conflict, match=f"unable to delete {short} \\(must be forced\\) - image is being used"
    ):
        graph.remove(short, False, False, users)
    layers = graph.layers.rows()
    records = graph.remove("busybox", False, False, lambda i: [])
    assert records == [{"Untagged": "busybox:latest"}, {"Deleted": image_id}, {"Deleted": layers[0].chain_id}]
    assert graph.images.rows() == [] and graph.layers.rows() == [] and graph.driver.layers() == []
    assert list(graph.content.dir.iterdir()) == []
    with pytest.raises(NotFound):
        graph.remove("busybox", False, False, lambda i: [])


def test_forced_rmi_keeps_layers_a_container_still_uses(graph: Graph, busybox_tar: Path) -> None:
    image_id = graph.import_tar(busybox_tar, "busybox", [], "")
    cid = uuid.uuid4().hex * 2
    graph.prepare_rw(cid, image_id)
    records = graph.remove("busybox", True, False, lambda i: [cid])
    assert records == [{"Untagged": "busybox:latest"}, {"Deleted": image_id}]
    assert len(graph.layers.rows()) == 1  # the container's layer still stands on it
    target = Path(tempfile.mkdtemp(prefix="berth-rootfs-", dir="/var/tmp"))
    try:
        result = run_mounted(graph.rootfs_mounts(cid, target), f"chroot {target} /bin/true")
        assert result.returncode == 0, result.stderr
    finally:
        target.rmdir()
    graph.remove_rw(cid)
    assert graph.layers.rows() == [] and graph.driver.layers() == []


def test_shared_layers_survive_until_the_last_image(graph: Graph, busybox_tar: Path) -> None:
    one = graph.import_tar(busybox_tar, "one", ["ENV N=1"], "")
    two = graph.import_tar(busybox_tar, "two", ["ENV N=2"], "")
    assert graph.remove("one", False, False, lambda i: []) == [{"Untagged": "one:latest"}, {"Deleted": one}]
    assert len(graph.driver.layers()) == 1
    by_id = graph.remove(two[7:19], False, False, lambda i: [])
    assert by_id[:2] == [{"Untagged": "two:latest"}, {"Deleted": two}] and len(by_id) == 3
    assert graph.driver.layers() == []


def test_tag_errors_and_retag(graph: Graph, busybox_tar: Path) -> None:
    first = graph.import_tar(busybox_tar, "app", ["ENV V=1"], "")
    second = graph.import_tar(busybox_tar, None, ["ENV V=2"], "")
    assert graph.tag(second, "docker.io/library/app", "latest") == "app:latest"
    assert graph.resolve("app") == second
    assert graph.list(False, {"dangling": ["true"]})[0]["Id"] == first  # the old image lost its tag
    with pytest.raises(InvalidParameter):
        graph.tag(second, "Bad Repo", "x")
    with pytest.raises(NotFound):
        graph.tag("nope", "docker.io/library/app", "2")


def test_history_of_an_import(graph: Graph, busybox_tar: Path) -> None:
    image_id = graph.import_tar(busybox_tar, "busybox", [], "")
    (item,) = graph.history("busybox")
    assert item["Id"] == image_id and item["Tags"] == ["busybox:latest"]
    assert item["Comment"] == "Imported from -" and item["CreatedBy"] == ""
    assert item["Size"] == apparent_size(busybox_tar)


def test_rmi_by_id_with_names_in_two_repositories(graph: Graph, busybox_tar: Path) -> None:
    image_id = graph.import_tar(busybox_tar, "busybox", [], "")
    graph.tag("busybox", "docker.io/library/other", "x")
    short = image_id[7:19]
    with pytest.raises(
        Conflict, match=f"unable to delete {short} \\(must be forced\\) - image is referenced in multiple"
    ):
        graph.remove(short, False, False, lambda i: [])
    records = graph.remove(short, True, False, lambda i: [])
    assert records[:3] == [{"Untagged": "busybox:latest"}, {"Untagged": "other:x"}, {"Deleted": image_id}]
    assert graph.layers_size() == 0


def test_layers_size_counts_shared_layers_once(graph: Graph, busybox_tar: Path) -> None:
    graph.import_tar(busybox_tar, "one", ["ENV A=1"], "")
    graph.import_tar(busybox_tar, "two", ["ENV A=2"], "")
    assert graph.layers_size() == apparent_size(busybox_tar)
