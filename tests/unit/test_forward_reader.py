"""ForwardReader: a forward-only seekable view for tarfile's r: mode over a request body."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from berth.container.files.forward import ForwardReader


class Trickle:
    """A source that hands out at most ``step`` bytes per read, like a chunked request body."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.at = data, step, 0

    def read(self, n: int = -1) -> bytes:
        out = self.data[self.at : self.at + self.step]
        self.at += len(out)
        return out


def test_reads_seeks_forward_and_refuses_to_go_back() -> None:
    data = bytes(range(256)) * 100
    r = ForwardReader(Trickle(data, 1000))
    assert r.read(10) == data[:10]
    r.seek(5000)
    assert r.tell() == 5000 and r.read(300) == data[5000:5300]
    r.seek(5200)  # still buffered: allowed
    assert r.read(4) == data[5200:5204]
    with pytest.raises(io.UnsupportedOperation):
        r.seek(0)
    assert r.read() == data[5204:]
    assert r.read(5) == b""


def test_write_to_copies_exactly_and_tarfile_reads_members(tmp_path: object) -> None:
    buf = io.BytesIO()
    payload = os.urandom(300_000)
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name in ("a", "b"):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            t.addfile(info, io.BytesIO(payload))
    archive = tarfile.open(fileobj=ForwardReader(Trickle(buf.getvalue(), 4096)), mode="r:")
    rfd, wfd = os.pipe()
    seen = []
    for member in archive:
        reader = archive.fileobj
        assert isinstance(reader, ForwardReader)
        reader.seek(member.offset_data)
        out = bytearray()
        while len(out) < member.size:  # drain the pipe as we go: write_to blocks on a full pipe
            want = min(32768, member.size - len(out))
            assert reader.write_to(wfd, want) == want
            out += os.read(rfd, want)
        seen.append((member.name, bytes(out) == payload))
    os.close(rfd)
    os.close(wfd)
    assert seen == [("a", True), ("b", True)]
