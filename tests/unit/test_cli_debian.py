"""berth image bootstrap debian: mirror discovery and the mmdebstrap command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth.cli.commands.debian import DEFAULT_MIRROR, command, host_mirror
from berth.errors import InvalidParameter


def test_host_mirror_from_deb822_and_one_line_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    assert host_mirror(tmp_path) == DEFAULT_MIRROR
    (tmp_path / "sources.list").write_text("deb [arch=amd64] http://mirror.example/debian bookworm main\n")
    assert host_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://deb.example.org/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: https://other.example/debian\nSuites: bookworm\n"
    )
    assert host_mirror(tmp_path) == "https://other.example/debian"


def test_command_line() -> None:
    argv = command("/usr/bin/mmdebstrap", "bookworm", "http://m/debian", "minbase", ["curl", "ca-certificates"])
    assert argv[:4] == ["/usr/bin/mmdebstrap", "--variant=minbase", "--quiet", "--format=tar"]
    assert "--include=curl,ca-certificates" in argv
    assert argv[-3:] == ["bookworm", "-", "http://m/debian"]


@pytest.mark.parametrize("suite,mirror,variant,include", [
    ("bookworm; rm -rf /", "http://m/debian", "minbase", []),
    ("bookworm", "ftp://m/debian", "minbase", []),
    ("bookworm", "http://m/debian", "everything", []),
    ("bookworm", "http://m/debian", "minbase", ["--hook=x"]),
])
def test_command_refuses_bad_input(suite: str, mirror: str, variant: str, include: list[str]) -> None:
    with pytest.raises(InvalidParameter):
        command("mmdebstrap", suite, mirror, variant, include)
