"""A real Debian image built offline from the apt mirror (`berth image bootstrap debian`), run with
bash, apt and coreutils, given a second layer by `commit`, pushed and pulled back whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import harness
from registry_harness import BerthRegistry

pytestmark = pytest.mark.integration


def ok(r: Any) -> Any:
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
    return r


def test_debian_image_runs_commits_and_round_trips(berthd: harness.Berthd, tmp_path: Path) -> None:
    # built from the apt mirror (~20 s) and streamed into the daemon as the import's body
    r = ok(berthd.berth("image", "bootstrap", "debian", "-t", "debian:bookworm", timeout=600))
    assert r.stdout.strip().startswith("sha256:")
    r = ok(berthd.docker("run", "--rm", "debian:bookworm", "bash", "-c",
                         "cat /etc/debian_version; apt-get --version | head -1; ls --version | head -1; id -un; "
                         "dpkg-query -W -f '${Package}\\n' bash"))
    version, apt, ls, user, bash = r.stdout.splitlines()
    assert version.startswith("12.") and apt.startswith("apt ") and "coreutils" in ls
    assert (user, bash) == ("root", "bash")
    assert ok(berthd.docker("run", "--rm", "debian:bookworm")).stdout == ""  # CMD bash, no stdin

    ok(berthd.docker("run", "--name", "layer2", "debian:bookworm", "bash", "-c", "echo two > /etc/layer2"))
    ok(berthd.docker("commit", "layer2", "debian:layered", timeout=300))
    ok(berthd.docker("rm", "layer2"))
    layers = json.loads(ok(berthd.docker("image", "inspect", "debian:layered")).stdout)[0]["RootFS"]["Layers"]
    assert len(layers) == 2

    with BerthRegistry(tmp_path / "reg") as reg:
        name = f"{reg.addr}/lib/debian:layered"
        ok(berthd.docker("tag", "debian:layered", name))
        ok(berthd.docker("push", name, timeout=300))
        ok(berthd.docker("rmi", name, "debian:layered", "debian:bookworm"))
        out = ok(berthd.docker("pull", name, timeout=300)).stdout
        assert out.count("Pull complete") == 2
        assert ok(berthd.docker("run", "--rm", name, "cat", "/etc/layer2")).stdout == "two\n"
