"""``berth version`` and ``berth info``: docker's layouts over GET /version and GET /info."""

from __future__ import annotations

import platform
import sys

from berth.cli.options import Command, Flag
from berth.cli.template import Template
from berth.client.api import CLIENT_MAX_VERSION
from berth.errors import BerthError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

VERSION = "0.1.0"

VERSION_SPEC = Command(
    "version",
    "berth version [OPTIONS]",
    "Show the berth version information",
    (Flag(("-f", "--format"), "value", "Format output using a custom template"),),
    max_args=0,
)
INFO_SPEC = Command(
    "info",
    "berth info [OPTIONS]",
    "Display system-wide information",
    (Flag(("-f", "--format"), "value", "Format output using a custom template"),),
    max_args=0,
)


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _build_time(text: str) -> str:
    """RFC3339 -> Go's time.ANSIC (``Thu May  7 21:09:36 2026``), as docker prints it."""
    import time

    from berth.cli.timespec import parse_rfc3339

    try:
        secs = parse_rfc3339(text) // 1_000_000_000
    except (ValueError, OverflowError):
        return text
    return time.strftime("%a %b %e %H:%M:%S %Y", time.gmtime(secs))


def version(ctx: Any, argv: list[str]) -> int:
    opts, _ = ctx.parse(VERSION_SPEC, argv)
    client_info = {
        "Version": VERSION,
        "ApiVersion": CLIENT_MAX_VERSION,
        "DefaultAPIVersion": CLIENT_MAX_VERSION,
        "PythonVersion": platform.python_version(),
        "Os": sys.platform,
        "Arch": _arch(),
        "Context": "default",
    }
    server: dict[str, Any] | None = None
    error: BerthError | None = None
    try:
        negotiated = ctx.client.version
        client_info["ApiVersion"] = negotiated
        server = ctx.client.call("GET", "/version")
    except BerthError as exc:
        error = exc
    if opts["format"]:
        ctx.out(Template(opts["format"]).render({"Client": client_info, "Server": server}) + "\n")
    else:
        api = client_info["ApiVersion"]
        if api != CLIENT_MAX_VERSION:
            api = f"{api} (downgraded from {CLIENT_MAX_VERSION})"
        lines = [
            "Client:",
            f" Version:           {VERSION}",
            f" API version:       {api}",
            f" Python version:    {client_info['PythonVersion']}",
            f" OS/Arch:           {client_info['Os']}/{client_info['Arch']}",
            " Context:           default",
        ]
        if server is not None:
            platform_name = (server.get("Platform") or {}).get("Name") or ""
            lines += ["", f"Server: {platform_name}".rstrip() if platform_name else "Server:"]
            components = server.get("Components") or [
                {"Name": "Engine", "Version": server.get("Version", ""), "Details": {}}
            ]
            for comp in components:
                details = comp.get("Details") or {}
                lines.append(f" {comp.get('Name', '')}:")
                lines.append(f"  {'Version:':<18}{comp.get('Version', '')}")
                if comp.get("Name") == "Engine":
                    lines += [
                        f"  API version:      {server.get('ApiVersion', '')} (minimum version {server.get('MinAPIVersion', '')})",
                        f"  Go version:       {server.get('GoVersion', '')}",
                        f"  Git commit:       {server.get('GitCommit', '')}",
                        f"  Built:            {_build_time(server.get('BuildTime', ''))}",
                        f"  OS/Arch:          {server.get('Os', '')}/{server.get('Arch', '')}",
                        f"  Experimental:     {str(bool(server.get('Experimental', False))).lower()}",
                    ]
                else:
                    for key in sorted(details):
                        lines.append(f"  {key + ':':<18}{details[key]}")
        ctx.out("\n".join(lines) + "\n")
    if error is not None:
        raise error
    return 0


def _human_bytes_binary(n: float) -> str:
    """units.BytesSize: ``23.54GiB``."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n /= 1024
        i += 1
    return f"{n:.4g}{units[i]}"


def info(ctx: Any, argv: list[str]) -> int:
    opts, _ = ctx.parse(INFO_SPEC, argv)
    data = ctx.client.call("GET", "/info") or {}
    if opts["format"]:
        ctx.out(Template(opts["format"]).render(data) + "\n")
        return 0
    g = data.get
    lines = [
        "Client:",
        f" Version:    {VERSION}",
        " Context:    default",
        f" Debug Mode: {str(bool(ctx.opts.get('debug'))).lower()}",
        "",
        "Server:",
        f" Containers: {g('Containers', 0)}",
        f"  Running: {g('ContainersRunning', 0)}",
        f"  Paused: {g('ContainersPaused', 0)}",
        f"  Stopped: {g('ContainersStopped', 0)}",
        f" Images: {g('Images', 0)}",
        f" Server Version: {g('ServerVersion', '')}",
        f" Storage Driver: {g('Driver', '')}",
    ]
    for pair in g("DriverStatus") or []:
        if len(pair) == 2:
            lines.append(f"  {pair[0]}: {pair[1]}")
    lines += [
        f" Logging Driver: {g('LoggingDriver', '')}",
        f" Cgroup Driver: {g('CgroupDriver', '')}",
        f" Cgroup Version: {g('CgroupVersion', '')}",
        " Plugins:",
    ]
    plugins = g("Plugins") or {}
    for kind in ("Volume", "Network", "Authorization", "Log"):
        if plugins.get(kind):
            lines.append(f"  {kind}: {' '.join(plugins[kind])}")
    swarm = (g("Swarm") or {}).get("LocalNodeState", "inactive")
    lines.append(f" Swarm: {swarm}")
    runtimes = g("Runtimes") or {}
    if runtimes:
        lines.append(f" Runtimes: {' '.join(sorted(runtimes))}")
    lines.append(f" Default Runtime: {g('DefaultRuntime', '')}")
    lines += [
        f" Init Binary: {g('InitBinary') or ''}",
        f" containerd version: {(g('ContainerdCommit') or {}).get('ID', '')}",
        f" runc version: {(g('RuncCommit') or {}).get('ID', '')}",
        f" init version: {(g('InitCommit') or {}).get('ID', '')}",
    ]
    sec = g("SecurityOptions") or []
    if sec:
        lines.append(" Security Options:")
        for item in sec:
            kv = dict(p.split("=", 1) for p in item.split(",") if "=" in p)
            lines.append(f"  {kv.get('name', item)}")
            for key, value in kv.items():
                if key != "name":
                    lines.append(f"   {key.capitalize()}: {value}")
    lines += [
        f" Kernel Version: {g('KernelVersion', '')}",
        f" Operating System: {g('OperatingSystem', '')}",
        f" OSType: {g('OSType', '')}",
        f" Architecture: {g('Architecture', '')}",
        f" CPUs: {g('NCPU', 0)}",
        f" Total Memory: {_human_bytes_binary(float(g('MemTotal', 0) or 0))}",
        f" Name: {g('Name', '')}",
        f" ID: {g('ID', '')}",
        f" Docker Root Dir: {g('DockerRootDir', '')}",
        f" Debug Mode: {str(bool(g('Debug', False))).lower()}",
    ]
    labels = g("Labels") or []
    if labels:
        lines.append(" Labels:")
        lines += [f"  {label}" for label in labels]
    lines.append(f" Experimental: {str(bool(g('ExperimentalBuild', False))).lower()}")
    insecure = ((g("RegistryConfig") or {}).get("InsecureRegistryCIDRs")) or []
    if insecure:
        lines.append(" Insecure Registries:")
        lines += [f"  {cidr}" for cidr in insecure]
    lines.append(f" Live Restore Enabled: {str(bool(g('LiveRestoreEnabled', False))).lower()}")
    ctx.out("\n".join(lines) + "\n\n")
    for warning in g("Warnings") or []:
        ctx.err(f"{warning}\n")
    return 0
