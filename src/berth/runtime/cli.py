"""``berth-runtime``'s command line: global options, the command, its options, then dispatch.

The parser is small and hand-written, and each command's module is imported only when that
command runs: an OCI runtime is started for every container operation (podman's conmon runs it
for create, start, state, kill, delete ...), so what it imports is paid on every one of them
(argparse alone costs more than runc's whole start-up). Option syntax is runc's (urfave/cli):
``--name value``, ``--name=value``, ``-n value``, boolean flags without a value, repeatable ones
(``exec --env A=1 --env B=2``); options go before the command's arguments, and for ``exec``
everything after the container id is the command to run.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

VERSION = "0.1.0"
SPEC_VERSION = "1.1.0"
DEFAULT_ROOT = "/run/berth-runtime"

USAGE = """usage: berth-runtime [global options] COMMAND [options] [arguments]

An OCI runtime (runtime-spec {spec}) backed by berth's libcontainer.

Commands:
  create    create a container from a bundle (it waits for start)
  start     run the process of a created container
  run       create, start, wait for the process and delete (--detach: create and start)
  state     print the container's OCI state as JSON
  kill      send a signal to the container's process (--all: to every process in it)
  delete    delete a stopped container (--force: kill it first)
  exec      run another process in a running container
  ps        list the container's processes
  list      list the containers under --root
  pause     freeze every process of the container
  resume    thaw a paused container
  update    change a running container's cgroup limits
  features  print what this runtime supports, as JSON (runtime-spec features)
  spec      write a template config.json into the bundle

Global options:
  --root DIR            state directory (default {root})
  --log FILE            also write errors to FILE
  --log-format FORMAT   text or json (for --log)
  --systemd-cgroup      (refused: systemd cgroup paths are not supported)
  --debug               accepted, no effect
  -v, --version         print the version
  -h, --help            this text
"""

# command -> (value options, boolean options, repeatable options); aliases map to a canonical name
_BOOL = object()
_MULTI = object()
OPTIONS: dict[str, dict[str, object]] = {
    "create": {"bundle": str, "console-socket": str, "pid-file": str, "preserve-fds": str,
               "no-pivot": _BOOL, "no-new-keyring": _BOOL},
    "run": {"bundle": str, "console-socket": str, "pid-file": str, "preserve-fds": str,
            "no-pivot": _BOOL, "no-new-keyring": _BOOL, "detach": _BOOL, "keep": _BOOL},
    "start": {},
    "state": {},
    "kill": {"all": _BOOL, "signal": str},
    "delete": {"force": _BOOL},
    "exec": {"console-socket": str, "pid-file": str, "process": str, "cwd": str, "env": _MULTI,
             "tty": _BOOL, "user": str, "additional-gids": _MULTI, "cap": _MULTI, "detach": _BOOL,
             "no-new-privs": _BOOL, "preserve-fds": str, "process-label": str, "apparmor": str,
             "ignore-paused": _BOOL, "cgroup": str},
    "ps": {"format": str},
    "list": {"format": str, "quiet": _BOOL},
    "pause": {},
    "resume": {},
    "update": {"resources": str, "memory": str, "memory-swap": str, "memory-reservation": str,
               "kernel-memory": str, "kernel-memory-tcp": str, "cpu-shares": str, "cpu-period": str,
               "cpu-quota": str, "cpu-rt-period": str, "cpu-rt-runtime": str, "cpuset-cpus": str,
               "cpuset-mems": str, "pids-limit": str, "blkio-weight": str, "l3-cache-schema": str,
               "mem-bw-schema": str},
    "features": {},
    "spec": {"bundle": str, "rootless": _BOOL},
}
ALIASES = {"ls": "list", "rm": "delete"}
SHORT = {"b": "bundle", "d": "detach", "f": "force", "a": "all", "p": "process", "e": "env", "t": "tty",
         "u": "user", "g": "additional-gids", "c": "cap", "r": "resources", "q": "quiet", "s": "signal",
         "m": "memory"}
# per command: what a short letter means where it differs from SHORT
SHORT_FOR = {"ps": {"f": "format"}, "list": {"f": "format"}}
# the module and function that runs each command
HANDLERS = {
    "create": ("berth.runtime.create", "cmd_create"),
    "run": ("berth.runtime.create", "cmd_run"),
    "start": ("berth.runtime.control", "cmd_start"),
    "kill": ("berth.runtime.control", "cmd_kill"),
    "delete": ("berth.runtime.control", "cmd_delete"),
    "pause": ("berth.runtime.control", "cmd_pause"),
    "resume": ("berth.runtime.control", "cmd_resume"),
    "update": ("berth.runtime.update", "cmd_update"),
    "exec": ("berth.runtime.execute", "cmd_exec"),
    "state": ("berth.runtime.query", "cmd_state"),
    "ps": ("berth.runtime.query", "cmd_ps"),
    "list": ("berth.runtime.query", "cmd_list"),
    "features": ("berth.runtime.query", "cmd_features"),
    "spec": ("berth.runtime.query", "cmd_spec"),
}
# positional arguments each command takes: (required, optional); exec keeps the rest
ARITY = {"create": (1, 0), "run": (1, 0), "start": (1, 0), "state": (1, 0), "kill": (1, 1), "delete": (1, 0),
         "exec": (1, -1), "ps": (1, -1), "list": (0, 0), "pause": (1, 0), "resume": (1, 0), "update": (1, 0),
         "features": (0, 0), "spec": (0, 0)}


class UsageError(Exception):
    """A command line that cannot be parsed: printed with a hint, exit status 2 (runc: 1)."""


class Args:
    """What the command line said: global options, the command, its options and arguments."""

    def __init__(self) -> None:
        self.root = DEFAULT_ROOT
        self.log: str | None = None
        self.log_format = "text"
        self.systemd_cgroup = False
        self.command = ""
        self.options: dict[str, object] = {}
        self.args: list[str] = []

    def opt(self, name: str, default: str | None = None) -> str | None:
        value = self.options.get(name, default)
        return value if isinstance(value, str) or value is None else default

    def flag(self, name: str) -> bool:
        return bool(self.options.get(name))

    def many(self, name: str) -> list[str]:
        value = self.options.get(name)
        return list(value) if isinstance(value, list) else []


def parse(argv: list[str]) -> Args:
    a = Args()
    i = 0
    globals_ = {"root": str, "log": str, "log-format": str, "systemd-cgroup": _BOOL, "debug": _BOOL,
                "criu": str, "rootless": str, "version": _BOOL, "help": _BOOL}
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
        name, value, i = _take(argv, i, globals_, {"v": "version", "h": "help"}, "global")
        if name in ("version", "help"):
            a.command = name
            return a
        if name == "root":
            a.root = str(value)
        elif name == "log":
            a.log = str(value)
        elif name == "log-format":
            if value not in ("text", "json"):
                raise UsageError(f"--log-format {value!r}: must be text or json")
            a.log_format = str(value)
        elif name == "systemd-cgroup":
            a.systemd_cgroup = True
        elif name == "rootless" and value not in ("false", "auto"):
            raise UsageError("--rootless: rootless containers are not supported")
    if i == len(argv):
        raise UsageError("no command given")
    command = ALIASES.get(argv[i], argv[i])
    if command not in OPTIONS:
        raise UsageError(f"unknown command {argv[i]!r}")
    a.command = command
    i += 1
    table = OPTIONS[command]
    short = {**SHORT, **SHORT_FOR.get(command, {})}
    need, extra = ARITY[command]
    while i < len(argv):
        word = argv[i]
        if word == "--":
            a.args += argv[i + 1 :]
            break
        if word.startswith("-") and word != "-" and not (command == "exec" and a.args):
            name, value, i = _take(argv, i, table, short, command)
            if table[name] is _MULTI:
                values = a.options.setdefault(name, [])
                assert isinstance(values, list)
                values.append(value)
            else:
                a.options[name] = value
            continue
        a.args.append(word)
        i += 1
    if len(a.args) < need:
        raise UsageError(f"{command} needs {'a container id' if need == 1 else f'{need} arguments'}")
    if extra >= 0 and len(a.args) > need + extra:
        raise UsageError(f"{command}: unexpected argument {a.args[need + extra]!r}")
    return a


def _take(argv: list[str], i: int, table: dict[str, object], short: dict[str, str], where: str) -> tuple[str, object, int]:
    """One option at argv[i]: (name, value, next index)."""
    word = argv[i]
    body, eq, inline = word.lstrip("-").partition("=")
    name = short.get(body, body) if not word.startswith("--") else body
    if name not in table:
        raise UsageError(f"{where}: unknown option {word!r}")
    if table[name] is _BOOL:
        if eq:
            return name, inline.lower() in ("1", "true", "yes"), i + 1
        return name, True, i + 1
    if eq:
        return name, inline, i + 1
    if i + 1 >= len(argv):
        raise UsageError(f"{where}: option {word!r} needs a value")
    return name, argv[i + 1], i + 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    log: tuple[str | None, str] = (None, "text")
    try:
        args = parse(argv) if argv and argv != ["help"] else Args()
        if args.command == "version":
            sys.stdout.write(f"berth-runtime version {VERSION}\nspec: {SPEC_VERSION}\n")
            return 0
        if args.command in ("help", ""):
            sys.stdout.write(USAGE.format(spec=SPEC_VERSION, root=DEFAULT_ROOT))
            return 0 if argv else 2
        log = (args.log, args.log_format)
        if args.command in ("create", "run", "exec"):
            # the init (or the exec'd process) joins a cgroup soon: let the kernel's grace
            # period for that pass while the rest is imported and the bundle read
            from berth.libcontainer.cgroups.warm import warm_in_background

            warm_in_background(init_forked_into_cgroup=args.command != "exec")
        module, func = HANDLERS[args.command]
        handler: Callable[[Args], int] = getattr(__import__(module, fromlist=[func]), func)
        return handler(args)
    except UsageError as exc:
        _report(f"{exc} (berth-runtime --help)", *log)
        return 2
    except Exception as exc:  # noqa: BLE001 -- the one boundary: every failure becomes one line
        message = _describe(exc)
        if message is None:
            raise
        _report(message, *log)
        return 1


def _describe(exc: BaseException) -> str | None:
    """The one line a failure prints; None for what is a bug (the traceback is kept)."""
    from berth.errors import BerthError
    from berth.runtime.errors import CommandError
    from berth.runtime.hooks import HookError

    if isinstance(exc, (CommandError, HookError)):
        return str(exc)
    if isinstance(exc, BerthError):
        from berth.libcontainer.failure import ContainerInitError

        # runc's words, e.g. unable to start container process: exec: "x": executable file not found
        prefix = "unable to start container process: " if isinstance(exc, ContainerInitError) else ""
        return prefix + str(exc)
    if isinstance(exc, OSError):
        where = f" '{exc.filename}'" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return None


def _report(message: str, log: str | None, fmt: str) -> None:
    """The error on stderr, and in --log (conmon hands podman what it finds there)."""
    sys.stderr.write(f"berth-runtime: {message}\n")
    if log is None:
        return
    import time

    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if fmt == "json":
        import json

        line = json.dumps({"level": "error", "msg": message, "time": now})
    else:
        line = f'time="{now}" level=error msg="{message}"'
    try:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, line.encode() + b"\n")
        finally:
            os.close(fd)
    except OSError as exc:
        sys.stderr.write(f"berth-runtime: write log '{log}': {exc.strerror}\n")


def run() -> None:
    """The command's entry point: :func:`main`, then exit without the interpreter's teardown
    (freeing every module and object costs a run ~5 ms of CPU; the kernel frees it all at once)."""
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


if __name__ == "__main__":
    run()
