"""OCI lifecycle hooks for berth-runtime: programs run with the container's state on stdin.

Supported phases, where runc runs them: ``prestart`` (deprecated) and ``createRuntime`` after
create, in the runtime's namespaces, a failure failing the create; ``poststart`` after start and
``poststop`` at delete, where a failure is only a warning (the OCI spec says so).
``createContainer`` and ``startContainer`` run inside the container in the spec; berth refuses a
config that has them rather than silently skipping them.

    run(spec, "poststart", state, fatal=False)
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

UNSUPPORTED = ("createContainer", "startContainer")


class HookError(Exception):
    """A fatal hook failed (message names the hook and the cause)."""


def check(spec: dict[str, Any]) -> None:
    hooks = spec.get("hooks") or {}
    for phase in UNSUPPORTED:
        if hooks.get(phase):
            raise HookError(f"hooks.{phase} is not supported by berth-runtime")


def run(spec: dict[str, Any], phase: str, state: dict[str, Any], fatal: bool) -> None:
    for hook in (spec.get("hooks") or {}).get(phase) or ():
        path = hook.get("path", "")
        args = hook.get("args") or [path]
        env = dict(e.split("=", 1) for e in hook.get("env") or () if "=" in e)
        timeout = hook.get("timeout")
        try:
            res = subprocess.run(
                args,
                executable=path,
                input=json.dumps(state).encode(),
                env=env,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
            error = (
                f"exit status {res.returncode}: {res.stderr.decode(errors='replace').strip()}"
                if res.returncode
                else ""
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            error = str(exc)
        if error:
            message = f"{phase} hook {path}: {error}"
            if fatal:
                raise HookError(message)
            print(f"berth-runtime: warning: {message}", file=sys.stderr)
