"""A layer's copy for a user namespace (berth.drivers.graph.remapcopy): ids shifted on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from berth.drivers.graph.remapcopy import shift

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")]


def test_shift_keeps_hard_links_and_setuid(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("x")
    os.chown(tmp_path / "a", 1000, 1000)
    os.chmod(tmp_path / "a", 0o4755)
    os.link(tmp_path / "a", tmp_path / "b")
    shift(tmp_path, {"uid": [[0, 100000, 65536]], "gid": [[0, 200000, 65536]]})
    st = os.stat(tmp_path / "b")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (101000, 201000, 0o4755)
    assert os.stat(tmp_path).st_uid == 100000
