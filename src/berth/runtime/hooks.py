"""OCI lifecycle hooks run by berth-runtime itself: programs run with the container's state on
stdin, in the runtime's namespaces.

``prestart`` (deprecated) and ``createRuntime`` after create, a failure failing the create;
``poststart`` after start and ``poststop`` at delete, where a failure is only a warning (the OCI
spec says so). ``createContainer`` and ``startContainer`` run inside the container, from its
init (:mod:`berth.libcontainer.hookrun`); ``check`` validates them all before anything is made.

    run(spec, "poststart", state, fatal=False)
"""

from __future__ import annotations

import sys

from berth.libcontainer import fastjson as json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PHASES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


class HookError(Exception):
    """A fatal hook failed (message names the hook and the cause)."""


def check(spec: dict[str, Any]) -> None:
    hooks = spec.get("hooks") or {}
    if not isinstance(hooks, dict):
        raise HookError("hooks must be an object")
    for phase, entries in hooks.items():
        if phase not in PHASES:
            continue  # an unknown phase: the OCI spec says ignore unknown properties
        if not isinstance(entries, list):
            raise HookError(f"hooks.{phase} must be a list")
        for i, hook in enumerate(entries):
            if not isinstance(hook, dict) or not isinstance(hook.get("path"), str) or not hook["path"].startswith("/"):
                raise HookError(f"hooks.{phase}[{i}].path must be an absolute path")


def run(spec: dict[str, Any], phase: str, state: dict[str, Any], fatal: bool) -> None:
    hooks = (spec.get("hooks") or {}).get(phase) or ()
    if not hooks:
        return
    import subprocess

    for hook in hooks:
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
