"""berth.runtime.preload: create/run's modules run from one file, in the order their imports
finish, without importlib -- and never code that is stale, foreign or failing."""

from __future__ import annotations

import json
import marshal
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import berth
from berth.runtime import preload

SRC = Path(berth.__file__).resolve().parent.parent


def copy_sources(dest: Path) -> Path:
    """The part of berth's tree berth-runtime loads, copied (mtimes kept), without bytecode."""
    for rel in ("berth/runtime", "berth/libcontainer"):
        shutil.copytree(SRC / rel, dest / rel, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("__init__.py", "errors.py", "steptrace.py", "accountfile.py"):
        shutil.copy2(SRC / "berth" / name, dest / "berth" / name)
    return dest


def load(path: Path, src: Path, argv: list[str], after: str = "") -> dict:
    """preload() in a fresh interpreter (as the launcher runs it), then ``after``; what it
    returned and what of berth's is loaded in the end."""
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(src)!r})\n"
        "before = set(sys.modules)\n"
        "from berth.runtime.preload import preload\n"
        f"ok = preload({str(path)!r}, {argv!r})\n"
        + after
        + "loaded = sorted(m for m in set(sys.modules) - before if m.startswith('berth'))\n"
        "files = {m: getattr(sys.modules[m], '__file__', None) for m in loaded}\n"
        "print(json.dumps({'ok': ok, 'loaded': loaded, 'files': files}))\n"
    )
    res = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.splitlines()[-1])


def parts(path: Path) -> tuple[tuple, list, tuple]:
    """(header, index entries, code objects) of a preload file (its layout: preload's text)."""
    data = path.read_bytes()
    size = int.from_bytes(data[:4], "little")
    header, entries = marshal.loads(data[4 : 4 + size])
    return header, entries, marshal.loads(data[4 + size :])


def names_in(path: Path) -> list[str]:
    return [e[0] for e in parts(path)[1]]


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, Path]:
    src = copy_sources(tmp_path / "src")
    out = tmp_path / "rt.preload"
    assert preload.build(str(out), str(src)) > 20
    return out, src


def test_order_puts_every_module_after_what_it_imports(built):
    path, _ = built
    names = names_in(path)
    assert len(names) == len(set(names))
    # a package finishes after its submodules; a module after the modules it imports
    assert names.index("berth.libcontainer.cgroups.files") < names.index("berth.libcontainer.cgroups")
    assert names.index("berth.libcontainer.kernel") < names.index("berth.libcontainer.rootfs")
    assert names.index("berth.libcontainer.init") < names.index("berth.libcontainer.process")
    assert set(preload.ENTRIES) <= set(names)


def test_run_and_create_are_preloaded_and_work(built):
    path, src = built
    after = (
        "from berth.libcontainer.cgroups import Cgroup, open_cgroup\n"
        "from berth.runtime.cli import parse\n"
        "import berth.libcontainer.process as p\n"
        "assert parse(['run', '--bundle', 'b', 'x']).opt('bundle') == 'b'\n"
        "assert sys.modules['berth.libcontainer'].process is p and p.run_init.__module__ == 'berth.libcontainer.init'\n"
        "assert sys.modules['berth.libcontainer.cgroups'].__path__ == [sys.modules['berth.libcontainer.cgroups'].__file__.rpartition('/')[0]]\n"
        # `from __future__ import annotations` compiled in as its flag, not imported
        "assert '__future__' not in sys.modules\n"
        "assert sys.modules['berth.libcontainer.spec'].Mount.__annotations__['type'] == 'str'\n"
    )
    for argv in (["berth-runtime", "--root", "/r", "run", "--bundle", "b", "x"],
                 ["berth-runtime", "--log-format", "json", "--debug", "create", "x"]):
        got = load(path, src, argv, after)
        assert got["ok"] is True
        assert set(names_in(path)) <= set(got["loaded"])
        assert got["files"]["berth.libcontainer.kernel"] == str(src / "berth/libcontainer/kernel.py")


def test_other_commands_and_missing_files_import_as_usual(built, tmp_path: Path):
    path, src = built
    assert preload.command_of(["b", "--root", "/x", "state", "id"]) == "state"
    assert preload.command_of(["b", "--systemd-cgroup", "run", "id"]) == "run"
    assert preload.command_of(["b", "--root"]) is None
    assert load(path, src, ["b", "state", "x"])["ok"] is False
    assert load(tmp_path / "none", src, ["b", "run", "x"])["ok"] is False
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x00not marshal")
    assert load(garbage, src, ["b", "run", "x"])["ok"] is False
    _header, entries, codes = parts(path)
    other = tmp_path / "other-python"
    other.write_bytes(preload.pack((preload.FORMAT, "cpython-399", marshal.version), entries, codes))
    assert load(other, src, ["b", "run", "x"])["ok"] is False
    short = tmp_path / "short"
    short.write_bytes(path.read_bytes()[:-100])  # cut: the code part does not unmarshal
    assert load(short, src, ["b", "run", "x"])["ok"] is False


def test_a_file_others_can_write_is_not_run(built):
    path, src = built
    path.chmod(0o664)
    assert load(path, src, ["b", "run", "x"])["ok"] is False
    path.chmod(0o644)
    if os.geteuid() == 0:
        os.chown(path, 65534, 65534)
        assert load(path, src, ["b", "run", "x"])["ok"] is False


def test_a_changed_source_makes_it_import_as_usual(built):
    path, src = built
    kernel = src / "berth/libcontainer/kernel.py"
    kernel.write_text(kernel.read_text() + "\nEDITED = True\n")
    got = load(path, src, ["b", "run", "x"], "import berth.libcontainer.kernel as k\nassert k.EDITED\n")
    assert got["ok"] is False


def test_code_that_raises_is_taken_back_and_the_import_fails_as_usual(built):
    """A source changed without changing its size or mtime (what the check cannot see): the
    preloaded copy runs; here it raises, so nothing preloaded stays and the real import runs."""
    path, src = built
    header, entries, codes = parts(path)
    broken = [
        compile("raise RuntimeError('stale')", e[1], "exec") if e[0] == "berth.libcontainer.spec" else code
        for e, code in zip(entries, codes, strict=True)
    ]
    path.write_bytes(preload.pack(header, entries, broken))
    got = load(path, src, ["b", "run", "x"], "import berth.libcontainer.spec\n")
    assert got["ok"] is False
    # what ran before it was taken back out (cli and the cgroups package come first); the
    # import after it ran the real source
    assert "berth.libcontainer.spec" in got["loaded"]
    assert not {"berth.runtime.cli", "berth.libcontainer.cgroups", "berth.libcontainer.process"} & set(got["loaded"])
