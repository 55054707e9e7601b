"""Hostile layer tars (berth.drivers.graph.tarstream, archive): sparse files keep their holes,
sparse maps and special headers are bounded, and members Linux cannot hold are the archive's
fault (ArchiveError, a 400), never an OSError that becomes a 500."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from berth.drivers.graph.archive import ArchiveError, apply_tar
from berth.drivers.graph.tarstream import MAX_SPARSE_ENTRIES, MAX_SPECIAL_HEADER
from berth.graph.budget import UnpackBudget

GIB = 1 << 30
SPARSE_FORMATS = ["gnu", "0.0", "0.1", "1.0"]


def apply(data: bytes, dest: Path) -> tuple[str, int]:
    dest.mkdir(exist_ok=True)
    applied = apply_tar(io.BytesIO(data), dest, "delete")  # type: ignore[arg-type]
    return applied.diff_id, applied.size


def gnu_sparse_tar(tmp_path: Path, fmt: str) -> bytes:
    """A 2 GiB file that is a hole but for 'hello' at 1 MB and 'tail' at its end, archived by
    GNU tar in one of its sparse formats (old GNU, PAX 0.0, 0.1, 1.0)."""
    if shutil.which("tar") is None:
        pytest.skip("GNU tar is not installed (it writes the sparse archives these tests read)")
    src = tmp_path / f"src-{fmt}"
    src.mkdir()
    big = src / "big"
    with open(big, "wb") as f:
        f.truncate(2 * GIB)
        f.seek(1_000_000)
        f.write(b"hello")
        f.seek(2 * GIB - 4)
        f.write(b"tail")
    if os.stat(big).st_blocks * 512 > 1 << 20:
        pytest.skip(f"{tmp_path} does not keep holes, so GNU tar would not write a sparse entry")
    args = ["--format=gnu"] if fmt == "gnu" else ["--format=posix", f"--sparse-version={fmt}"]
    out = subprocess.run(["tar", *args, "-S", "-C", str(src), "-cf", "-", "big"], capture_output=True, check=True)
    return out.stdout


@pytest.mark.parametrize("fmt", SPARSE_FORMATS)
def test_sparse_files_keep_their_holes(tmp_path: Path, fmt: str) -> None:
    data = gnu_sparse_tar(tmp_path, fmt)
    assert len(data) < 64 * 1024  # a few KB describe 2 GiB
    diff_id, size = apply(data, tmp_path / "dest")
    assert diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert size == 2 * GIB
    big = tmp_path / "dest" / "big"
    st = big.stat()
    assert st.st_size == 2 * GIB
    assert st.st_blocks * 512 <= 64 * 1024, f"{st.st_blocks * 512} bytes on disk: the hole was written"
    with open(big, "rb") as f:
        f.seek(1_000_000 - 2)
        assert f.read(9) == b"\0\0hello\0\0"
        f.seek(2 * GIB - 6)
        assert f.read() == b"\0\0tail"


def test_sparse_gzip_is_charged_only_what_it_stores(tmp_path: Path) -> None:
    data = gzip.compress(gnu_sparse_tar(tmp_path, "1.0"))
    budget = UnpackBudget(1 << 20, "import")
    sink = io.BytesIO()
    (tmp_path / "dest").mkdir()
    apply_tar(io.BytesIO(data), tmp_path / "dest", "delete", budget.counting(sink))  # type: ignore[arg-type]
    assert budget.used == len(sink.getvalue()) < 64 * 1024


def test_a_bomb_stops_at_the_budget(tmp_path: Path) -> None:
    info = tarfile.TarInfo("zeros")
    info.size = 8 << 20
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    bomb = gzip.compress(out.getvalue())
    assert len(bomb) < 64 * 1024
    budget = UnpackBudget(1 << 20, "import")
    (tmp_path / "dest").mkdir()
    with pytest.raises(Exception, match=r"import: refusing an archive that unpacks to more than 1048576 bytes"):
        apply_tar(io.BytesIO(bomb), tmp_path / "dest", "delete", budget.counting(io.BytesIO()))  # type: ignore[arg-type]
    assert budget.used <= (1 << 20) + (1 << 20)  # stopped within one read of the limit


def pax_sparse(name: str, size: int, entries: list[tuple[int, int]], stored: bytes) -> bytes:
    """A PAX 0.1 sparse member written by hand (tarfile cannot write sparse files)."""
    info = tarfile.TarInfo(f"GNUSparseFile.0/{name}")
    info.size = len(stored)
    info.pax_headers = {
        "GNU.sparse.major": "0",
        "GNU.sparse.minor": "1",
        "GNU.sparse.name": name,
        "GNU.sparse.size": str(size),
        "GNU.sparse.numblocks": str(len(entries)),
        "GNU.sparse.map": ",".join(f"{o},{n}" for o, n in entries),
    }
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(stored))
    return out.getvalue()


def test_a_handmade_pax_sparse_member_applies(tmp_path: Path) -> None:
    apply(pax_sparse("f", 100, [(10, 3), (50, 2)], b"abcde"), tmp_path / "dest")
    content = (tmp_path / "dest" / "f").read_bytes()
    assert content == bytes(10) + b"abc" + bytes(37) + b"de" + bytes(48)


@pytest.mark.parametrize(
    ("entries", "stored", "why"),
    [
        pytest.param([(10, 5), (12, 5)], b"x" * 10, "out of order, overlapping", id="overlap"),
        pytest.param([(50, 5), (10, 5)], b"x" * 10, "out of order, overlapping", id="unsorted"),
        pytest.param([(98, 5)], b"x" * 5, "past the file's size", id="past-size"),
        pytest.param([(0, 5)], b"x" * 600, "describes 5 bytes of data, the archive stores 1024", id="unreferenced-data"),
        pytest.param([(0, 600)], b"x" * 5, "describes 600 bytes of data, the archive stores 512", id="missing-data"),
    ],
)
def test_bad_sparse_maps_are_refused(tmp_path: Path, entries: list[tuple[int, int]], stored: bytes, why: str) -> None:
    size = 100 if why != "describes 600 bytes of data, the archive stores 512" else 1000
    with pytest.raises(ArchiveError, match=why):
        apply(pax_sparse("f", size, entries, stored), tmp_path / "dest")


def test_a_sparse_map_over_the_entry_limit_is_refused(tmp_path: Path) -> None:
    entries = [(2 * i, 1) for i in range(MAX_SPARSE_ENTRIES + 1)]
    with pytest.raises(ArchiveError, match="sparse map over"):
        apply(pax_sparse("f", 4 * len(entries), entries, b"x" * len(entries)), tmp_path / "dest")


@pytest.mark.parametrize("garbage", [b"x\n", b"2\n1\n", b"99999999999\n"])
def test_bad_pax_1_0_maps_are_refused(tmp_path: Path, garbage: bytes) -> None:
    data = bytearray(gnu_sparse_tar(tmp_path, "1.0"))
    start = data.index(b"3\n999424\n")  # the map: 3 entries, then offset/size pairs
    block = garbage.ljust(512, b"\0")
    data[start : start + 512] = block
    with pytest.raises(ArchiveError):
        apply(bytes(data), tmp_path / "dest")


@pytest.mark.parametrize("kind", [tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME])
def test_a_huge_special_header_is_refused_before_it_is_read(tmp_path: Path, kind: bytes) -> None:
    info = tarfile.TarInfo("././@LongLink" if kind == tarfile.GNUTYPE_LONGNAME else "pax")
    info.type = kind
    info.size = 10 * GIB  # the archive claims it; reading it would take 10 GiB of memory
    header = info.tobuf(format=tarfile.GNU_FORMAT)
    with pytest.raises(ArchiveError, match=f"the limit is {MAX_SPECIAL_HEADER}"):
        apply(header + bytes(4096), tmp_path / "dest")


def member(name: str, data: bytes = b"x", **pax: str) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.pax_headers = dict(pax)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_a_300_character_name_is_the_archives_fault_and_names_no_host_path(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    with pytest.raises(ArchiveError, match="file name too long") as caught:
        apply(member("d/" + "a" * 300), dest)
    assert str(tmp_path) not in caught.value.message


def test_a_path_longer_than_linux_takes_is_the_archives_fault(tmp_path: Path) -> None:
    deep = "/".join(["d" * 200] * 25)  # 5 KB: every component fits, the whole path does not
    with pytest.raises(ArchiveError, match="File name too long") as caught:
        apply(member(deep), tmp_path / "dest")
    assert str(tmp_path) not in caught.value.message


@pytest.mark.parametrize(
    ("pax", "why"),
    [
        pytest.param({"uid": "99999999999999999999"}, "uid is greater than maximum", id="uid"),
        pytest.param({"mtime": "1e300"}, "out of range", id="mtime"),
        pytest.param({"path": "a\0b"}, "null", id="nul-in-name"),
    ],
)
def test_metadata_linux_cannot_take_is_the_archives_fault(tmp_path: Path, pax: dict[str, str], why: str) -> None:
    with pytest.raises(ArchiveError, match=why):
        apply(member("f", **pax), tmp_path / "dest")


def test_a_malformed_xattr_value_is_the_archives_fault(tmp_path: Path) -> None:
    # user.* takes any value, so the kernel's refusal is simulated with a name it rejects
    # (over 255 bytes: ERANGE); security.capability's own check needs root (tests/integration)
    with pytest.raises(ArchiveError, match="set extended attribute"):
        apply(member("f", **{"SCHILY.xattr.user." + "x" * 300: "v"}), tmp_path / "dest")


def test_implied_parents_get_docker_mode_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        apply(member("implied/child"), tmp_path / "dest")
    finally:
        os.umask(old)
    assert (tmp_path / "dest" / "implied").stat().st_mode & 0o777 == 0o755
