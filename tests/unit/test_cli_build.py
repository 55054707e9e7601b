"""``berth build``'s context tar (berth.cli.commands.build): .dockerignore applied client-side."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from berth.cli.commands.build import _args, _is_archive, context_tar


def test_context_tar_applies_dockerignore_and_keeps_dockerfile(tmp_path: Path) -> None:
    for name, text in {
        "Dockerfile": "FROM x\n", ".dockerignore": "*.log\nDockerfile\nbuild\n!build/keep\n", "a.txt": "a",
        "x.log": "x", "build/drop": "d", "build/keep": "k", "src/b.log": "nested logs stay",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    os.symlink("a.txt", tmp_path / "link")
    out = io.BytesIO()
    context_tar(str(tmp_path), out, {".dockerfile.x": b"FROM y\n"}, (".dockerignore", "Dockerfile"))
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert sorted(members) == [".dockerfile.x", ".dockerignore", "Dockerfile", "a.txt", "build/keep", "link",
                               "src", "src/b.log"]
    assert members["link"].issym() and members["link"].linkname == "a.txt"
    assert all(m.uid == 0 and m.gid == 0 for m in members.values())


def test_build_args_take_the_client_environment() -> None:
    assert _args(["A=1", "B", "C"], {"B": "from env"}) == {"A": "1", "B": "from env", "C": None}


def test_stdin_detection() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(tarfile.TarInfo("Dockerfile"))
    assert _is_archive(buf.getvalue()) and _is_archive(b"\x1f\x8b\x08rest")
    assert not _is_archive(b"FROM busybox\n")
