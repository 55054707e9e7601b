"""The reference daemon: Debian's dockerd 20.10 on private roots, inside its own network namespace.

`dockerd --bridge=none` deletes the host's docker0 at start-up even with its own roots, and its
defaults touch iptables; so it runs in a network namespace created for this run (`ip netns add`,
entered with `nsenter --net=...`, which execs dockerd itself, so the pid we hold is dockerd's) with
--bridge=none --iptables=false --ip-masq=false. Its containers' cgroups go under a cgroup parent
named for this run. teardown() deletes the namespace and those cgroups after the harness's usual
clean-up (containers, daemon by pid, leftover processes, mounts, directories).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import Daemon, DaemonError

CGROUP_ROOT = Path("/sys/fs/cgroup")


def dockerd_path() -> str | None:
    return shutil.which("dockerd") or (os.path.exists("/usr/sbin/dockerd") and "/usr/sbin/dockerd") or None


def dockerd_version(exe: str) -> str:
    r = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    return r.stdout.strip()


@dataclass
class Dockerd(Daemon):
    name: str = "docker"
    executable: str = "/usr/sbin/dockerd"
    netns: str = ""
    cgroup_parent: str = ""

    @classmethod
    def create(cls, **kwargs: Any) -> Dockerd:
        root = Path(tempfile.mkdtemp(prefix="bd-", dir="/tmp"))
        tag = root.name.removeprefix("bd-").replace("_", "x").lower()
        return cls(root=root, netns=f"berth-bench-{tag}", cgroup_parent=f"berth-bench-{tag}", **kwargs)

    def prepare(self) -> None:
        super().prepare()
        (self.root / "daemon.json").write_text("{}\n")
        if not Path(f"/run/netns/{self.netns}").exists():
            r = subprocess.run(["ip", "netns", "add", self.netns], capture_output=True, text=True)
            if r.returncode != 0:
                raise DaemonError(f"ip netns add {self.netns}: {r.stderr.strip()}")
            subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True)

    def popen_prefix(self) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.netns}", "--"]

    def command(self) -> list[str]:
        return [
            self.executable,
            "--data-root", str(self.data_root),
            "--exec-root", str(self.exec_root),
            "-H", self.host,
            "--pidfile", str(self.pidfile),
            "--config-file", str(self.root / "daemon.json"),
            "--storage-driver", "overlay2",
            "--bridge=none", "--iptables=false", "--ip-masq=false", "--ip6tables=false",
            "--userland-proxy=false",
            "--cgroup-parent", f"/{self.cgroup_parent}",
            "--log-level", "warn",
            *self.extra_args,
        ]  # fmt: skip

    def teardown(self, keep_root: bool = False) -> list[str]:
        problems = super().teardown(keep_root)
        if Path(f"/run/netns/{self.netns}").exists():
            r = subprocess.run(["ip", "netns", "delete", self.netns], capture_output=True, text=True)
            if r.returncode != 0:
                problems.append(f"ip netns delete {self.netns}: {r.stderr.strip()}")
        for d in sorted(CGROUP_ROOT.glob(f"*/{self.cgroup_parent}"), reverse=True):
            # Only empty cgroup directories remain once the containers are gone; children first.
            for child in sorted(d.rglob("*"), key=lambda p: -len(p.parts)):
                if child.is_dir():
                    with contextlib.suppress(OSError):
                        child.rmdir()
            try:
                d.rmdir()
            except OSError as exc:
                problems.append(f"could not remove cgroup {d}: {exc}")
        return problems
