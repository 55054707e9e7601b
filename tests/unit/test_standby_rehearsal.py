"""A standby helper's rehearsal (berth.shim.native.rehearse): it parses the daemon's sample of a
create's body, and nothing else -- only root's own file, and never raising."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from berth.shim import native
from berth.shim import protocol as P

SPEC = {
    "ociVersion": "1.0.2",
    "process": {"args": ["true"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}},
    "root": {"path": "/nonexistent/rootfs"},
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
    "linux": {
        "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "network", "path": "/run/netns/gone"}],
        "sysctl": {"net.ipv4.ip_unprivileged_port_start": "0"},
        "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
                    "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]},
    },
}


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    seen: list[Any] = []
    real = native.parse_spec
    monkeypatch.setattr(native, "parse_spec", lambda spec: seen.append(real(spec)) or seen[-1])
    return seen


def write(path: Path, data: bytes, mode: int = 0o600) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, mode)
    return path


@pytest.mark.skipif(os.geteuid() != 0, reason="the sample must be root's own file")
def test_the_daemons_sample_is_parsed_with_its_joined_namespaces_made_new(tmp_path: Path, parsed: list[Any]) -> None:
    native.rehearse(str(write(tmp_path / "s.json", P.dumps({"spec": SPEC, "rootfs_mounts": []}))))
    assert len(parsed) == 1
    assert all(ns.path is None for ns in parsed[0].namespaces)  # the sample's netns is long gone


def test_a_sample_others_may_write_or_garbage_or_none_is_left_alone(tmp_path: Path, parsed: list[Any]) -> None:
    body = P.dumps({"spec": SPEC, "rootfs_mounts": []})
    native.rehearse(str(write(tmp_path / "open.json", body, 0o644)))
    native.rehearse(str(tmp_path / "missing.json"))
    os.symlink(write(tmp_path / "target.json", body), tmp_path / "link.json")
    native.rehearse(str(tmp_path / "link.json"))
    assert parsed == []
    native.rehearse(str(write(tmp_path / "garbage.json", b"{not json")))
    native.rehearse(str(write(tmp_path / "wrong.json", P.dumps({"spec": {"root": 1}}))))
