"""``state``, ``ps``, ``list``, ``features`` and ``spec``: what the runtime tells, changing nothing
(``spec`` writes a template config.json, as ``runc spec`` does).

``ps --format table`` runs ``ps`` (with the arguments given, ``-ef`` by default) and keeps the
header and the lines of the container's processes, as runc does; ``--format json`` is the pid
list. ``features`` is the runtime-spec 1.1 features document: what this build supports.
"""

from __future__ import annotations

import os
import sys

from berth.libcontainer import fastjson as json
from berth.runtime.errors import CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from berth.runtime.cli import Args


def cmd_state(args: Args) -> int:
    from berth.runtime.state import Store

    sys.stdout.write(json.dumps(Store(args.root).oci_state(args.args[0]), indent=2) + "\n")
    return 0


def cmd_ps(args: Args) -> int:
    from berth.libcontainer.cgroups import open_cgroup
    from berth.runtime.state import Store

    store, cid = Store(args.root), args.args[0]
    state = store.load(cid)
    pids = open_cgroup(state["cgroup"]).pids() if store.status(state) != "stopped" else []
    fmt = args.opt("format") or "table"
    if fmt == "json":
        sys.stdout.write(json.dumps(pids) + "\n")
        return 0
    if fmt != "table":
        raise CommandError(f"ps: --format {fmt!r}: must be table or json")
    import subprocess

    ps_args = args.args[1:] or ["-ef"]
    try:
        out = subprocess.run(["ps", *ps_args], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise CommandError(f"ps {' '.join(ps_args)}: {exc}") from exc
    lines = out.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    if "PID" not in header:
        raise CommandError("ps: the output has no PID column")
    column = header.index("PID")
    wanted = {str(p) for p in pids}
    sys.stdout.write(lines[0] + "\n")
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > column and fields[column] in wanted:
            sys.stdout.write(line + "\n")
    return 0


def cmd_list(args: Args) -> int:
    from berth.runtime.state import Store

    store = Store(args.root)
    states = []
    for cid in store.ids():
        try:
            states.append(store.oci_state(cid))
        except CommandError:
            continue  # deleted meanwhile
    if args.flag("quiet"):
        sys.stdout.write("".join(s["id"] + "\n" for s in states))
        return 0
    fmt = args.opt("format") or "table"
    if fmt == "json":
        sys.stdout.write(json.dumps(states) + "\n")
        return 0
    if fmt != "table":
        raise CommandError(f"list: --format {fmt!r}: must be table or json")
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"] or "root") for s in states]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        sys.stdout.write("   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() + "\n")
    return 0


def cmd_features(args: Args) -> int:
    sys.stdout.write(json.dumps(features(), indent=2) + "\n")
    return 0


def features() -> dict[str, Any]:
    """runtime-spec 1.1's features.md document for this build."""
    from berth.libcontainer import capabilities
    from berth.libcontainer.mountopts import FLAG_WORDS, PROPAGATION, REC_ATTR_WORDS
    from berth.libcontainer.seccomp import ACTION_NAMES, ARCHITECTURES, OPERATOR_NAMES
    from berth.runtime.cli import SPEC_VERSION

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": sorted({*FLAG_WORDS, *PROPAGATION, *REC_ATTR_WORDS, "tmpcopyup", "idmap", "ridmap"}),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": ["CAP_" + n for n in capabilities.NAMES[: capabilities.last_cap() + 1]],
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": False},
            "seccomp": {
                "enabled": True,
                "actions": sorted(ACTION_NAMES),
                "operators": sorted(OPERATOR_NAMES),
                "archs": sorted(ARCHITECTURES),
                "knownFlags": [],
                "supportedFlags": [],
            },
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": True}},  # binds with uidMappings (mount_setattr, 5.12+)
        },
        "annotations": {"org.opencontainers.runtime-spec.features.linux.cgroup": "v1,v2"},
    }


def cmd_spec(args: Args) -> int:
    """A template config.json in the bundle directory (refused if one is there), as runc spec."""
    from berth.runtime.bundle import bundle_path

    if args.flag("rootless"):
        raise CommandError("spec --rootless: rootless containers are not supported")
    path = os.path.join(bundle_path(args.opt("bundle")), "config.json")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError as exc:
        raise CommandError(f"File {path} exists. Remove it first") from exc
    except OSError as exc:
        raise CommandError(f"write '{path}': {exc.strerror}") from exc
    import json as stdjson  # tab indentation, as runc's template

    with os.fdopen(fd, "w") as f:
        f.write(stdjson.dumps(template(), indent="\t") + "\n")
    return 0


def template() -> dict[str, Any]:
    """What ``runc spec`` writes: sh on a terminal in a rootfs, the usual namespaces and mounts."""
    from berth.libcontainer.spec import MASKED_PATHS, READONLY_PATHS
    from berth.runtime.cli import SPEC_VERSION

    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    return {
        "ociVersion": SPEC_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps, "ambient": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "berth",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }
