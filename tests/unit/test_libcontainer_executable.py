"""Finding the executable with runc's wording, and resolving paths inside a root."""

from __future__ import annotations

import os

import pytest

from berth.libcontainer import ContainerInitError
from berth.libcontainer.executable import resolve
from berth.libcontainer.securepath import resolve_in_root as secure_join


@pytest.fixture
def root(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "usr/bin").mkdir(parents=True)
    tool = tmp_path / "usr/bin/tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    data = tmp_path / "bin/data"
    data.write_text("x")
    data.chmod(0o644)
    return tmp_path


def test_path_search_finds_the_first_executable(root):
    assert resolve("tool", "/bin:/usr/bin", root=str(root)) == "/usr/bin/tool"


def test_path_search_skips_non_executables_and_reports_not_found(root):
    with pytest.raises(ContainerInitError) as info:
        resolve("data", "/bin", root=str(root))
    assert info.value.message == 'exec: "data": executable file not found in $PATH'
    assert info.value.exit_code == 127


def test_absolute_missing_path_has_runc_text(root):
    with pytest.raises(ContainerInitError) as info:
        resolve("/no/such/binary", "/bin", root=str(root))
    assert info.value.message == 'exec: "/no/such/binary": stat /no/such/binary: no such file or directory'
    assert info.value.exit_code == 127


@pytest.mark.parametrize("name", ["/bin/data", "/usr/bin"])
def test_not_executable_is_permission_denied(root, name):
    with pytest.raises(ContainerInitError) as info:
        resolve(name, "/bin", root=str(root))
    assert info.value.message == f'exec: "{name}": permission denied'
    assert info.value.exit_code == 126


def test_absolute_executable_is_returned_as_given(root):
    assert resolve("/usr/bin/tool", "", root=str(root)) == "/usr/bin/tool"


def test_secure_join_keeps_symlinks_inside_the_root(tmp_path):
    (tmp_path / "etc").mkdir()
    os.symlink("/../../../../etc", tmp_path / "escape")
    os.symlink("../etc/hosts", tmp_path / "etc" / "rel")
    assert secure_join(str(tmp_path), "/escape/passwd") == f"{tmp_path}/etc/passwd"
    assert secure_join(str(tmp_path), "/etc/rel") == f"{tmp_path}/etc/hosts"
    assert secure_join(str(tmp_path), "/../../x/./y") == f"{tmp_path}/x/y"


def test_secure_join_stops_symlink_loops(tmp_path):
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    with pytest.raises(OSError):
        secure_join(str(tmp_path), "/a/x")
