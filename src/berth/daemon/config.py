"""berthd's configuration: command-line flags, an optional JSON config file, defaults.

Flags win over the file; the file uses dockerd's ``daemon.json`` key names where one exists
(``data-root``, ``exec-root``, ``hosts``, ``pidfile``, ``storage-driver``, ``tls``,
``tlsverify``, ``tlscacert``, ``tlscert``, ``tlskey``, ``debug``); berth's own keys are
``cgroup-parent``, ``insecure-tcp`` and ``max-import-size``.

    cfg = parse_args(["--data-root", "/tmp/b/d", "-H", "unix:///tmp/b/s.sock"])
"""

from __future__ import annotations

import argparse
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from berth.errors import InvalidParameter

DEFAULT_DATA_ROOT = "/var/lib/berth"
DEFAULT_EXEC_ROOT = "/run/berth"


@dataclass
class DaemonConfig:
    data_root: Path = Path(DEFAULT_DATA_ROOT)
    exec_root: Path = Path(DEFAULT_EXEC_ROOT)
    hosts: list[str] = field(default_factory=list)
    pidfile: Path | None = None
    storage_driver: str | None = None
    tls: bool = False
    tlsverify: bool = False
    tlscacert: str | None = None
    tlscert: str | None = None
    tlskey: str | None = None
    insecure_tcp: bool = False
    debug: bool = False
    cgroup_parent: str = ""
    name: str = ""
    insecure_registries: list[str] = field(default_factory=list)
    registry_mirrors: list[str] = field(default_factory=list)  # URL (Docker Hub) or HOST=URL (berth)
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    init: bool = False  # run every container with the init unless it says otherwise
    init_path: str = ""  # the init binary (default: berth-init beside berthd)
    max_import_size: int | None = None  # decompressed bytes one import/load/pull may read; 0: no limit; None: the graph's default

    @property
    def socket(self) -> Path:
        return self.exec_root / "berth.sock"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="berthd", description="the berth container engine daemon")
    p.add_argument("--data-root", help=f"where images and containers live (default {DEFAULT_DATA_ROOT})")
    p.add_argument("--exec-root", help=f"runtime state: sockets, monitors (default {DEFAULT_EXEC_ROOT})")
    p.add_argument("-H", "--host", action="append", dest="hosts", help="unix://PATH, tcp://HOST:PORT, fd://[N]")
    p.add_argument("-p", "--pidfile")
    p.add_argument("-s", "--storage-driver", choices=["overlay2", "vfs"])
    p.add_argument("--config-file", help="a JSON file with daemon.json keys")
    p.add_argument("--tls", action="store_true", default=None)
    p.add_argument("--tlsverify", action="store_true", default=None)
    p.add_argument("--tlscacert")
    p.add_argument("--tlscert")
    p.add_argument("--tlskey")
    p.add_argument("--insecure-tcp", action="store_true", default=None,
                   help="allow plain TCP on a non-loopback address (anyone who reaches it is root here)")
    p.add_argument("--cgroup-parent", help="parent cgroup for containers (default berth-<data root hash>)")
    p.add_argument("-D", "--debug", action="store_true", default=None)
    p.add_argument("--insecure-registry", action="append", dest="insecure_registries",
                   help="a registry (HOST[:PORT] or CIDR) reached without TLS verification, or over http")
    p.add_argument("--registry-mirror", action="append", dest="registry_mirrors",
                   help="URL: a Docker Hub mirror; HOST=URL: a mirror of registry HOST (berth only)")
    p.add_argument("--max-concurrent-downloads", type=int, help="layers downloaded at once per pull (default 3)")
    p.add_argument("--max-concurrent-uploads", type=int, help="layers uploaded at once per push (default 5)")
    p.add_argument("--init", action="store_true", default=None, help="run an init inside containers (as --init)")
    p.add_argument("--init-path", help="the init binary (default: berth-init beside berthd)")
    p.add_argument("--max-import-size", help="the most bytes one import, load or pull may unpack "
                   "(decompressed; 512m, 64g; 0 for no limit; default 64g)")
    return p


FILE_KEYS = {
    "data-root": "data_root", "exec-root": "exec_root", "hosts": "hosts", "pidfile": "pidfile",
    "storage-driver": "storage_driver", "tls": "tls", "tlsverify": "tlsverify", "tlscacert": "tlscacert",
    "tlscert": "tlscert", "tlskey": "tlskey", "debug": "debug", "cgroup-parent": "cgroup_parent",
    "insecure-tcp": "insecure_tcp", "insecure-registries": "insecure_registries",
    "registry-mirrors": "registry_mirrors", "max-concurrent-downloads": "max_concurrent_downloads",
    "max-concurrent-uploads": "max_concurrent_uploads", "init": "init", "init-path": "init_path", "max-import-size": "max_import_size",
}


def parse_args(argv: list[str]) -> DaemonConfig:
    args = _parser().parse_args(argv)
    values: dict[str, object] = {}
    if args.config_file:
        values.update(_read_file(Path(args.config_file)))
    for key in FILE_KEYS.values():
        v = getattr(args, key, None)
        if v is not None:
            values[key] = v
    cfg = DaemonConfig()
    for key, v in values.items():
        if key in ("data_root", "exec_root", "pidfile"):
            v = Path(str(v)).absolute()
        if key == "max_import_size":
            v = parse_size(v, "max-import-size")
        setattr(cfg, key, v)
    for key in ("max_concurrent_downloads", "max_concurrent_uploads"):
        if not isinstance(getattr(cfg, key), int) or getattr(cfg, key) < 1:
            raise InvalidParameter(f"{key.replace('_', '-')} must be a positive integer")
    if cfg.tlsverify:
        cfg.tls = True
    if cfg.tls and not (cfg.tlscert and cfg.tlskey):
        raise InvalidParameter("--tls needs --tlscert and --tlskey")
    if not cfg.hosts:
        cfg.hosts = [f"unix://{cfg.socket}"]
    if not cfg.cgroup_parent:
        import hashlib

        cfg.cgroup_parent = "berth-" + hashlib.sha256(str(cfg.data_root).encode()).hexdigest()[:8]
    if cfg.pidfile is None:
        cfg.pidfile = cfg.exec_root / "berthd.pid"
    return cfg


_SIZE = re.compile(r"^(\d+)\s*([kmgt]?)(?:i?b)?$")


def parse_size(value: object, what: str) -> int:
    """A byte count: an integer, or a string with a binary suffix (``512m``, ``64g``, ``1GiB``)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE.match(str(value).strip().lower()) if isinstance(value, str) else None
    if match is None:
        raise InvalidParameter(f"{what}: invalid size {value!r} (want bytes, or a number with k, m, g or t)")
    return int(match.group(1)) * 1024 ** " kmgt".index(match.group(2) or " ")


def _read_file(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidParameter(f"read config file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidParameter(f"read config file {path}: expected a JSON object")
    unknown = sorted(set(data) - set(FILE_KEYS))
    if unknown:
        raise InvalidParameter(f"read config file {path}: unknown keys {', '.join(unknown)}")
    return {FILE_KEYS[k]: v for k, v in data.items()}


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "false")
