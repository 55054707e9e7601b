"""Applying layer tars safely (berth.drivers.graph.archive): paths, links, formats, whiteouts."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import uuid
from pathlib import Path

import pytest

from berth.drivers.graph.archive import ArchiveError, apply_tar, tree_size
from berth.errors import InvalidParameter


def entry(
    name: str,
    kind: bytes = tarfile.REGTYPE,
    data: bytes = b"",
    link: str = "",
    mode: int = 0o644,
    **extra: object,
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mtime = 1_700_000_000
    for key, value in extra.items():
        setattr(info, key, value)
    return info, data


def make_tar(*entries: tuple[tarfile.TarInfo, bytes], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


def apply(data: bytes, dest: Path, fmt: str = "delete") -> tuple[str, int]:
    dest.mkdir(exist_ok=True)
    applied = apply_tar(io.BytesIO(data), dest, fmt)  # type: ignore[arg-type]
    return applied.diff_id, applied.size


def test_plain_and_gzip_give_the_same_diff_id_the_sha256_of_the_tar(tmp_path: Path) -> None:
    data = make_tar(
        entry("bin/", tarfile.DIRTYPE, mode=0o755),
        entry("bin/tool", data=b"x" * 1000, mode=0o755),
        entry("bin/alias", tarfile.SYMTYPE, link="tool"),
    )
    plain = apply(data, tmp_path / "a")
    zipped = apply(gzip.compress(data), tmp_path / "b")
    assert plain == zipped == ("sha256:" + hashlib.sha256(data).hexdigest(), 1000 + len("tool"))
    assert (tmp_path / "b" / "bin" / "tool").read_bytes() == b"x" * 1000
    assert os.readlink(tmp_path / "b" / "bin" / "alias") == "tool"
    assert (tmp_path / "b" / "bin" / "tool").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "b" / "bin" / "tool").stat().st_mtime == 1_700_000_000


@pytest.mark.parametrize("name", ["/etc/evil", "../evil", "a/../../evil", "a/../b"])
def test_absolute_and_dotdot_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidParameter, match="refusing"):
        apply(make_tar(entry(name, data=b"x")), tmp_path / "dest")
    assert not (tmp_path / "evil").exists()


def test_symlinked_parent_is_followed_inside_the_layer_only(tmp_path: Path) -> None:
    outside = tmp_path / f"outside-{uuid.uuid4().hex}"
    outside.mkdir()
    data = make_tar(
        entry("abs", tarfile.SYMTYPE, link=str(outside)),
        entry("abs/pwned", data=b"1"),
        entry("rel", tarfile.SYMTYPE, link="../../../../.."),
        entry("rel/pwned2", data=b"2"),
    )
    dest = tmp_path / "dest"
    apply(data, dest)
    assert list(outside.iterdir()) == []
    assert (dest / outside.relative_to("/") / "pwned").read_bytes() == b"1"
    assert (dest / "pwned2").read_bytes() == b"2"


@pytest.mark.parametrize("members, text", [
    ([entry("f", data=b"x"), entry("f/g", data=b"y")], "apply layer: parent f is not a directory"),
    ([entry("a", tarfile.SYMTYPE, link="b"), entry("b", tarfile.SYMTYPE, link="a"), entry("a/x", data=b"y")],
     "apply layer: too many levels of symbolic links at a"),
])
def test_a_bad_parent_is_invalid_and_names_no_host_path(tmp_path: Path, members: list, text: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        apply(make_tar(*members), tmp_path / "dest")
    assert info.value.message == text


def test_existing_symlink_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    dest = tmp_path / "dest"
    apply(make_tar(entry("f", tarfile.SYMTYPE, link=str(victim)), entry("f", data=b"new")), dest)
    assert victim.read_bytes() == b"keep"
    assert not (dest / "f").is_symlink() and (dest / "f").read_bytes() == b"new"


def test_hardlinks_inside_work_and_escaping_ones_are_refused(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    apply(make_tar(entry("a", data=b"abc"), entry("b", tarfile.LNKTYPE, link="a")), dest)
    assert (dest / "a").stat().st_ino == (dest / "b").stat().st_ino
    assert tree_size(dest) == 3  # one inode counted once
    for link in ("/etc/passwd", "../outside", "missing"):
        with pytest.raises(InvalidParameter):
            apply(make_tar(entry("x", tarfile.LNKTYPE, link=link)), tmp_path / f"d-{uuid.uuid4().hex}")


def test_owner_and_xattrs_are_restored(tmp_path: Path) -> None:
    info, data = entry("f", data=b"x", uid=1234, gid=5678)
    info.pax_headers = {"SCHILY.xattr.user.berth": "yes"}
    dest = tmp_path / "dest"
    apply(make_tar((info, data)), dest)
    st = (dest / "f").stat()
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert os.getxattr(dest / "f", "user.berth") == b"yes"


def test_delete_format_whiteouts(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    apply(
        make_tar(
            entry("a", data=b"1"),
            entry("d/", tarfile.DIRTYPE, mode=0o755),
            entry("d/x", data=b"2"),
            entry("keep", data=b"3"),
        ),
        dest,
    )
    apply(
        make_tar(entry("d/new", data=b"4"), entry(".wh.a"), entry("d/.wh..wh..opq"), entry(".wh..wh.plnk")),
        dest,
    )
    assert sorted(p.name for p in dest.iterdir()) == ["d", "keep"]
    assert [p.name for p in (dest / "d").iterdir()] == ["new"]


def test_directory_mtimes_survive_their_children(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    apply(make_tar(entry("d/", tarfile.DIRTYPE, mode=0o750), entry("d/f", data=b"x")), dest)
    st = (dest / "d").stat()
    assert st.st_mtime == 1_700_000_000 and st.st_mode & 0o777 == 0o750


def good_tar() -> bytes:
    return make_tar(entry("a", data=b"A" * 2000), entry("b", data=b"B" * 100))


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda d: b"", id="empty"),
        pytest.param(lambda d: b"this is not a tar archive at all\n" * 40, id="garbage"),
        pytest.param(lambda d: d[:1000], id="cut-inside-file"),
        pytest.param(lambda d: d[: 1536 + 100], id="cut-inside-header"),
        pytest.param(lambda d: d[: 512 * 5] + b"\x01" * 512 + d[512 * 6 :], id="garbage-header-midway"),
        pytest.param(lambda d: gzip.compress(d)[:-30], id="cut-gzip"),
        pytest.param(lambda d: gzip.compress(d)[:20] + b"\xff" * 200, id="corrupt-gzip"),
    ],
)
def test_bad_archives_raise_invalid_parameter(tmp_path: Path, mangle) -> None:  # type: ignore[no-untyped-def]
    data = good_tar()
    with pytest.raises(ArchiveError):
        apply(mangle(data), tmp_path / "dest")


def test_clean_end_without_trailer_is_accepted_like_go(tmp_path: Path) -> None:
    data = good_tar()
    # a: header + 4 blocks; b: header + 1 block -> 7 blocks, then the zero trailer
    diff_id, _ = apply(data[: 512 * 7], tmp_path / "dest")
    assert diff_id == "sha256:" + hashlib.sha256(data[: 512 * 7]).hexdigest()


def test_zero_block_then_data_is_refused_like_go(tmp_path: Path) -> None:
    data = good_tar()
    with pytest.raises(ArchiveError, match="invalid tar header"):
        apply(data[: 512 * 7] + b"\0" * 512 + b"\x01" * 512, tmp_path / "dest")


def test_bzip2_and_xz_layers_and_zstd_refused(tmp_path: Path) -> None:
    import bz2
    import lzma

    data = good_tar()
    expected = "sha256:" + hashlib.sha256(data).hexdigest()
    assert apply(bz2.compress(data), tmp_path / "bz")[0] == expected
    assert apply(lzma.compress(data), tmp_path / "xz")[0] == expected
    with pytest.raises(ArchiveError, match="zstd"):
        apply(b"\x28\xb5\x2f\xfd" + b"\0" * 100, tmp_path / "zst")


class _Trickle(io.RawIOBase):
    """A stream that returns at most ``step`` bytes a read, as a socket or a pipe may."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.pos, self.step = data, 0, step

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        n = self.step if size is None or size < 0 else min(size, self.step)
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out


@pytest.mark.parametrize("step", [700, 1 << 20, 3 << 20])
def test_large_members_short_reads_and_the_tail_check_across_read_ahead(tmp_path: Path, step: int) -> None:
    """The reader fills 1 MiB at a time: members crossing those bounds, a stream that returns
    short reads, and the end check on a tail that straddles two of its reads all still hold."""
    big = os.urandom(2_500_000)
    data = make_tar(entry("big", data=big), *(entry(f"small{i}", data=b"s" * i) for i in range(40)),
                    entry("last", data=b"L" * 1500))
    tee = io.BytesIO()
    dest = tmp_path / f"ok{step}"
    dest.mkdir()
    applied = apply_tar(_Trickle(data, step), dest, "delete", tee)  # type: ignore[arg-type]
    assert applied.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert tee.getvalue() == data
    assert (dest / "big").read_bytes() == big and (dest / "small39").read_bytes() == b"s" * 39
    end = len(data) - 1024  # the two zero blocks (tarfile pads the archive to 10 KiB records)
    while data[end - 512 : end] == b"\0" * 512:
        end -= 512
    bad = data[:end] + b"\0" * 512 + b"\x01" * 512
    (tmp_path / "bad").mkdir()
    with pytest.raises(ArchiveError, match="invalid tar header"):
        apply_tar(_Trickle(bad, step), tmp_path / "bad", "delete")  # type: ignore[arg-type]


def test_a_plain_file_with_the_callers_digest_is_copied_in_the_kernel_not_hashed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``digest`` given (docker load hashed the file already): file data goes file to file by
    copy_file_range, the digest is returned as is, and the tar is as strictly read as ever."""
    big, last = os.urandom(2_500_000), os.urandom(1_500_000)
    data = make_tar(entry("big", data=big), *(entry(f"small{i}", data=b"s" * i) for i in range(40)),
                    entry("last", data=last))
    (tmp_path / "layer.tar").write_bytes(data)
    copied: list[int] = []
    real = os.copy_file_range

    def counting(src: int, dst: int, count: int, *args: object) -> int:
        n = real(src, dst, count, *args)  # type: ignore[arg-type]
        copied.append(n)
        return n

    monkeypatch.setattr(os, "copy_file_range", counting)
    dest = tmp_path / "out"
    dest.mkdir()
    with open(tmp_path / "layer.tar", "rb") as f:
        applied = apply_tar(f, dest, "delete", digest="sha256:" + "ab" * 32)
    assert applied.diff_id == "sha256:" + "ab" * 32  # taken as given: not hashed again
    assert (dest / "big").read_bytes() == big and (dest / "small39").read_bytes() == b"s" * 39
    assert (dest / "last").read_bytes() == last
    assert sum(copied) > 1_500_000  # what was not already read ahead (a MiB) never went through Python
    end = len(data) - 1024
    while data[end - 512 : end] == b"\0" * 512:
        end -= 512
    (tmp_path / "bad.tar").write_bytes(data[:end] + b"\0" * 512 + b"\x01" * 512)
    (tmp_path / "bad").mkdir()
    with open(tmp_path / "bad.tar", "rb") as f, pytest.raises(ArchiveError, match="invalid tar header"):
        apply_tar(f, tmp_path / "bad", "delete", digest="sha256:" + "ab" * 32)
    (tmp_path / "cut.tar").write_bytes(data[: len(data) // 2])
    (tmp_path / "cut").mkdir()
    with open(tmp_path / "cut.tar", "rb") as f, pytest.raises(ArchiveError):
        apply_tar(f, tmp_path / "cut", "delete", digest="sha256:" + "ab" * 32)
