"""runc, minus the capabilities the calling root does not hold: a runtime for the reference dockerd.

On these machines root lacks CAP_SYS_RESOURCE, and runc refuses a spec that asks for a capability
its caller cannot grant ("unable to apply caps: operation not permitted"), so dockerd cannot run
``--privileged`` or ``--cap-add ALL`` here at all. berth's libcontainer leaves such capabilities
out instead (docs/decisions.md). The conformance tests register this script with the reference
dockerd (``--add-runtime held=...``) to compare those cases too: on ``create`` it removes from the
bundle's config.json exactly the capabilities this process's bounding set lacks, then runs runc
unchanged (``runc ARGS...``). Nothing else of the spec is touched.
"""

from __future__ import annotations

import json
import os
import sys

RUNC = os.environ.get("BERTH_TEST_RUNC", "/usr/sbin/runc")

# capability numbers -> names (linux/capability.h), as far as this kernel goes
NAMES = (
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE "
    "NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO "
    "SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME "
    "SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG "
    "WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE"
).split()


def lacking() -> set[str]:
    with open("/proc/self/status") as f:
        held = next(int(line.split()[1], 16) for line in f if line.startswith("CapBnd:"))
    return {f"CAP_{name}" for bit, name in enumerate(NAMES) if not held >> bit & 1}


def main(args: list[str]) -> None:
    if "create" in args and "--bundle" in args:
        path = os.path.join(args[args.index("--bundle") + 1], "config.json")
        with open(path) as f:
            spec = json.load(f)
        drop = lacking()
        caps = (spec.get("process") or {}).get("capabilities") or {}
        for kind, names in caps.items():
            caps[kind] = [c for c in names if c not in drop]
        with open(path, "w") as f:
            json.dump(spec, f)
    os.execv(RUNC, ["runc", *args])


if __name__ == "__main__":
    main(sys.argv[1:])
