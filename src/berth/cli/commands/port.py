"""``berth port``: a container's published ports, from ``NetworkSettings.Ports`` of inspect.

$ berth port web           ->  80/tcp -> 127.0.0.1:8080
$ berth port web 80        ->  127.0.0.1:8080
"""

from __future__ import annotations

from berth.cli.options import Command
from berth.cli.reference import path_escape
from berth.errors import NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SPEC = Command(
    "port",
    "berth port CONTAINER [PRIVATE_PORT[/PROTO]]",
    "List port mappings or a specific mapping for the container",
    (),
    min_args=1,
    max_args=2,
)


def _host(binding: dict[str, Any]) -> str:
    ip = binding.get("HostIp") or "0.0.0.0"
    ip = f"[{ip}]" if ":" in ip else ip
    return f"{ip}:{binding.get('HostPort', '')}"


def _sort_key(key: str) -> tuple[int, str]:
    number, _, proto = key.partition("/")
    return (int(number) if number.isdigit() else 0, proto)


def port(ctx: Any, argv: list[str]) -> int:
    _, args = ctx.parse(SPEC, argv)
    info = ctx.client.call("GET", f"/containers/{path_escape(args[0])}/json") or {}
    ports = ((info.get("NetworkSettings") or {}).get("Ports")) or {}
    if len(args) == 2:
        wanted = args[1] if "/" in args[1] else f"{args[1]}/tcp"
        bindings = ports.get(wanted)
        if not bindings:
            raise NotFound(f"Error: No public port '{args[1]}' published for {args[0]}")
        ctx.out("".join(_host(b) + "\n" for b in bindings))
        return 0
    lines = []
    for key in sorted(ports, key=_sort_key):
        for binding in ports[key] or []:
            lines.append(f"{key} -> {_host(binding)}\n")
    ctx.out("".join(lines))
    return 0
