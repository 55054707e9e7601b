"""Running OCI hooks: a program per hook, the container's state on its stdin, a timeout.

Inside the container's walls, from its init: ``createContainer`` (after the mounts, before
pivot_root: its path resolves in the runtime's mount namespace, it runs in the container's
namespaces) and ``startContainer`` (after the start, right before the process is exec'd: its path
resolves in the container). The other phases run in the runtime's namespaces, from the runtime
(berth's monitor runs them from its helpers: ``prestart``/``createRuntime`` once init waits at
its barrier, ``poststart`` after the start, ``poststop`` after the delete).

Each hook gets the container's state on stdin (the caller's template, with init's pid on the
host) and inherits the caller's stdout and stderr; a hook that exits non-zero, cannot be run, or
outlives its ``timeout`` fails the container (:func:`run`) or is a warning (:func:`run_warning`,
for poststart and poststop, as the OCI spec says). No import happens here at run time: after
pivot_root imports are sealed (:func:`berth.libcontainer.confine.seal_imports`).

    run(hooks_of(spec, "createRuntime"), "createRuntime", state_for(template, pid, "created"))
    for warning in run_warning(hooks_of(spec, "poststop"), "poststop", state): print(warning)
"""

from __future__ import annotations

import errno
import os
import time

from berth.libcontainer import fastjson as json
from berth.libcontainer.failure import EXIT_OTHER, ContainerInitError
from berth.libcontainer.spec import Hook, hooks_of

__all__ = ["hooks_of", "run", "run_warning", "state_for"]


def state_for(template: str, pid: int, status: str) -> bytes:
    """The state JSON a hook reads: the runtime's template with ``pid`` and ``status`` set."""
    state = json.loads(template)
    state["pid"] = pid
    state["status"] = status
    return json.dumps(state).encode()


def run(hooks: tuple[Hook, ...], phase: str, state: bytes) -> None:
    for hook in hooks:
        error = _run_one(hook, state)
        if error:
            raise ContainerInitError(f"{phase} hook {hook.path}: {error}", EXIT_OTHER)


def run_warning(hooks: tuple[Hook, ...], phase: str, state: bytes) -> list[str]:
    """Every hook, whatever the others did; what failed, one message each."""
    return [f"{phase} hook {hook.path}: {error}" for hook in hooks if (error := _run_one(hook, state))]


def _run_one(hook: Hook, state: bytes) -> str:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(r, 0)
            os.close(r)
            os.close(w)
            os.execve(hook.path, list(hook.args) or [hook.path], dict(e.split("=", 1) for e in hook.env if "=" in e))
        except OSError as exc:
            os.write(2, f"exec {hook.path}: {exc.strerror}\n".encode())
        os._exit(127)
    os.close(r)
    try:
        os.write(w, state)
    except OSError as exc:
        if exc.errno != errno.EPIPE:  # a hook that does not read its stdin is fine
            raise
    finally:
        os.close(w)
    deadline = None if hook.timeout is None else time.monotonic() + hook.timeout
    delay = 0.0005
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if deadline is not None and time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return f"timed out after {hook.timeout} s"
        time.sleep(delay)
        delay = min(delay * 2, 0.02)
    code = os.waitstatus_to_exitcode(status)
    return "" if code == 0 else f"exit status {code}" if code > 0 else f"killed by signal {-code}"
