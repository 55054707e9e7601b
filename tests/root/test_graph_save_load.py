"""docker save / docker load (docker-archive) and create_image, across two graphs."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from berth.drivers.graph import new_driver, overlay_supported
from berth.errors import InvalidParameter
from berth.graph import Graph

from .test_graph_support import entry, make_tar, run_mounted


@pytest.fixture
def graphs() -> Iterator[Callable[[str], Graph]]:
    made: list[tuple[Graph, Path]] = []

    def make(driver: str) -> Graph:
        root = Path(tempfile.mkdtemp(prefix=f"berth-gsl-{uuid.uuid4().hex[:8]}-", dir="/var/tmp"))
        if driver == "overlay2" and not overlay_supported(root / "overlay2"):
            shutil.rmtree(root)
            pytest.skip(f"overlayfs does not work under {root} on this kernel")
        g = Graph(root, root / "berth.db", new_driver(driver, root))
        made.append((g, root))
        return g

    yield make
    for g, root in made:
        g.close()
        shutil.rmtree(root, ignore_errors=True)


def two_layer_image(graph: Graph, busybox_tar: Path) -> tuple[str, str]:
    base = graph.import_tar(busybox_tar, "busybox", ['CMD ["sh"]'], "")
    cid = uuid.uuid4().hex * 2
    graph.prepare_rw(cid, base)
    (graph.driver.diff_dir(cid) / "hello.txt").write_text("saved\n")
    child = graph.commit(cid, "docker.io/library/spycommit:1", ["ENV Z=1"], "msg", "", None)
    graph.remove_rw(cid)
    return base, child


@pytest.mark.parametrize(("source", "target"), [("overlay2", "vfs"), ("vfs", "overlay2")])
def test_save_then_load_into_another_graph_keeps_ids(
    graphs, busybox_tar: Path, source: str, target: str
) -> None:  # type: ignore[no-untyped-def]
    a, b = graphs(source), graphs(target)
    base, child = two_layer_image(a, busybox_tar)
    out = io.BytesIO()
    a.save(["spycommit:1", "busybox"], out)
    out.seek(0)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert [m["RepoTags"] for m in manifest] == [["spycommit:1"], ["busybox:latest"]]
        assert manifest[0]["Config"] == child[7:] + ".json" and len(manifest[0]["Layers"]) == 2
        shared = tar.getmember(manifest[1]["Layers"][0])  # busybox's top = spycommit's base: a link
        assert shared.issym() and shared.linkname == "../" + manifest[0]["Layers"][0]
        layer = tar.extractfile(manifest[0]["Layers"][0]).read()  # type: ignore[union-attr]
        assert "sha256:" + hashlib.sha256(layer).hexdigest() == a.inspect(base)["RootFS"]["Layers"][0]
        repositories = json.loads(tar.extractfile("repositories").read())  # type: ignore[union-attr]
        assert set(repositories) == {"spycommit", "busybox"}
    assert b.load(out) == ["Loaded image: spycommit:1", "Loaded image: busybox:latest"]
    assert b.resolve("spycommit:1") == child and b.resolve("busybox") == base
    assert b.config_bytes(child) == a.config_bytes(child)
    for diff_id in b.inspect(child)["RootFS"]["Layers"]:  # each layer.tar became the layer's blob
        blob = b.layer_tar(diff_id)
        assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == diff_id
        assert blob.stat().st_mode & 0o777 == 0o600 and blob.stat().st_nlink == 1  # the load's temp file is gone
    cid = uuid.uuid4().hex * 2
    b.prepare_rw(cid, child)
    target_dir = Path(tempfile.mkdtemp(prefix="berth-rootfs-", dir="/var/tmp"))
    try:
        result = run_mounted(b.rootfs_mounts(cid, target_dir), f"chroot {target_dir} /bin/cat /hello.txt")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "saved\n"
    finally:
        target_dir.rmdir()
        b.remove_rw(cid)


def test_save_by_id_has_no_tags_and_load_says_the_id(graphs, busybox_tar: Path) -> None:  # type: ignore[no-untyped-def]
    a, b = graphs("vfs"), graphs("vfs")
    image_id = a.import_tar(busybox_tar, "busybox", [], "")
    out = io.BytesIO()
    a.save([image_id[7:19]], out)
    out.seek(0)
    assert b.load(out) == [f"Loaded image ID: {image_id}"]
    assert b.list(False, {})[0]["RepoTags"] == ["<none>:<none>"]


def test_load_refuses_bad_archives_and_leaves_nothing(graphs, busybox_tar: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    a, b = graphs("vfs"), graphs("vfs")
    a.import_tar(busybox_tar, "busybox", [], "")
    out = io.BytesIO()
    a.save(["busybox"], out)
    data = out.getvalue()
    with pytest.raises(InvalidParameter):
        b.load(io.BytesIO(data[: len(data) // 2]))
    with pytest.raises(InvalidParameter, match="manifest.json"):
        b.load(io.BytesIO(make_tar(entry("x", data=b"1"))))
    # a layer whose bytes do not match the config's diff id
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = [(m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar]  # type: ignore[union-attr]
    evil = make_tar(entry("evil", data=b"!"))
    for member, _ in members:
        if member.name.endswith("layer.tar") and member.isreg():
            member.size = len(evil)
    forged = make_tar(*[(m, evil if m.name.endswith("layer.tar") and m.isreg() else d) for m, d in members])
    with pytest.raises(InvalidParameter, match="diff id"):
        b.load(io.BytesIO(forged))
    assert b.images.rows() == [] and b.layers.rows() == [] and b.driver.layers() == []
    assert list(b.content.dir.iterdir()) == []


def test_concurrent_create_image_applies_a_shared_layer_once(graphs, busybox_tar: Path) -> None:  # type: ignore[no-untyped-def]
    a, b = graphs("overlay2"), graphs("overlay2")
    _, child = two_layer_image(a, busybox_tar)
    other = a.commit(_container(a, child), "other", ["ENV O=1"], "", "", None)
    opened: list[int] = []
    errors: list[BaseException] = []

    def build(image_id: str) -> None:
        diff_ids = a.image_config(image_id)["rootfs"]["diff_ids"]

        def open_layer(index: int):  # type: ignore[no-untyped-def]
            opened.append(index)
            return open(a.layer_tar(diff_ids[index]), "rb")

        try:
            b.create_image(a.config_bytes(image_id), open_layer)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=build, args=(i,)) for i in (child, other, child)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(opened) == [0, 1, 2]  # base, child's layer and other's layer: each once
    assert {b.resolve(child), b.resolve(other)} == {child, other}


def _container(graph: Graph, image_id: str) -> str:
    cid = uuid.uuid4().hex * 2
    graph.prepare_rw(cid, image_id)
    (graph.driver.diff_dir(cid) / "other.txt").write_text("o")
    return cid


# --- layers applied while the archive arrives (graph.ahead; overlay2 only) -------------------------


def _state(g: Graph) -> dict[str, object]:
    """What a load leaves on disk: layer dirs, blobs, temp files."""
    return {"layers": sorted(g.driver.layers()), "blobs": sorted(p.name for p in g.content.dir.iterdir()),
            "tmp": sorted(p.name for p in (g.root / "tmp").iterdir()) if (g.root / "tmp").is_dir() else []}


def _saved(graph: Graph, names: list[str]) -> bytes:
    out = io.BytesIO()
    graph.save(names, out)
    return out.getvalue()


def test_overlay_load_keeps_exactly_the_layers_it_applied_ahead(graphs, busybox_tar: Path) -> None:  # type: ignore[no-untyped-def]
    a, b = graphs("overlay2"), graphs("overlay2")
    base, child = two_layer_image(a, busybox_tar)
    data = _saved(a, ["spycommit:1", "busybox"])  # busybox's layer.tar is a link to spycommit's first
    assert b.load(io.BytesIO(data)) == ["Loaded image: spycommit:1", "Loaded image: busybox:latest"]
    diff_ids = b.inspect(child)["RootFS"]["Layers"]
    state = _state(b)
    assert len(state["layers"]) == 2 and state["tmp"] == []  # type: ignore[arg-type]
    assert state["blobs"] == sorted([child[7:], base[7:], *(d[7:] for d in diff_ids)])
    # the layers got their parents: the child's rootfs has the base's files and its own
    cid = uuid.uuid4().hex * 2
    b.prepare_rw(cid, child)
    target_dir = Path(tempfile.mkdtemp(prefix="berth-rootfs-", dir="/var/tmp"))
    try:
        result = run_mounted(b.rootfs_mounts(cid, target_dir), f"chroot {target_dir} /bin/cat /hello.txt")
        assert result.returncode == 0 and result.stdout == "saved\n", result.stderr
    finally:
        target_dir.rmdir()
        b.remove_rw(cid)
    # loaded again, with every layer in the store: nothing new is applied or left
    state = _state(b)
    assert b.load(io.BytesIO(data)) == ["Loaded image: spycommit:1", "Loaded image: busybox:latest"]
    assert _state(b) == state


def test_overlay_load_refused_after_its_layers_leaves_nothing(graphs, busybox_tar: Path) -> None:  # type: ignore[no-untyped-def]
    a, b = graphs("overlay2"), graphs("overlay2")
    two_layer_image(a, busybox_tar)
    data = _saved(a, ["spycommit:1"])
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar}
        contents = [(m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar]  # type: ignore[union-attr]
    empty = _state(b)
    with pytest.raises(InvalidParameter):  # cut inside manifest.json: every layer came before it
        b.load(io.BytesIO(data[: members["manifest.json"].offset + 700]))
    assert _state(b) == empty and b.images.rows() == [] and b.layers.rows() == []
    # the first layer's bytes do not match the config's diff id: the second was applied ahead too
    first = next(m for m, _ in contents if m.name.endswith("layer.tar"))
    evil = make_tar(entry("evil", data=b"!"))
    forged = make_tar(*[(m, d) if m is not first else (_sized(m, len(evil)), evil) for m, d in contents])
    with pytest.raises(InvalidParameter, match="diff id"):
        b.load(io.BytesIO(forged))
    assert _state(b) == empty and b.images.rows() == [] and b.layers.rows() == []


def _sized(member: tarfile.TarInfo, size: int) -> tarfile.TarInfo:
    member.size = size
    return member


def test_a_layer_file_the_archive_replaces_later_is_not_the_one_loaded(graphs) -> None:  # type: ignore[no-untyped-def]
    """A member of the same name again is a new file: the layer applied from the first one is
    not taken (its path names the second), and its dir and blob go."""
    b = graphs("overlay2")
    first = make_tar(entry("first.txt", data=b"one"))
    second = make_tar(entry("second.txt", data=b"two"))

    def archive(diff_of: bytes) -> bytes:
        config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
            "type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(diff_of).hexdigest()]}}).encode()
        hex_ = hashlib.sha256(config).hexdigest()
        manifest = json.dumps([{"Config": f"{hex_}.json", "RepoTags": ["twice:1"], "Layers": ["l/layer.tar"]}])
        return make_tar(entry(f"{hex_}.json", data=config), entry("l/layer.tar", data=first),
                        entry("l/layer.tar", data=second), entry("manifest.json", data=manifest.encode()))

    empty = _state(b)
    with pytest.raises(InvalidParameter, match="diff id"):
        b.load(io.BytesIO(archive(first)))
    assert _state(b) == empty
    assert b.load(io.BytesIO(archive(second))) == ["Loaded image: twice:1"]
    diff_id = b.inspect("twice:1")["RootFS"]["Layers"][0]
    assert b.layer_tar(diff_id).read_bytes() == second
    assert len(_state(b)["layers"]) == 1  # type: ignore[arg-type]
    assert not (b.content.dir / hashlib.sha256(first).hexdigest()).exists()


def _members(data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [(m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar]  # type: ignore[union-attr]


@pytest.mark.parametrize("driver", ["overlay2", "vfs"])
def test_a_berth_archive_layer_the_store_has_is_not_even_read(graphs, busybox_tar: Path, driver: str) -> None:  # type: ignore[no-untyped-def]
    """save names a layer's file by its chain: where the store has that chain, the load takes
    the layer from the store and never reads the file (as dockerd does): here it is garbage."""
    a = graphs("overlay2")
    _, child = two_layer_image(a, busybox_tar)
    data = _saved(a, ["spycommit:1"])
    garbage = make_tar(entry("garbage", data=b"not this layer"))
    forged = make_tar(*[(_sized(m, len(garbage)), garbage) if m.name.endswith("layer.tar") else (m, d)
                        for m, d in _members(data)])
    fresh = graphs(driver)
    empty = _state(fresh)
    with pytest.raises(InvalidParameter, match="diff id"):  # a store without the layers reads them
        fresh.load(io.BytesIO(forged))
    assert _state(fresh) == empty
    b = graphs(driver)
    assert b.load(io.BytesIO(data)) == ["Loaded image: spycommit:1"]
    state = _state(b)
    b.tag(child, "keep", "1")
    assert b.remove("spycommit:1") == [{"Untagged": "spycommit:1"}]
    watched = _Watching(forged, b.root / "tmp")
    assert b.load(watched) == ["Loaded image: spycommit:1"]  # its files were never opened
    assert b.resolve("spycommit:1") == child
    assert _state(b) == state
    assert watched.sizes and set(watched.sizes.values()) == {0}  # nor even written: placeholders


class _Watching(io.BytesIO):
    """The archive, read in small pieces; before each, the sizes of the layer files the load
    has extracted so far."""

    def __init__(self, data: bytes, tmp: Path) -> None:
        super().__init__(data)
        self.tmp = tmp
        self.sizes: dict[str, int] = {}

    def read(self, size: int | None = -1) -> bytes:
        for path in self.tmp.glob("load-*/*/layer.tar"):
            self.sizes[path.parent.name] = path.stat().st_size
        return super().read(4096)


def test_a_manifest_that_names_a_skipped_file_for_another_layer_is_refused(graphs, busybox_tar: Path) -> None:  # type: ignore[no-untyped-def]
    a, b = graphs("overlay2"), graphs("overlay2")
    _, child = two_layer_image(a, busybox_tar)
    b.import_tar(busybox_tar, "busybox", [], "")  # the base layer is in b: its file is skipped
    members = _members(_saved(a, ["spycommit:1"]))
    manifest = json.loads(next(d for m, d in members if m.name == "manifest.json"))
    manifest[0]["Layers"] = manifest[0]["Layers"][::-1]  # the child's place names the base's file
    swapped = json.dumps(manifest).encode()
    forged = make_tar(*[(_sized(m, len(swapped)), swapped) if m.name == "manifest.json" else (m, d)
                        for m, d in members])
    before = _state(b)
    with pytest.raises(InvalidParameter, match="not the layer its file name says"):
        b.load(io.BytesIO(forged))
    assert _state(b) == before and len(b.layers.rows()) == 1
