"""The ``berth`` command: global flags, the command table, errors -> messages and exit codes.

Model: ``main(argv) -> int`` parses the global flags (``-H``, ``--tls*``, ``-D``), finds the
command in ``COMMANDS`` (``image``/``container`` groups hold sub-commands), imports that command's
module only then (start-up time is the budget: ``berth ps`` must finish in 60 ms), and runs it
as ``fn(ctx, argv) -> exit code``. Errors from the daemon print as
``Error response from daemon: <message>``, other errors as their message; both exit 1 unless
the command chose otherwise (``run`` exits 125).

    $ berth -H unix:///tmp/x/s.sock ps -a --format '{{.Names}}'
"""

from __future__ import annotations

import os
import sys

from berth.cli.options import Command, Flag, parse
from berth.errors import BerthError, InvalidParameter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

GLOBAL = Command(
    "",
    "berth [OPTIONS] COMMAND",
    "A self-sufficient runtime for containers",
    (
        Flag(("-H", "--host"), "list", "Daemon socket to connect to"),
        Flag(("--tls",), help="Use TLS; implied by --tlsverify"),
        Flag(("--tlsverify",), help="Use TLS and verify the remote"),
        Flag(("--tlscacert",), "value", "Trust certs signed only by this CA"),
        Flag(("--tlscert",), "value", "Path to TLS certificate file"),
        Flag(("--tlskey",), "value", "Path to TLS key file"),
        Flag(("-D", "--debug"), help="Enable debug mode"),
        Flag(("-l", "--log-level"), "value", "Set the logging level"),
        Flag(("--config",), "value", "Location of client config files"),
        Flag(("-v", "--version"), help="Print version information and quit"),
    ),
    interspersed=False,
)

_C = "berth.cli.commands."
# name -> (module, function); groups map to dicts of the same.
COMMANDS: dict[str, Any] = {
    "version": (_C + "system", "version"),
    "info": (_C + "system", "info"),
    "ps": (_C + "ps", "ps"),
    "images": (_C + "images", "images"),
    "inspect": (_C + "inspect", "inspect"),
    "tag": (_C + "images", "tag"),
    "rmi": (_C + "images", "rmi"),
    "import": (_C + "imports", "import_"),
    "build": (_C + "build", "build"),
    "pull": (_C + "pull", "pull"),
    "push": (_C + "registry_cmds", "push"),
    "login": (_C + "registry_cmds", "login"),
    "logout": (_C + "registry_cmds", "logout"),
    "search": (_C + "registry_cmds", "search"),
    "create": (_C + "create", "create"),
    "run": (_C + "run", "run"),
    "start": (_C + "start", "start"),
    "attach": (_C + "attach", "attach"),
    "stop": (_C + "lifecycle", "stop"),
    "kill": (_C + "lifecycle", "kill"),
    "restart": (_C + "lifecycle", "restart"),
    "pause": (_C + "lifecycle", "pause"),
    "unpause": (_C + "lifecycle", "unpause"),
    "rename": (_C + "lifecycle", "rename"),
    "wait": (_C + "lifecycle", "wait"),
    "rm": (_C + "lifecycle", "rm"),
    "logs": (_C + "logs", "logs"),
    "exec": (_C + "exec", "exec_"),
    "top": (_C + "top", "top"),
    "jobs": (_C + "jobs", "jobs"),
    "events": (_C + "events", "events"),
    "history": (_C + "history", "history"),
    "diff": (_C + "changes", "diff"),
    "commit": (_C + "changes", "commit"),
    "export": (_C + "archive", "export"),
    "save": (_C + "archive", "save"),
    "load": (_C + "archive", "load"),
    "port": (_C + "port", "port"),
}
COMMANDS["image"] = {
    "ls": COMMANDS["images"],
    "list": COMMANDS["images"],
    "inspect": (_C + "inspect", "image_inspect"),
    "rm": COMMANDS["rmi"],
    "remove": COMMANDS["rmi"],
    "tag": COMMANDS["tag"],
    "import": COMMANDS["import"],
    "build": COMMANDS["build"],
    "pull": COMMANDS["pull"],
    "push": COMMANDS["push"],
    "bootstrap": (_C + "bootstrap", "bootstrap"),
    "history": COMMANDS["history"],
    "save": COMMANDS["save"],
    "load": COMMANDS["load"],
    "prune": (_C + "prune", "image_prune"),
}
COMMANDS["builder"] = {
    "build": COMMANDS["build"],
    "prune": (_C + "build", "builder_prune"),
}
COMMANDS["container"] = {
    "ls": COMMANDS["ps"],
    "list": COMMANDS["ps"],
    "ps": COMMANDS["ps"],
    "inspect": (_C + "inspect", "container_inspect"),
    "prune": (_C + "prune", "container_prune"),
    **{
        name: COMMANDS[name]
        for name in (
            "create",
            "run",
            "start",
            "attach",
            "stop",
            "kill",
            "restart",
            "pause",
            "unpause",
            "rename",
            "wait",
            "rm",
            "logs",
            "exec",
            "top",
            "diff",
            "commit",
            "export",
            "port",
        )
    },
}
COMMANDS["system"] = {"info": COMMANDS["info"], "events": COMMANDS["events"]}
COMMANDS["registry"] = {"serve": (_C + "registry", "serve"), "gc": (_C + "registry", "gc")}
COMMANDS["network"] = {
    name: (_C + "network", name) for name in ("create", "ls", "inspect", "rm", "prune", "connect", "disconnect")
}
COMMANDS["network"]["list"] = COMMANDS["network"]["ls"]
COMMANDS["network"]["remove"] = COMMANDS["network"]["rm"]


# One line per command and group, as ``docker --help`` shows them (docker's words where docker
# has the command). A command without a line here is a test failure (tests/unit/test_cli_main.py).
DESCRIPTIONS = {
    "attach": "Attach local standard input, output, and error streams to a running container",
    "commit": "Create a new image from a container's changes",
    "create": "Create a new container",
    "diff": "Inspect changes to files or directories on a container's filesystem",
    "events": "Get real time events from the server",
    "exec": "Execute a command in a running container",
    "export": "Export a container's filesystem as a tar archive",
    "history": "Show the history of an image",
    "build": "Build an image from a Dockerfile",
    "builder prune": "Remove build cache",
    "images": "List images",
    "import": "Import the contents from a tarball to create a filesystem image",
    "info": "Display system-wide information",
    "inspect": "Return low-level information on Docker objects",
    "jobs": "List the engine's jobs (berth)",
    "kill": "Kill one or more running containers",
    "load": "Load an image from a tar archive or STDIN",
    "login": "Authenticate to a registry",
    "logout": "Log out from a registry",
    "logs": "Fetch the logs of a container",
    "pause": "Pause all processes within one or more containers",
    "port": "List port mappings or a specific mapping for the container",
    "ps": "List containers",
    "pull": "Download an image from a registry",
    "push": "Upload an image to a registry",
    "rename": "Rename a container",
    "restart": "Restart one or more containers",
    "rm": "Remove one or more containers",
    "rmi": "Remove one or more images",
    "run": "Create and run a new container from an image",
    "save": "Save one or more images to a tar archive (streamed to STDOUT by default)",
    "search": "Search a registry for images",
    "start": "Start one or more stopped containers",
    "stats": "Display a live stream of container(s) resource usage statistics",
    "stop": "Stop one or more running containers",
    "tag": "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
    "top": "Display the running processes of a container",
    "unpause": "Unpause all processes within one or more containers",
    "update": "Update configuration of one or more containers",
    "version": "Show the berth version information",
    "wait": "Block until one or more containers stop, then print their exit codes",
    # sub-commands that exist only inside a group
    "image bootstrap": "Build a base image on this machine: busybox (offline) or debian (apt mirror)",
    "image prune": "Remove unused images",
    "container prune": "Remove all stopped containers",
    "network create": "Create a network",
    "network ls": "List networks",
    "network list": "List networks",
    "network remove": "Remove one or more networks",
    "network inspect": "Display detailed information on one or more networks",
    "network rm": "Remove one or more networks",
    "network prune": "Remove all unused networks",
    "network connect": "Connect a container to a network",
    "network disconnect": "Disconnect a container from a network",
    "registry serve": "Serve an OCI distribution registry from a directory",
    "registry gc": "Delete the blobs no manifest references",
    # groups
    "builder": "Manage builds",
    "container": "Manage containers",
    "image": "Manage images",
    "network": "Manage networks",
    "registry": "Run berth's own registry server (berth)",
    "system": "Manage berth",
    "volume": "Manage volumes",
}
COMMON = ("run", "exec", "ps", "build", "pull", "push", "images", "login", "logout", "search", "version", "info")


def _rows(names: list[str]) -> str:
    return "".join(f"  {name:<11} {DESCRIPTIONS.get(name, '')}".rstrip() + "\n" for name in names)


def _usage() -> str:
    names = sorted(k for k, v in COMMANDS.items() if isinstance(v, tuple))
    groups = sorted(k for k, v in COMMANDS.items() if isinstance(v, dict))
    common = [n for n in COMMON if n in names]
    return (
        f"{GLOBAL.help_text()}\nCommon Commands:\n{_rows(common)}"
        f"\nManagement Commands:\n{_rows(groups)}"
        f"\nCommands:\n{_rows([n for n in names if n not in common])}"
        "\nRun 'berth COMMAND --help' for more information on a command.\n"
    )


def _group_usage(path: str, group: dict[str, Any]) -> str:
    """``berth image --help``: each sub-command with its line."""
    lines = []
    for sub in sorted(group):
        entry = group[sub]
        target = next((k for k, v in COMMANDS.items() if v is entry), sub)
        desc = DESCRIPTIONS.get(f"{path} {sub}") or DESCRIPTIONS.get(target) or DESCRIPTIONS.get(sub, "")
        lines.append(f"  {sub:<11} {desc}".rstrip())
    return f"\nUsage:  berth {path} COMMAND\n\n{DESCRIPTIONS.get(path, '')}\n\nCommands:\n" + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run one ``berth`` command line; returns the exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    stdout, stderr = sys.stdout, sys.stderr
    try:
        global_opts, rest = parse(GLOBAL, args)
    except InvalidParameter as exc:
        stderr.write(f"{exc.message}\nSee 'berth --help'.\n")
        return 125
    if global_opts["version"]:
        stdout.write("berth version 0.1.0\n")
        return 0
    if global_opts["help"] or not rest:
        stdout.write(_usage())
        return 0
    entry: Any = COMMANDS.get(rest[0])
    path = rest[0]
    rest = rest[1:]
    if isinstance(entry, dict):
        group = entry
        if not rest or rest[0] in ("--help", "-h"):
            stdout.write(_group_usage(path, group))
            return 0
        entry = group.get(rest[0])
        if entry is None:
            stderr.write(f"berth: '{path} {rest[0]}' is not a berth command.\nSee 'berth {path} --help'\n")
            return 1
        path = f"{path} {rest[0]}"
        rest = rest[1:]
    if entry is None:
        stderr.write(f"berth: '{path}' is not a berth command.\nSee 'berth --help'\n")
        return 1

    from importlib import import_module

    from berth.cli.context import Context

    ctx = Context(global_opts, dict(os.environ), sys.stdin, stdout, stderr, path)
    module, func = entry
    try:
        return int(getattr(import_module(module), func)(ctx, rest) or 0)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BerthError as exc:
        report_error(ctx, exc)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader of our stdout went away (e.g. `berth ps | head -1`): nothing left to say;
        # point the fd at /dev/null so the interpreter's final flush does not fail again
        _silence_stdout(stdout)
        return 141
    finally:
        ctx.close()
        try:
            stdout.flush()
        except (BrokenPipeError, ValueError):
            _silence_stdout(stdout)


def _silence_stdout(stream: Any) -> None:
    try:
        fd = stream.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (AttributeError, ValueError, OSError):
        return  # no real fd (a test's capture): nothing will flush into a closed pipe
    os.dup2(devnull, fd)
    os.close(devnull)


def report_error(ctx: Any, exc: BerthError, prefix: str = "") -> None:
    from berth.client.status import from_daemon

    text = f"Error response from daemon: {exc.message}" if from_daemon(exc) else exc.message
    ctx.stdout.flush()
    ctx.err(f"{prefix}{text}\n")


if __name__ == "__main__":
    sys.exit(main())
