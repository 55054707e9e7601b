"""The Graph API without root or mounts: berth.graph.testing's vfs graph."""

from __future__ import annotations

import io

import pytest

from berth.errors import Conflict, InvalidParameter, NotFound
from berth.graph.testing import rootfs_tar, temporary_graph

ROOTFS = rootfs_tar(
    {"bin/": b"", "bin/tool": b"#!/bin/sh\n", "bin/alias": "tool", "etc/passwd": b"root:x:0:0::/:\n"}
)


def test_import_inspect_list_tag_remove() -> None:
    with temporary_graph() as graph:
        image_id = graph.import_stream(io.BytesIO(ROOTFS), "docker.io/library/tool:1", ['CMD ["tool"]'], "")
        assert graph.resolve("tool:1") == image_id
        assert graph.inspect("tool:1")["Config"]["Cmd"] == ["tool"]
        assert graph.inspect("tool:1")["Size"] == len(b"#!/bin/sh\n") + len("tool") + len(b"root:x:0:0::/:\n")
        assert graph.tag(image_id, "docker.io/library/tool", "2") == "tool:2"
        assert graph.list(False, {"reference": ["tool:*"]})[0]["RepoTags"] == ["tool:1", "tool:2"]
        graph.prepare_rw("c" * 64, image_id)
        assert graph.read_file("c" * 64, "/etc/passwd") == b"root:x:0:0::/:\n"
        with pytest.raises(Conflict):
            graph.remove(image_id, False, False, lambda i: ["c" * 64])
        graph.remove_rw("c" * 64)
        assert [list(r) for r in graph.remove(image_id, True, False, lambda i: [])][:3] == [
            ["Untagged"],
            ["Untagged"],
            ["Deleted"],
        ]
        with pytest.raises(NotFound):
            graph.resolve("tool:1")


def test_bad_inputs() -> None:
    with temporary_graph() as graph:
        with pytest.raises(InvalidParameter, match="invalid tar"):
            graph.import_stream(io.BytesIO(ROOTFS[:700]), None, [], "")
        with pytest.raises(InvalidParameter, match="invalid reference format"):
            graph.import_stream(io.BytesIO(ROOTFS), "Bad:Name:x", [], "")
        assert graph.layers.rows() == [] and graph.driver.layers() == []


def test_concurrent_imports_lists_and_removals_from_threads() -> None:
    import threading

    errors: list[BaseException] = []
    with temporary_graph() as graph:

        def worker(n: int) -> None:
            try:
                for i in range(5):
                    tar = rootfs_tar({f"f{n}-{i}": str(i).encode(), "shared": b"s"})
                    image_id = graph.import_stream(io.BytesIO(tar), f"docker.io/library/t{n}:{i}", [], "")
                    graph.list(False, {"reference": [f"t{n}"]})
                    graph.inspect(image_id)
                    if i % 2:
                        graph.remove(f"t{n}:{i}", False, False, lambda _id: [])
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(graph.list(False, {})) == 4 * 3
        assert len(graph.layers.rows()) == len(graph.driver.layers()) == 12


def test_containers_of_one_image_created_at_once_share_one_init_layer() -> None:
    """Many read-write layers made from threads on an image never used before: its init layer
    is made once (the stores are locked across the check and the making), every container
    reads its files, and the last removal leaves no dir behind."""
    import threading

    errors: list[BaseException] = []
    with temporary_graph() as graph:
        for round_ in range(3):
            image_id = graph.import_stream(io.BytesIO(rootfs_tar({f"r{round_}": b"x", "etc/passwd": b"r\n"})), None, [], "")
            start = threading.Barrier(6)
            ids = [f"{round_}{n}".ljust(64, "c") for n in range(6)]

            def make(cid: str, image: str = image_id, barrier: threading.Barrier = start) -> None:
                try:
                    barrier.wait()
                    graph.prepare_rw(cid, image)
                except BaseException as exc:  # collected and asserted below
                    errors.append(exc)

            threads = [threading.Thread(target=make, args=(cid,)) for cid in ids]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert errors == []
            for cid in ids:
                assert graph.read_file(cid, "/etc/passwd") == b"r\n"
                assert graph.changes(cid) == []
            for cid in ids:
                graph.remove_rw(cid)
            graph.remove(image_id, False, False, lambda _id: [])
        assert graph.layers.rows() == [] and graph.driver.layers() == []


def test_an_image_removed_while_the_list_is_read_is_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """The list reads the rows, then each image's config, with no lock: an rmi in between makes
    the image absent from the answer, not the whole list a 404."""
    with temporary_graph() as graph:
        kept = graph.import_stream(io.BytesIO(ROOTFS), "docker.io/library/kept:1", [], "")
        gone = graph.import_stream(io.BytesIO(rootfs_tar({"g": b"g"})), "docker.io/library/gone:1", [], "")
        stale = graph.images.rows()  # what the list read before the rmi went through
        graph.remove(gone, False, False, lambda _id: [])
        monkeypatch.setattr(graph.images, "rows", lambda: stale)
        assert [i["Id"] for i in graph.list(False, {})] == [kept]


def test_every_operation_at_once_from_threads_neither_deadlocks_nor_leaves_garbage() -> None:
    """The image store's and the layer store's locks under load: imports, tags, containers'
    layers, commits, rmi, image prune and layer garbage collection from threads at once, on
    shared and private layers. Every thread ends (no lock taken out of order), what is left is
    consistent, and removing the rest leaves no row, dir or blob behind."""
    import threading
    import time

    errors: list[BaseException] = []
    with temporary_graph() as graph:
        base = graph.import_stream(io.BytesIO(ROOTFS), "docker.io/library/base:1", [], "")

        def worker(n: int) -> None:
            try:
                for i in range(4):
                    tar = rootfs_tar({f"w{n}-{i}": b"x", "shared": b"s"})
                    image_id = graph.import_stream(io.BytesIO(tar), f"docker.io/library/w{n}:{i}", [], "")
                    graph.tag(image_id, f"docker.io/library/alias{n}", str(i))
                    cid = f"{n}{i}".ljust(64, "d")
                    graph.prepare_rw(cid, base if i % 2 else image_id)
                    graph.mkdir(cid, f"/made{n}")
                    committed = graph.commit(cid, f"docker.io/library/c{n}:{i}", [], "", "", None)
                    graph.remove_rw(cid)
                    graph.remove(f"alias{n}:{i}", False, False, lambda _id: [])
                    graph.remove(committed, True, False, lambda _id: [])
                    if i % 2:
                        graph.prune({"dangling": ["false"], "label": ["none=1"]}, lambda _id: [])
                    graph.prune_layers()
                    graph.list(False, {})
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60  # the whole takes about 2 s
        for t in threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in threads), "a graph operation never ended (lock order?)"
        assert errors == []
        names = sorted(tag for row in graph.images.rows() for tag in graph.repo_tags(row.id))
        assert names == sorted(["base:1"] + [f"w{n}:{i}" for n in range(4) for i in range(4)])
        rows = graph.layers.rows()
        assert {row.cache_id for row in rows} <= set(graph.driver.layers())
        assert len(rows) == 1 + 16  # base's layer and one per import; commits' layers went
        graph.remove("base:1", False, False, lambda _id: [])
        for n in range(4):
            for i in range(4):
                graph.remove(f"w{n}:{i}", False, False, lambda _id: [])
        assert graph.images.rows() == [] and graph.layers.rows() == [] and graph.driver.layers() == []
        assert list(graph.content.dir.iterdir()) == []


def test_filesystem_errors_become_system_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from berth.errors import SystemFailure

    with temporary_graph() as graph:

        def full(*args: object, **kwargs: object) -> None:
            raise OSError(errno.ENOSPC, "No space left on device", "/var/lib/berth/vfs/dir/x")

        monkeypatch.setattr(graph.driver, "apply_diff", full)
        with pytest.raises(
            SystemFailure, match="apply layer .*: /var/lib/berth/vfs/dir/x: No space left on device"
        ):
            graph.import_stream(io.BytesIO(ROOTFS), "x", [], "")
        assert graph.driver.layers() == [] and list(graph.content.dir.iterdir()) == []


def test_copy_dir_copies_the_merged_view(tmp_path) -> None:  # type: ignore[no-untyped-def]
    tar = rootfs_tar({"data/": b"", "data/a.txt": b"A", "data/sub/": b"", "data/sub/b": b"B", "data/link": "a.txt"})
    with temporary_graph() as graph:
        image_id = graph.import_stream(io.BytesIO(tar), None, ['CMD ["x"]'], "")
        graph.prepare_rw("d" * 64, image_id)
        target = tmp_path / "vol"
        target.mkdir()
        assert graph.copy_dir("d" * 64, "/data", target) is True
        assert (target / "a.txt").read_bytes() == b"A" and (target / "sub" / "b").read_bytes() == b"B"
        assert (target / "link").is_symlink() and (target / "link").read_bytes() == b"A"
        assert graph.copy_dir("d" * 64, "/nothere", tmp_path / "other") is False
        assert graph.copy_dir("d" * 64, "/data/a.txt", tmp_path / "other") is False
        graph.remove_rw("d" * 64)


def test_resolve_cached_holds_until_a_name_or_an_image_changes() -> None:
    """A create's image looked up without I/O (Graph.resolve_cached): what resolve answered last,
    void once a tag or an image changed; containers' layers coming and going change no name."""
    other_rootfs = rootfs_tar({"bin/": b"", "bin/other": b"#!/bin/sh\n"})
    with temporary_graph() as graph:
        first = graph.import_stream(io.BytesIO(ROOTFS), "docker.io/library/tool:1", ['CMD ["tool"]'], "")
        assert graph.resolve_cached("tool:1") is None  # never asked
        assert graph.resolve("tool:1") == first
        assert graph.resolve_cached("tool:1") == first
        loaded = graph.config(first)  # the document read once (then kept: configs never change)
        assert graph.config_cached(first) == loaded
        graph.prepare_rw("c" * 64, first)
        graph.remove_rw("c" * 64)
        assert graph.resolve_cached("tool:1") == first, "a container's layer is no name"
        second = graph.import_stream(io.BytesIO(other_rootfs), "docker.io/library/other:1", [], "")
        assert graph.resolve_cached("tool:1") is None, "an image came: ask again"
        assert graph.resolve("tool:1") == first
        graph.tag(second, "docker.io/library/tool", "1")  # the tag moves
        assert graph.resolve_cached("tool:1") is None
        assert graph.resolve("tool:1") == second
        graph.remove("tool:1", False, False, lambda i: [])
        assert graph.resolve_cached("tool:1") is None
        with pytest.raises(NotFound):
            graph.resolve("tool:1")
