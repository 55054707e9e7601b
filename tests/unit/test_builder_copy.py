"""The build context index and COPY/ADD planning and layers (berth.builder.context, .copier)."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest

from berth.builder import copier
from berth.builder.context import BuildContext, ContextError
from berth.builder.imagefs import ImageFS
from berth.builder.sources import ContextSource, ImageSource


def make_tar(entries: list[tuple[str, str, object]], compress: bool = False) -> bytes:
    """entries: (name, kind, payload): file -> bytes, dir -> mode, symlink -> target, hardlink -> target."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_600_000_000
            if kind == "file":
                data = payload if isinstance(payload, bytes) else b""
                info.size, info.mode = len(data), 0o640
                tar.addfile(info, io.BytesIO(data))
            elif kind == "exec":
                data = payload if isinstance(payload, bytes) else b""
                info.size, info.mode = len(data), 0o755
                tar.addfile(info, io.BytesIO(data))
            elif kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, int(payload) if isinstance(payload, int) else 0o755
                tar.addfile(info)
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, str(payload)
                tar.addfile(info)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, str(payload)
                tar.addfile(info)
    raw = buf.getvalue()
    return gzip.compress(raw) if compress else raw


def load(tmp_path: Path, data: bytes) -> BuildContext:
    return BuildContext.load(io.BytesIO(data), tmp_path)


CONTEXT = [
    ("Dockerfile", "file", b"FROM busybox\n"),
    ("hello.txt", "file", b"hello\n"),
    ("run.sh", "exec", b"#!/bin/sh\n"),
    ("src/", "dir", 0o750),
    ("src/a.py", "file", b"a"),
    ("src/pkg/b.py", "file", b"b"),  # its parent comes without an entry of its own
    ("link-in", "symlink", "src/a.py"),
    ("link-out", "symlink", "/etc/passwd"),
    ("up-out", "symlink", "../../../../etc"),
    ("hard", "hardlink", "hello.txt"),
]


def test_context_index_and_scoped_resolution(tmp_path: Path) -> None:
    ctx = load(tmp_path, make_tar(CONTEXT, compress=True))
    try:
        assert ctx.lookup("src/pkg").kind == "dir"  # type: ignore[union-attr]
        assert ctx.lookup("link-in").path == "src/a.py"  # type: ignore[union-attr]
        # symlinks out of the context stop at its root: nothing of the host is ever named
        assert ctx.resolve("link-out") == "etc/passwd" and ctx.lookup("link-out") is None
        assert ctx.resolve("up-out/shadow") == "etc/shadow"
        hard = ctx.lookup("hard")
        assert hard is not None and ctx.read(hard) == b"hello\n"
        assert [e.path for e in ctx.walk("src")] == ["src/a.py", "src/pkg", "src/pkg/b.py"]
        assert ctx.entries["src"].mode == 0o750
    finally:
        ctx.close()
    assert not list(tmp_path.iterdir())  # the spool is gone


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"this is not a tar archive at all, just some text" * 20, "not a tar archive"),
        (make_tar([("../evil", "file", b"x")]), "points outside the context"),
        (make_tar([("a/../../evil", "file", b"x")]), "points outside the context"),
        (make_tar([("h", "hardlink", "missing")]), "hard link"),
    ],
)
def test_hostile_contexts_are_refused(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(ContextError, match=message):
        load(tmp_path, data)
    assert not list(tmp_path.iterdir())


def image_fs(tmp_path: Path) -> ImageFS:
    """One image layer: /etc (with passwd), /usr/bin, /lnk -> /usr/bin, /file."""
    layer = tmp_path / "layer"
    if layer.exists():
        return ImageFS([layer])
    (layer / "etc").mkdir(parents=True)
    (layer / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n")
    (layer / "etc" / "group").write_text("root:x:0:\nstaff:x:50:\n")
    (layer / "usr" / "bin").mkdir(parents=True)
    os.chmod(layer / "usr", 0o711)
    os.symlink("/usr/bin", layer / "lnk")
    (layer / "file").write_text("x")
    return ImageFS([layer])


def layer_entries(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


ROOT = copier.Identity(0, 0)


def copy(tmp_path: Path, sources: list[str], dest: str, *, workdir: str = "/", chmod: int | None = None,
         owner: copier.Identity = ROOT, is_add: bool = False,
         ctx_entries: list[tuple[str, str, object]] = CONTEXT) -> tuple[copier.Plan, dict[str, tarfile.TarInfo]]:
    ctx = load(tmp_path, make_tar(ctx_entries))
    try:
        src = ContextSource(ctx)
        plan = copier.plan(src, sources, {}, is_add, "ADD" if is_add else "COPY", True)
        out = io.BytesIO()
        copier.write_layer(plan, src, image_fs(tmp_path), dest, workdir, owner, chmod, "COPY", out)
    finally:
        ctx.close()
    return plan, layer_entries(out.getvalue())


def test_copy_file_to_new_path_makes_parents(tmp_path: Path) -> None:
    plan, entries = copy(tmp_path, ["hello.txt"], "/opt/app/greeting")
    assert plan.checksum.startswith("file:") and list(plan.files) == ["hello.txt"]
    assert entries["opt"].isdir() and entries["opt"].mode == 0o755
    f = entries["opt/app/greeting"]
    assert f.isfile() and f.mode == 0o640 and (f.uid, f.gid) == (0, 0) and f.mtime == 1_600_000_000


def test_copy_into_directory_and_through_image_symlink(tmp_path: Path) -> None:
    _, entries = copy(tmp_path, ["run.sh"], "/lnk")  # /lnk -> /usr/bin, a directory: lands inside
    assert "usr/bin/run.sh" in entries and entries["usr/bin/run.sh"].mode == 0o755
    assert entries["usr"].mode == 0o711  # an existing parent keeps its metadata
    _, entries = copy(tmp_path, ["hello.txt"], "rel/", workdir="/work")
    assert "work/rel/hello.txt" in entries


def test_copy_directory_copies_its_contents(tmp_path: Path) -> None:
    plan, entries = copy(tmp_path, ["src"], "/app", chmod=0o600, owner=copier.Identity(1000, 1001))
    assert plan.checksum.startswith("dir:")
    assert set(entries) >= {"app", "app/a.py", "app/pkg", "app/pkg/b.py"} and "app/src" not in entries
    assert entries["app"].mode == 0o750  # a new destination takes the source directory's mode
    assert entries["app/a.py"].mode == 0o600 and (entries["app/a.py"].uid, entries["app/a.py"].gid) == (1000, 1001)


def test_copy_symlink_source_is_followed_and_named_as_written(tmp_path: Path) -> None:
    _, entries = copy(tmp_path, ["link-in"], "/d/")
    assert entries["d/link-in"].isfile() and entries["d/link-in"].size == 1


def test_wildcards_and_multiple_sources(tmp_path: Path) -> None:
    plan, entries = copy(tmp_path, ["*.txt", "run.sh"], "/multi/")
    assert plan.checksum.startswith("multi:") and {"multi/hello.txt", "multi/run.sh"} <= set(entries)
    with pytest.raises(copier.CopyError, match="must be a directory and end with a /"):
        copy(tmp_path, ["hello.txt", "run.sh"], "/notadir")
    with pytest.raises(copier.CopyError, match="no source files were specified"):
        copy(tmp_path, ["*.none"], "/x/")


def test_sources_outside_or_through_symlinks_out_of_the_context(tmp_path: Path) -> None:
    with pytest.raises(copier.CopyError, match="forbidden path outside the build context: ../x"):
        copy(tmp_path, ["../x"], "/x")
    with pytest.raises(copier.CopyError, match="file not found in build context .* stat link-out"):
        copy(tmp_path, ["link-out"], "/x")
    with pytest.raises(copier.CopyError, match="file not found"):
        copy(tmp_path, ["up-out/passwd"], "/x")


def test_copy_over_a_file_in_the_image_as_a_directory_fails(tmp_path: Path) -> None:
    with pytest.raises(copier.CopyError, match="not a directory"):
        copy(tmp_path, ["hello.txt"], "/file/x")


def test_add_unpacks_local_archives_and_refuses_breakouts(tmp_path: Path) -> None:
    inner = make_tar([("top/", "dir", 0o700), ("top/f", "file", b"data"), ("top/l", "hardlink", "top/f")],
                     compress=True)
    ctx_entries = [*CONTEXT, ("bundle.tgz", "file", inner)]
    _, entries = copy(tmp_path, ["bundle.tgz"], "/x", is_add=True, ctx_entries=ctx_entries)
    assert entries["x/top"].mode == 0o700 and entries["x/top/f"].size == 4
    assert entries["x/top/l"].islnk() and entries["x/top/l"].linkname == "x/top/f"
    # COPY never unpacks
    _, entries = copy(tmp_path, ["bundle.tgz"], "/x", ctx_entries=ctx_entries)
    assert entries["x"].isfile()
    evil = make_tar([("../../etc/evil", "file", b"x")])
    with pytest.raises(copier.CopyError, match="breakout"):
        copy(tmp_path, ["evil.tar"], "/x", is_add=True, ctx_entries=[*CONTEXT, ("evil.tar", "file", evil)])


def test_checksums_change_with_content_and_mode(tmp_path: Path) -> None:
    a, _ = copy(tmp_path, ["hello.txt"], "/x")
    b, _ = copy(tmp_path, ["hello.txt"], "/x", ctx_entries=[("hello.txt", "file", b"other")])
    c, _ = copy(tmp_path, ["hello.txt"], "/x", ctx_entries=[("hello.txt", "exec", b"hello\n")])
    assert len({a.checksum, b.checksum, c.checksum}) == 3


def test_copy_from_an_image(tmp_path: Path) -> None:
    fs = image_fs(tmp_path)
    src = ImageSource(fs, "stage 0")
    plan = copier.plan(src, ["/lnk/../etc/passwd"], {}, False, "COPY", False)
    assert plan.items[0].node is not None and plan.items[0].node.path == "etc/passwd"
    out = io.BytesIO()
    copier.write_layer(plan, src, ImageFS([]), "/copied", "/", copier.Identity(0, 0), None, "COPY", out)
    entries = layer_entries(out.getvalue())
    assert entries["copied"].size == len((tmp_path / "layer/etc/passwd").read_bytes())


def test_remote_file_names() -> None:
    from berth.builder.remote import filename, is_url

    assert filename("http://h/a/b/app.tgz?x=1", "") == "app.tgz"
    assert filename("http://h/dir/", 'attachment; filename="real.bin"') == "real.bin"
    assert filename("http://h/a%20b.txt", "") == "a b.txt"
    with pytest.raises(Exception, match="cannot determine filename"):
        filename("http://h/", "")
    assert is_url("HTTPS://x/y") and not is_url("file.txt") and not is_url("git@host:x")


def test_a_context_without_padding_after_its_last_file(tmp_path: Path) -> None:
    """What the docker CLI sends with ``-f -``: the last file's bytes, then nothing."""
    data = make_tar([("Dockerfile", "file", b"FROM x\n"), ("last", "file", b"0123456789")])
    cut = data[: data.index(b"0123456789") + 10]
    ctx = load(tmp_path, cut)
    try:
        assert ctx.read(ctx.lookup("last")) == b"0123456789"  # type: ignore[arg-type]
    finally:
        ctx.close()
    with pytest.raises(ContextError, match="not a tar archive"):
        load(tmp_path, data[: data.index(b"0123456789") + 5])  # the last file itself cut short
