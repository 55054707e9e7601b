"""A real ``berth-runtime run`` imports none of berth's modules outside what berth.runtime.preload
runs for it (else those would go through importlib on every run), and runs its container
the same with the preload as without."""

from __future__ import annotations

import json
import marshal
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import berth
from berth.libcontainer.seccompprofile import default_oci
from berth.libcontainer.testing import BUSYBOX, busybox_rootfs, docker_like_spec
from berth.runtime import preload

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces, mounts and cgroups"),
    pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs /bin/busybox (apt-get install busybox-static)"),
]
SRC = Path(berth.__file__).resolve().parent.parent


@pytest.mark.parametrize("seccomp", [False, True])
def test_a_run_imports_nothing_of_berth_beyond_the_preload(tmp_path: Path, seccomp: bool):
    bundle = tmp_path / "bundle"
    busybox_rootfs(bundle / "rootfs")
    spec = docker_like_spec("rootfs", ["sh", "-c", "echo hello"])
    spec["linux"]["cgroupsPath"] = f"berth-test-preload-{uuid.uuid4().hex[:10]}"
    if seccomp:  # Docker's default profile: the compiled program comes from the cache under --root
        spec["linux"]["seccomp"] = default_oci(spec["process"]["capabilities"]["bounding"])
    (bundle / "config.json").write_text(json.dumps(spec))
    out = tmp_path / "rt.preload"
    preload.build(str(out), str(SRC))
    data = out.read_bytes()  # its index: a 4-byte length, then (header, entries) (preload's text)
    names = {e[0] for e in marshal.loads(data[4 : 4 + int.from_bytes(data[:4], "little")])[1]}
    # the first run with a profile compiles it (berth.libcontainer.enosysstub, not preloaded:
    # once per --root); the runs after it read the program back
    for i, use in enumerate((False, True, False)):
        probe = (
            "import json, os, sys\n"
            f"sys.path.insert(0, {str(SRC)!r})\n"
            "before = set(sys.modules)\n"
            "from berth.runtime.preload import preload\n"
            f"argv = ['berth-runtime', '--root', {str(tmp_path / 'state')!r}, 'run', '--bundle', {str(bundle)!r}, "
            f"'p-{uuid.uuid4().hex[:8]}']\n"
            f"ok = preload({str(out)!r}, argv) if {use!r} else False\n"
            "from berth.runtime.cli import main\n"
            "pid = os.getpid()\n"
            "code = main(argv[1:])\n"
            "if os.getpid() == pid:\n"
            "    loaded = sorted(m for m in set(sys.modules) - before if m.startswith('berth'))\n"
            "    print(json.dumps({'ok': ok, 'code': code, 'loaded': loaded}))\n"
        )
        res = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        lines = res.stdout.splitlines()
        got = json.loads(lines[-1])
        assert lines[0] == "hello" and got["code"] == 0 and got["ok"] is use
        if i > 0 or not seccomp:
            assert set(got["loaded"]) - {"berth.runtime.preload"} <= names, sorted(set(got["loaded"]) - names)
