"""Fake cgroup trees in a plain directory, for tests without root (STYLE.md §5: a root path).

A fake tree has the files the managers look for and keeps only the last write to each (the
kernel appends ``devices.allow`` rules and makes ``cgroup.procs`` in new directories; a fake
does neither)::

    root = fake_v1(tmp_path)                 # hybrid: v1 controllers plus ``unified``
    root = fake_v1(tmp_path, hybrid=False)   # pure v1
    root = fake_v2(tmp_path)                 # unified, with cpuset cpu io memory pids
"""

from __future__ import annotations

from pathlib import Path

V1_HIERARCHIES = ("memory", "cpu,cpuacct", "pids", "freezer", "devices", "cpuset", "blkio", "systemd")
V2_CONTROLLERS = ("cpuset", "cpu", "io", "memory", "pids")


def fake_v1(root: Path, hybrid: bool = True) -> Path:
    """One directory per hierarchy (``cpu`` and ``cpuacct`` link to ``cpu,cpuacct``, as
    systemd mounts them), the root cpuset's cpus and mems, and ``unified`` when ``hybrid``."""
    for name in V1_HIERARCHIES + (("unified",) if hybrid else ()):
        (root / name).mkdir(parents=True)
        (root / name / "cgroup.procs").write_text("")
    (root / "cpu").symlink_to("cpu,cpuacct")
    (root / "cpuacct").symlink_to("cpu,cpuacct")
    (root / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (root / "cpuset" / "cpuset.mems").write_text("0\n")
    return root


def fake_v2(root: Path, controllers: tuple[str, ...] = V2_CONTROLLERS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text(" ".join(controllers) + "\n")
    (root / "cgroup.subtree_control").write_text("")
    return root
