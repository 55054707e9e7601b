"""berth.accountfile and the graph's read_file: a container's passwd/group never block or grow."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from berth import accountfile
from berth.accountfile import AccountFileError
from berth.graph.rwlayer import _open_beneath
from berth.graph.testing import rootfs_tar, temporary_graph


def _read(path: Path) -> bytes:
    fd = os.open(path, accountfile.FLAGS)  # a FIFO with no writer: returns at once (O_NONBLOCK)
    try:
        return accountfile.read(fd, "/etc/passwd")
    finally:
        os.close(fd)


def test_regular_fifo_directory_and_huge(tmp_path: Path) -> None:
    regular = tmp_path / "passwd"
    regular.write_bytes(b"root:x:0:0::/root:/bin/sh\n")
    assert _read(regular) == b"root:x:0:0::/root:/bin/sh\n"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(AccountFileError, match="^/etc/passwd is a named pipe, not a regular file$"):
        _read(fifo)
    with pytest.raises(AccountFileError, match="is a directory, not a regular file"):
        _read(tmp_path)
    huge = tmp_path / "huge"
    with open(huge, "wb") as f:
        f.truncate(accountfile.LIMIT + 1)  # sparse: costs no disk
    with pytest.raises(AccountFileError, match=r"is larger than 1 MiB \(1048577 bytes\)"):
        _read(huge)
    exact = tmp_path / "exact"
    with open(exact, "wb") as f:
        f.truncate(accountfile.LIMIT)
    assert len(_read(exact)) == accountfile.LIMIT


def test_graph_read_file_refuses_and_never_leaves_the_layers(tmp_path: Path) -> None:
    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "passwd").write_text("host:x:1:1::/:\n")
    with temporary_graph() as graph:
        image_id = graph.import_stream(io.BytesIO(rootfs_tar({"etc/": b"", "etc/passwd": b"root:x:0:0::/:\n"})),
                                       "docker.io/library/acct:1", [], "")
        cid = "d" * 64
        graph.prepare_rw(cid, image_id)
        rw = graph.driver.layer_dirs(cid)[0]
        (rw / "etc").mkdir(exist_ok=True)
        os.mkfifo(rw / "etc" / "group")
        with pytest.raises(AccountFileError, match="^/etc/group is a named pipe"):
            graph.read_file(cid, "/etc/group")
        # an absolute symlink resolves inside the container's layers, never on the host
        os.symlink(str(outside / "passwd"), rw / "etc" / "shadowed")
        assert graph.read_file(cid, "/etc/shadowed") is None
        # a component that is a symlink when the file is opened (swapped after the lookup) is
        # refused: the open follows nothing on the host
        os.symlink(str(outside), rw / "escape")
        with pytest.raises(OSError):
            os.close(_open_beneath([rw], rw / "escape" / "passwd"))
        graph.remove_rw(cid)
