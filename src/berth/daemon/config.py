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
from typing import Any

from berth.daemon.runtimes import Runtimes, parse_add_runtime
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
    log_driver: str = "json-file"  # the default driver of new containers (daemon.json log-driver)
    log_opts: dict[str, str] = field(default_factory=dict)  # its default options (log-opts)
    # the network driver (dockerd's flag names)
    bridge: str = "berth0"
    bip: str = ""
    fixed_cidr: str = ""
    mtu: int = 1500
    default_address_pools: list[str] = field(default_factory=list)
    ip_forward: bool = True
    ip_masq: bool = True
    icc: bool = True
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_opts: list[str] = field(default_factory=list)
    ip: str = ""  # default host address of published ports ("" = every address)
    # where CDI device specs are read (dockerd's --cdi-spec-dir); empty: /etc/cdi, /var/run/cdi
    cdi_spec_dirs: list[str] = field(default_factory=list)
    # OCI runtimes (daemon.json "runtimes", --add-runtime NAME=PATH) and the default one
    runtimes: dict[str, object] = field(default_factory=dict)
    add_runtimes: list[str] = field(default_factory=list)
    default_runtime: str = ""
    runtime_table: Runtimes = field(default_factory=Runtimes)  # all of them, checked (daemon/runtimes.py)
    # --userns-remap: "default" (berth's user berthremap), USER[:GROUP] or UID[:GID]; "" off.
    # main() turns it into ``remap`` (berth.daemon.remap.Remap) and moves data_root under it.
    userns_remap: str = ""
    remap: Any = None
    # the kernel mounts overlays over id-mapped layers (probed at start with --userns-remap);
    # False: a chowned copy of each layer per mapping (berth.drivers.graph.remapcopy)
    idmap_layers: bool = True

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
    p.add_argument("--cdi-spec-dir", action="append", dest="cdi_spec_dirs",
                   help="a directory of CDI device specs (repeatable; default /etc/cdi and /var/run/cdi)")
    p.add_argument("--add-runtime", action="append", dest="add_runtimes",
                   help="NAME=PATH: an OCI runtime binary containers may ask for (--runtime NAME)")
    p.add_argument("--default-runtime", help="the runtime of containers that name none (default native)")
    p.add_argument("--log-driver", help="default logging driver of new containers: json-file (default), local, none")
    p.add_argument("--log-opt", action="append", dest="log_opts",
                   help="a default option of that driver, KEY=VALUE (json-file: max-size=20m,max-file=5 unless set)")
    p.add_argument("--userns-remap", help="default (the user berthremap, created if missing), USER[:GROUP] "
                   "or UID[:GID]: containers' root is that user's first subordinate id range")
    p.add_argument("--max-import-size", help="the most bytes one import, load or pull may unpack "
                   "(decompressed; 512m, 64g; 0 for no limit; default 64g)")
    net = p.add_argument_group("networking")
    net.add_argument("-b", "--bridge", help="the default bridge's name (default berth0; none: no default bridge)")
    net.add_argument("--bip", help="the default bridge's address with its prefix, e.g. 10.20.0.1/24")
    net.add_argument("--fixed-cidr", help="the default bridge's containers get addresses from this range")
    net.add_argument("--mtu", type=int, help="MTU of the default bridge and its containers (default 1500)")
    net.add_argument("--default-address-pool", action="append", dest="default_address_pools",
                     help="base=CIDR,size=N: where subnets of new networks are taken from")
    for name, what in (("ip-forward", "set net.ipv4.ip_forward when a container needs it (false: "
                                      "containers reach nothing outside their bridges)"),
                       ("ip-masq", "masquerade containers' outgoing traffic"),
                       ("icc", "let containers on the default bridge talk to each other")):
        net.add_argument(f"--{name}", type=_flag_bool, nargs="?", const=True, dest=name.replace("-", "_"),
                         help=f"{what} (default true)")
    net.add_argument("--ip", help="default host address of published ports (default 0.0.0.0: every address)")
    net.add_argument("--dns", action="append", help="default DNS server of every container")
    net.add_argument("--dns-search", action="append", help="default DNS search domain of every container")
    net.add_argument("--dns-opt", action="append", dest="dns_opts", help="default DNS option of every container")
    return p


def _flag_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}")


FILE_KEYS = {
    "data-root": "data_root", "exec-root": "exec_root", "hosts": "hosts", "pidfile": "pidfile",
    "storage-driver": "storage_driver", "tls": "tls", "tlsverify": "tlsverify", "tlscacert": "tlscacert",
    "tlscert": "tlscert", "tlskey": "tlskey", "debug": "debug", "cgroup-parent": "cgroup_parent",
    "insecure-tcp": "insecure_tcp", "insecure-registries": "insecure_registries",
    "registry-mirrors": "registry_mirrors", "max-concurrent-downloads": "max_concurrent_downloads",
    "max-concurrent-uploads": "max_concurrent_uploads", "init": "init", "init-path": "init_path", "max-import-size": "max_import_size",
    "bridge": "bridge", "bip": "bip",
    "fixed-cidr": "fixed_cidr", "mtu": "mtu", "default-address-pools": "default_address_pools",
    "ip-forward": "ip_forward", "ip-masq": "ip_masq", "icc": "icc", "dns": "dns", "dns-search": "dns_search",
    "dns-opts": "dns_opts", "ip": "ip", "cdi-spec-dirs": "cdi_spec_dirs",
    "log-driver": "log_driver", "log-opts": "log_opts", "runtimes": "runtimes", "default-runtime": "default_runtime",
    "userns-remap": "userns_remap",
}


# json-file rotates by default (dockerd's never does): 5 files of at most 20 MiB, the local driver's sizes
JSON_FILE_DEFAULTS = {"max-size": "20m", "max-file": "5"}


def _check_logging(cfg: DaemonConfig) -> None:
    from berth.container.logs import log_settings

    if isinstance(cfg.log_opts, list):  # --log-opt k=v, repeated
        cfg.log_opts = dict(item.partition("=")[::2] for item in cfg.log_opts)
    if not isinstance(cfg.log_opts, dict) or not all(isinstance(v, str) for v in cfg.log_opts.values()):
        raise InvalidParameter("log-opts: expected an object of strings")
    if cfg.log_driver not in ("json-file", "local", "none"):
        raise InvalidParameter(f"log-driver: {cfg.log_driver!r} is not supported (json-file, local or none)")
    if cfg.log_driver == "json-file" and not cfg.log_opts:
        cfg.log_opts = dict(JSON_FILE_DEFAULTS)
    if cfg.log_driver != "none":
        log_settings(cfg.log_driver, cfg.log_opts)


def parse_args(argv: list[str]) -> DaemonConfig:
    args = _parser().parse_args(argv)
    values: dict[str, object] = {}
    if args.config_file:
        values.update(_read_file(Path(args.config_file)))
    for key in FILE_KEYS.values():
        v = getattr(args, key, None)
        if v is not None:
            values[key] = v
    if args.add_runtimes:
        values["add_runtimes"] = args.add_runtimes
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
    _check_network(cfg)
    _check_logging(cfg)
    if not isinstance(cfg.runtimes, dict):
        raise InvalidParameter("runtimes: expected an object of NAME: {\"path\": ...}")
    added = dict(cfg.runtimes)
    for name, entry in parse_add_runtime(cfg.add_runtimes).items():
        if name in added:
            raise InvalidParameter(f"runtime {name} is given twice (--add-runtime and the config file)")
        added[name] = entry
    cfg.runtime_table = Runtimes(added, cfg.default_runtime)
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
    return int(match.group(1)) * int(1024 ** " kmgt".index(match.group(2) or " "))
def _check_network(cfg: DaemonConfig) -> None:
    import ipaddress

    cfg.default_address_pools = [
        f"base={p['base']},size={p.get('size', '')}" if isinstance(p, dict) else str(p)
        for p in cfg.default_address_pools
    ]
    if not cfg.bridge or len(cfg.bridge) > 15 or "/" in cfg.bridge or cfg.bridge.strip() != cfg.bridge:
        raise InvalidParameter(f"invalid bridge name {cfg.bridge!r}: 1 to 15 characters, no '/' or blanks")
    for key in ("bip", "fixed_cidr"):
        value = getattr(cfg, key)
        if value:
            try:
                ipaddress.IPv4Interface(value)
            except ValueError as exc:
                raise InvalidParameter(f"invalid --{key.replace('_', '-')} {value!r}: {exc}") from exc
    if cfg.ip:
        try:
            ipaddress.IPv4Address(cfg.ip)
        except ValueError as exc:
            raise InvalidParameter(f"invalid --ip {cfg.ip!r}: {exc}") from exc
        if cfg.ip == "0.0.0.0":
            cfg.ip = ""
    if not 68 <= cfg.mtu <= 65535:
        raise InvalidParameter(f"invalid --mtu {cfg.mtu}: must be 68..65535")


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
