"""``create``/``run`` flags -> the ``POST /containers/create`` body, the way the docker CLI builds it.

Model: ``FLAGS`` declares docker's create/run options; ``build_create_body(opts, args, env,
tty_size)`` is a pure function from the parsed flags and positionals (IMAGE [COMMAND...]) to the
JSON body: ``Config`` fields at the top level, ``HostConfig``, ``NetworkingConfig``. Zero values
are sent explicitly, as the docker CLI does, so a daemon sees the same shape from both clients.

    >>> body = build_create_body(parse_run(["-e", "A=1", "-p", "127.0.0.1:8080:80", "busybox", "true"]))
    >>> body["Env"], body["Cmd"], body["ExposedPorts"], body["HostConfig"]["PortBindings"]
    (['A=1'], ['true'], {'80/tcp': {}}, {'80/tcp': [{'HostIp': '127.0.0.1', 'HostPort': '8080'}]})
"""

from __future__ import annotations

from berth.cli.flagvalues import (
    nano_cpus,
    parse_device,
    parse_labels,
    parse_mount,
    parse_publish,
    parse_restart,
    parse_ulimit,
    port_range,
    read_kv_file,
    resolve_env,
)
from berth.cli.options import Command, Flag, parse
from berth.cli.units import bytes_size
from berth.errors import InvalidParameter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CREATE_FLAGS: tuple[Flag, ...] = (
    Flag(("--add-host",), "list", "Add a custom host-to-IP mapping (host:ip)"),
    Flag(("-a", "--attach"), "list", "Attach to STDIN, STDOUT or STDERR"),
    Flag(("--cap-add",), "list", "Add Linux capabilities"),
    Flag(("--cap-drop",), "list", "Drop Linux capabilities"),
    Flag(("--cgroupns",), "value", "Cgroup namespace to use (host|private)"),
    Flag(("--cidfile",), "value", "Write the container ID to the file"),
    Flag(("-c", "--cpu-shares"), "int", "CPU shares (relative weight)"),
    Flag(("--cpus",), "value", "Number of CPUs"),
    Flag(("--cpuset-cpus",), "value", "CPUs in which to allow execution (0-3, 0,1)"),
    Flag(("--device",), "list", "Add a host device to the container"),
    Flag(("--dns",), "list", "Set custom DNS servers"),
    Flag(("--dns-option",), "list", "Set DNS options"),
    Flag(("--dns-search",), "list", "Set custom DNS search domains"),
    Flag(("--domainname",), "value", "Container NIS domain name"),
    Flag(("--entrypoint",), "value", "Overwrite the default ENTRYPOINT of the image"),
    Flag(("-e", "--env"), "list", "Set environment variables"),
    Flag(("--env-file",), "list", "Read in a file of environment variables"),
    Flag(("--expose",), "list", "Expose a port or a range of ports"),
    Flag(("--group-add",), "list", "Add additional groups to join"),
    Flag(("-h", "--hostname"), "value", "Container host name"),
    Flag(("--init",), help="Run an init inside the container that forwards signals and reaps processes"),
    Flag(("-i", "--interactive"), help="Keep STDIN open even if not attached"),
    Flag(("--ipc",), "value", "IPC mode to use"),
    Flag(("-l", "--label"), "list", "Set meta data on a container"),
    Flag(("--label-file",), "list", "Read in a line delimited file of labels"),
    Flag(("--log-driver",), "value", "Logging driver for the container"),
    Flag(("--log-opt",), "list", "Log driver options"),
    Flag(("-m", "--memory"), "value", "Memory limit"),
    Flag(("--memory-swap",), "value", "Swap limit equal to memory plus swap: '-1' to enable unlimited swap"),
    Flag(("--mount",), "list", "Attach a filesystem mount to the container"),
    Flag(("--name",), "value", "Assign a name to the container"),
    Flag(("--network", "--net"), "value", "Connect a container to a network", dest="network"),
    Flag(("--network-alias",), "list", "Add network-scoped alias for the container"),
    Flag(("--oom-kill-disable",), help="Disable OOM Killer"),
    Flag(("--pid",), "value", "PID namespace to use"),
    Flag(("--pids-limit",), "int", "Tune container pids limit (set -1 for unlimited)"),
    Flag(("--platform",), "value", "Set platform if server is multi-platform capable"),
    Flag(("--privileged",), help="Give extended privileges to this container"),
    Flag(("-p", "--publish"), "list", "Publish a container's port(s) to the host"),
    Flag(("-P", "--publish-all"), help="Publish all exposed ports to random ports"),
    Flag(("--pull",), "value", 'Pull image before running ("always", "missing", "never")', default="missing"),
    Flag(("-q", "--quiet"), help="Suppress the pull output"),
    Flag(("--read-only",), help="Mount the container's root filesystem as read only"),
    Flag(("--restart",), "value", "Restart policy to apply when a container exits", default="no"),
    Flag(
        ("--rm",),
        help="Automatically remove the container and its associated anonymous volumes when it exits",
    ),
    Flag(("--runtime",), "value", "Runtime to use for this container"),
    Flag(("--security-opt",), "list", "Security Options"),
    Flag(("--shm-size",), "value", "Size of /dev/shm"),
    Flag(("--stop-signal",), "value", "Signal to stop the container"),
    Flag(("--stop-timeout",), "int", "Timeout (in seconds) to stop a container"),
    Flag(("--sysctl",), "list", "Sysctl options"),
    Flag(("--tmpfs",), "list", "Mount a tmpfs directory"),
    Flag(("-t", "--tty"), help="Allocate a pseudo-TTY"),
    Flag(("--ulimit",), "list", "Ulimit options"),
    Flag(("-u", "--user"), "value", "Username or UID (format: <name|uid>[:<group|gid>])"),
    Flag(("--userns",), "value", "User namespace to use"),
    Flag(("--uts",), "value", "UTS namespace to use"),
    Flag(("-v", "--volume"), "list", "Bind mount a volume"),
    Flag(("--volumes-from",), "list", "Mount volumes from the specified container(s)"),
    Flag(("-w", "--workdir"), "value", "Working directory inside the container"),
)

RUN_FLAGS: tuple[Flag, ...] = (
    *CREATE_FLAGS,
    Flag(("-d", "--detach"), help="Run container in background and print container ID"),
    Flag(("--detach-keys",), "value", "Override the key sequence for detaching a container"),
    Flag(("--sig-proxy",), help="Proxy received signals to the process", default=True),
)

CREATE_SPEC = Command(
    "create",
    "berth create [OPTIONS] IMAGE [COMMAND] [ARG...]",
    "Create a new container",
    CREATE_FLAGS,
    interspersed=False,
    min_args=1,
)
RUN_SPEC = Command(
    "run",
    "berth run [OPTIONS] IMAGE [COMMAND] [ARG...]",
    "Create and run a new container from an image",
    RUN_FLAGS,
    interspersed=False,
    min_args=1,
)


def parse_run(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    return parse(RUN_SPEC, argv)


# -- the body -------------------------------------------------------------------------------


def build_create_body(
    parsed: tuple[dict[str, Any], list[str]],
    environ: dict[str, str] | None = None,
    console_size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    opts, args = parsed
    environ = environ or {}
    image, cmd = args[0], args[1:]
    detach = bool(opts.get("detach"))
    attach = [a.lower() for a in opts.get("attach") or []]
    for stream in attach:
        if stream not in ("stdin", "stdout", "stderr"):
            raise InvalidParameter(
                f'invalid argument "{stream}" for "-a, --attach" flag: valid streams are STDIN, STDOUT and STDERR'
            )
    if detach and attach:
        raise InvalidParameter("Conflicting options: -a and -d")
    interactive = bool(opts["interactive"])
    if attach:
        attach_stdin = "stdin" in attach
        attach_stdout = "stdout" in attach
        attach_stderr = "stderr" in attach
    else:
        attach_stdin = interactive and not detach
        attach_stdout = attach_stderr = not detach

    env_items: list[str] = []
    for path in opts["env_file"]:
        env_items += read_kv_file(path, "env file")
    env_items += opts["env"]
    env = resolve_env(env_items, environ)

    label_items: list[str] = []
    for path in opts["label_file"]:
        label_items += read_kv_file(path, "label file")
    labels = parse_labels(label_items + opts["label"])

    exposed: dict[str, dict[str, Any]] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in opts["publish"]:
        for port, binding in parse_publish(spec):
            exposed[port] = {}
            bindings.setdefault(port, []).append(binding)
    for spec in opts["expose"]:
        rest, _, proto = spec.partition("/")
        lo, hi = port_range(rest)
        for number in range(lo, hi + 1):
            exposed[f"{number}/{proto or 'tcp'}"] = {}

    binds: list[str] | None = None
    volumes: dict[str, Any] = {}
    for spec in opts["volume"]:
        if ":" in spec:
            binds = (binds or []) + [spec]
        else:
            volumes[spec] = {}
    mounts = [parse_mount(m) for m in opts["mount"]] or None
    tmpfs = None
    for spec in opts["tmpfs"]:
        path, _, options = spec.partition(":")
        tmpfs = tmpfs or {}
        tmpfs[path] = options

    entrypoint: list[str] | None = None
    if opts["entrypoint"] is not None:
        entrypoint = [opts["entrypoint"]] if opts["entrypoint"] else [""]

    network = opts["network"] or "default"
    endpoint = {
        "IPAMConfig": None,
        "Links": None,
        "Aliases": opts["network_alias"] or None,
        "MacAddress": "",
        "DriverOpts": None,
        "GwPriority": 0,
        "NetworkID": "",
        "EndpointID": "",
        "Gateway": "",
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": None,
    }
    memory = bytes_size(opts["memory"]) if opts["memory"] else 0
    swap = 0
    if opts["memory_swap"]:
        swap = -1 if opts["memory_swap"] == "-1" else bytes_size(opts["memory_swap"])
    log_config: dict[str, Any] = {"Type": opts["log_driver"] or "", "Config": {}}
    for item in opts["log_opt"]:
        key, _, value = item.partition("=")
        log_config["Config"][key] = value
    sysctls = dict(item.partition("=")[::2] for item in opts["sysctl"]) or None

    host_config: dict[str, Any] = {
        "Binds": binds,
        "ContainerIDFile": opts["cidfile"] or "",
        "LogConfig": log_config,
        "NetworkMode": network,
        "PortBindings": bindings,
        "RestartPolicy": parse_restart(opts["restart"]),
        "AutoRemove": bool(opts["rm"]),
        "VolumeDriver": "",
        "VolumesFrom": opts["volumes_from"] or None,
        "ConsoleSize": list(console_size) if console_size else [0, 0],
        "CapAdd": opts["cap_add"] or None,
        "CapDrop": opts["cap_drop"] or None,
        "CgroupnsMode": opts["cgroupns"] or "",
        "Dns": opts["dns"],
        "DnsOptions": opts["dns_option"],
        "DnsSearch": opts["dns_search"],
        "ExtraHosts": opts["add_host"] or None,
        "GroupAdd": opts["group_add"] or None,
        "IpcMode": opts["ipc"] or "",
        "Cgroup": "",
        "Links": None,
        "OomScoreAdj": 0,
        "PidMode": opts["pid"] or "",
        "Privileged": bool(opts["privileged"]),
        "PublishAllPorts": bool(opts["publish_all"]),
        "ReadonlyRootfs": bool(opts["read_only"]),
        "SecurityOpt": opts["security_opt"] or None,
        "UTSMode": opts["uts"] or "",
        "UsernsMode": opts["userns"] or "",
        "ShmSize": bytes_size(opts["shm_size"]) if opts["shm_size"] else 0,
        "Sysctls": sysctls,
        "Tmpfs": tmpfs,
        "Runtime": opts["runtime"] or "",
        "Isolation": "",
        "CpuShares": opts["cpu_shares"] or 0,
        "Memory": memory,
        "NanoCpus": nano_cpus(opts["cpus"]) if opts["cpus"] else 0,
        "CgroupParent": "",
        "CpusetCpus": opts["cpuset_cpus"] or "",
        "Devices": [parse_device(d) for d in opts["device"]],
        "MemorySwap": swap,
        "MemorySwappiness": -1,
        "OomKillDisable": bool(opts["oom_kill_disable"]),
        "PidsLimit": opts["pids_limit"] or 0,
        "Ulimits": [parse_ulimit(u) for u in opts["ulimit"]],
        "Mounts": mounts,
    }
    if opts["init"]:
        host_config["Init"] = True
    body: dict[str, Any] = {
        "Hostname": opts["hostname"] or "",
        "Domainname": opts["domainname"] or "",
        "User": opts["user"] or "",
        "AttachStdin": attach_stdin,
        "AttachStdout": attach_stdout,
        "AttachStderr": attach_stderr,
        "ExposedPorts": exposed or None,
        "Tty": bool(opts["tty"]),
        "OpenStdin": interactive,
        "StdinOnce": attach_stdin and not detach,
        "Env": env or None,
        "Cmd": cmd or None,
        "Image": image,
        "Volumes": volumes,
        "WorkingDir": opts["workdir"] or "",
        "Entrypoint": entrypoint,
        "OnBuild": None,
        "Labels": labels,
        "StopSignal": opts["stop_signal"] or None,
        "StopTimeout": opts["stop_timeout"],
        "HostConfig": host_config,
        "NetworkingConfig": {"EndpointsConfig": {network: endpoint}},
    }
    if body["ExposedPorts"] is None:
        del body["ExposedPorts"]
    for key in ("StopSignal", "StopTimeout"):
        if body[key] is None:
            del body[key]
    return body


def start_error_exit_code(message: str) -> int:
    """docker run's exit code for a failed start, chosen from the error text."""
    if "executable file not found" in message or "no such file or directory" in message:
        return 127
    if "permission denied" in message or "is a directory" in message or "not executable" in message:
        return 126
    return 125
