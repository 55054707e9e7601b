"""The container's spec as an OCI runtime binary (runc, crun, berth-runtime) is handed it.

Pure functions, unit tested without root. berth builds one spec for every exec driver
(:mod:`berth.drivers.exec.spec`); the native runtime reads it in its helper, an OCI runtime
binary reads it from the bundle's ``config.json``. What differs:

- ``linux.cgroupsPath`` is made absolute: runc reads a relative path as relative to *its own*
  cgroup (the monitor's), berth as relative to the cgroup root. ``/berth-x/<id>`` is the same
  directory berth's ``open_cgroup("berth-x/<id>")`` opens, so stats, top and update go on
  working on it.
- capabilities the calling root does not hold (its bounding set) are left out of every set, as
  berth's libcontainer leaves them out (docs/decisions.md): runc refuses a spec that asks for
  one ("unable to apply caps: operation not permitted"), so ``--privileged`` would not run on
  hosts whose root lacks, say, CAP_SYS_RESOURCE.

    >>> spec = {"process": {"capabilities": {"bounding": ["CAP_CHOWN", "CAP_BPF"]}},
    ...         "linux": {"cgroupsPath": "berth-x/c1"}}
    >>> out = runtime_spec(spec, "berth-x/c1", held={"CAP_CHOWN"})
    >>> out["linux"]["cgroupsPath"], out["process"]["capabilities"]["bounding"]
    ('/berth-x/c1', ['CAP_CHOWN'])

An exec's process object gets the same treatment, after what it leaves out is filled from the
container's own process (as libcontainer's ``parse_exec_process`` fills it): every way into the
container gets the same walls.
"""

from __future__ import annotations

import copy
from typing import Any

# what an exec inherits from the container's process when its object leaves it out (the same
# keys berth.libcontainer.spec.INHERITED names)
INHERITED = ("user", "capabilities", "noNewPrivileges", "rlimits", "oomScoreAdj", "apparmorProfile")
CAP_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")
# capability numbers -> names (linux/capability.h), for reading the bounding set
CAP_NAMES = (
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE "
    "NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO "
    "SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME "
    "SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG "
    "WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE"
).split()


def held_capabilities(status: str) -> set[str]:
    """The names in the ``CapBnd`` line of a ``/proc/<pid>/status`` text."""
    for line in status.splitlines():
        if line.startswith("CapBnd:"):
            mask = int(line.split()[1], 16)
            return {f"CAP_{name}" for bit, name in enumerate(CAP_NAMES) if mask >> bit & 1}
    return {f"CAP_{name}" for name in CAP_NAMES}


def runtime_spec(spec: dict[str, Any], cgroup: str, held: set[str]) -> dict[str, Any]:
    """A copy of ``spec`` as the binary gets it (see the module's docstring)."""
    out = copy.deepcopy(spec)
    linux = out.setdefault("linux", {})
    if cgroup:
        linux["cgroupsPath"] = "/" + cgroup.strip("/")
    process = out.get("process")
    if isinstance(process, dict):
        _trim_capabilities(process, held)
    return out


def exec_process(process: dict[str, Any], container: dict[str, Any] | None, held: set[str]) -> dict[str, Any]:
    """The exec's process object for ``runtime exec --process``: what it omits taken from the
    container's process, capabilities trimmed to what the caller holds."""
    out = dict(process)
    if isinstance(container, dict):
        for key in INHERITED:
            if out.get(key) is None or (key == "rlimits" and not out[key]):
                if container.get(key) is not None:
                    out[key] = copy.deepcopy(container[key])
    out.setdefault("cwd", "/")
    _trim_capabilities(out, held)
    return out


def _trim_capabilities(process: dict[str, Any], held: set[str]) -> None:
    caps = process.get("capabilities")
    if not isinstance(caps, dict):
        return
    for kind in CAP_SETS:
        names = caps.get(kind)
        if isinstance(names, list):
            caps[kind] = [c for c in names if c in held]


# dockerd's translateContainerdStartErr: the runtime's text decides the exit code a client sees
NOT_FOUND = ("executable file not found", "no such file or directory")
NOT_EXECUTABLE = ("permission denied",)


def exit_code_for(message: str, default: int = 128) -> int:
    """127 when the process was not found, 126 when it could not be executed, else ``default``."""
    text = message.lower()
    if any(word in text for word in NOT_FOUND):
        return 127
    if any(word in text for word in NOT_EXECUTABLE):
        return 126
    return default


def last_error(log: str) -> str:
    """The last error a runtime wrote to its ``--log`` file (``--log-format json``: one object
    a line, ``{"level": "error", "msg": ...}``); plain lines are taken as they are."""
    import json

    found = ""
    for line in log.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            found = line
            continue
        if isinstance(obj, dict) and obj.get("level") in ("error", "fatal") and obj.get("msg"):
            found = str(obj["msg"])
    return found
