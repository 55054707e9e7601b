"""``berth ps``: list containers, with docker's columns, filters and ``--format``.

Row fields (``--format``): ID, Image, Command, CreatedAt, RunningFor, Ports, State, Status, Size,
Names, Labels, Label "k", Mounts, Networks, LocalVolumes.
"""

from __future__ import annotations

import json

from berth.cli.formatter import render
from berth.cli.options import Command, Flag
from berth.cli.units import go_time_string, human_size, since

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SPEC = Command(
    "ps",
    "berth ps [OPTIONS]",
    "List containers",
    (
        Flag(("-a", "--all"), help="Show all containers (default shows just running)"),
        Flag(("-f", "--filter"), "list", "Filter output based on conditions provided"),
        Flag(("--format",), "value", "Format output using a custom template"),
        Flag(("-n", "--last"), "int", "Show n last created containers (includes all states)", default=-1),
        Flag(("-l", "--latest"), help="Show the latest created container (includes all states)"),
        Flag(("--no-trunc",), help="Don't truncate output"),
        Flag(("-q", "--quiet"), help="Only display container IDs"),
        Flag(("-s", "--size"), help="Display total file sizes"),
    ),
    max_args=0,
)

HEADERS = {
    "ID": "CONTAINER ID",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Ports": "PORTS",
    "State": "STATE",
    "Status": "STATUS",
    "Size": "SIZE",
    "Names": "NAMES",
    "Labels": "LABELS",
    "Label": "LABEL",
    "Mounts": "MOUNTS",
    "Networks": "NETWORKS",
    "LocalVolumes": "LOCAL VOLUMES",
}
DEFAULT_TABLE = (
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
)


def parse_filters(items: list[str]) -> dict[str, dict[str, bool]]:
    """``-f key=value`` (repeatable) -> the API's ``{"key": {"value": true}}``."""
    from berth.errors import InvalidParameter

    out: dict[str, dict[str, bool]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidParameter(
                f'invalid argument "{item}" for "-f, --filter" flag: bad format of filter (expected name=value)'
            )
        out.setdefault(key.strip().lower(), {})[value] = True
    return out


def checked_filters(ctx: Any, spec: Command, items: list[str]) -> dict[str, dict[str, bool]]:
    """parse_filters, with a malformed filter reported as a usage error (exit 125)."""
    from berth.errors import InvalidParameter

    try:
        return parse_filters(items)
    except InvalidParameter as exc:
        ctx.usage_error(spec, exc.message)
        raise


def go_quote(text: str) -> str:
    """strconv.Quote: double quotes, Go escapes, printable Unicode kept."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def ellipsis(text: str, width: int) -> str:
    """formatter.Ellipsis: cut to ``width`` characters, the last one ``…``."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:width]
    return text[: width - 1] + "…"


def display_ports(ports: list[dict[str, Any]] | None) -> str:
    """docker's DisplayablePorts: ports without a different public port grouped into ranges
    (``80-81/tcp``, ``127.0.0.1:80->80/tcp``), then each mapping (``127.0.0.1:8080->80/tcp``)."""
    items = sorted(
        (
            int(p.get("PrivatePort") or 0),
            p.get("IP") or "",
            int(p.get("PublicPort") or 0),
            p.get("Type") or "tcp",
        )
        for p in ports or []
    )
    groups: dict[str, list[int]] = {}
    order: list[str] = []
    result: list[str] = []
    mappings: list[str] = []
    for private, ip, public, proto in items:
        key = proto
        if ip:
            if public != private:
                host = f"[{ip}]" if ":" in ip else ip
                mappings.append(f"{host}:{public}->{private}/{proto}")
                continue
            key = f"{ip}/{proto}"
        group = groups.get(key)
        if group is None:
            groups[key] = [private, private]
            order.append(key)
        elif private == group[1] + 1:
            group[1] = private
        else:
            result.append(_form_group(key, *group))
            groups[key] = [private, private]
    result += [_form_group(key, *groups[key]) for key in order]
    return ", ".join(result + mappings)


def _form_group(key: str, first: int, last: int) -> str:
    ip, _, proto = key.rpartition("/")
    group = str(first) if first == last else f"{first}-{last}"
    if ip:
        group = f"{ip}:{group}->{group}"
    return f"{group}/{proto}"


class ContainerRow:
    """The ``--format`` fields of one container (docker's ContainerContext)."""

    def __init__(self, c: dict[str, Any], trunc: bool, now: float | None = None) -> None:
        self._c = c
        self._trunc = trunc
        self._now = now

    @property
    def ID(self) -> str:
        cid = self._c.get("Id", "")
        return str(cid[:12] if self._trunc else cid)

    @property
    def Names(self) -> str:
        names = []
        for name in self._c.get("Names") or []:
            name = name[1:] if name.startswith("/") else name
            if self._trunc and "/" in name:
                continue  # a legacy link name (other/alias)
            names.append(name)
        return ",".join(names)

    @property
    def Image(self) -> str:
        image = self._c.get("Image") or "<no image>"
        if self._trunc:
            if image.startswith("sha256:"):
                return image[7:19]
            if len(image) == 64 and all(ch in "0123456789abcdef" for ch in image):
                return image[:12]
        return image

    @property
    def Command(self) -> str:
        cmd = self._c.get("Command") or ""
        return go_quote(ellipsis(cmd, 20) if self._trunc else cmd)

    @property
    def CreatedAt(self) -> str:
        return go_time_string(float(self._c.get("Created") or 0))

    @property
    def RunningFor(self) -> str:
        return since(float(self._c.get("Created") or 0), self._now)

    @property
    def Ports(self) -> str:
        return display_ports(self._c.get("Ports"))

    @property
    def State(self) -> str:
        return self._c.get("State") or ""

    @property
    def Status(self) -> str:
        return self._c.get("Status") or ""

    @property
    def Size(self) -> str:
        rw = human_size(self._c.get("SizeRw") or 0)
        total = self._c.get("SizeRootFs") or 0
        return f"{rw} (virtual {human_size(total)})" if total else rw

    @property
    def Labels(self) -> str:
        labels = self._c.get("Labels") or {}
        return ",".join(f"{k}={v}" for k, v in labels.items())

    def Label(self, name: str) -> str:
        return str((self._c.get("Labels") or {}).get(name, ""))

    @property
    def Mounts(self) -> str:
        names = []
        for m in self._c.get("Mounts") or []:
            name = m.get("Name") or m.get("Source") or ""
            names.append(ellipsis(name, 15) if self._trunc and m.get("Name") else name)
        return ",".join(names)

    @property
    def LocalVolumes(self) -> str:
        return str(sum(1 for m in self._c.get("Mounts") or [] if m.get("Driver") == "local"))

    @property
    def Networks(self) -> str:
        nets = ((self._c.get("NetworkSettings") or {}).get("Networks")) or {}
        return ",".join(sorted(nets))

    @property
    def Platform(self) -> Any:
        descriptor = self._c.get("ImageManifestDescriptor") or {}
        return descriptor.get("platform")

    def json_fields(self) -> dict[str, Any]:
        return {
            "Command": self.Command,
            "CreatedAt": self.CreatedAt,
            "ID": self.ID,
            "Image": self.Image,
            "Labels": self.Labels,
            "LocalVolumes": self.LocalVolumes,
            "Mounts": self.Mounts,
            "Names": self.Names,
            "Networks": self.Networks,
            "Platform": self.Platform,
            "Ports": self.Ports,
            "RunningFor": self.RunningFor,
            "Size": self.Size,
            "State": self.State,
            "Status": self.Status,
        }


def ps(ctx: Any, argv: list[str]) -> int:
    opts, _ = ctx.parse(SPEC, argv)
    query: dict[str, Any] = {}
    if opts["all"]:
        query["all"] = "1"
    limit = opts["last"]
    if opts["latest"] and limit == -1:
        limit = 1
    if limit > 0:
        query["limit"] = str(limit)
    fmt = opts["format"] or ""
    if opts["size"] or ".Size" in fmt:
        query["size"] = "1"
    if opts["filter"]:
        query["filters"] = json.dumps(checked_filters(ctx, SPEC, opts["filter"]), separators=(",", ":"))
    containers = ctx.client.call("GET", "/containers/json", query=query) or []
    trunc = not opts["no_trunc"]
    if opts["quiet"] and not fmt:
        ctx.out("".join((c.get("Id", "")[:12] if trunc else c.get("Id", "")) + "\n" for c in containers))
        return 0
    if not fmt:
        fmt = DEFAULT_TABLE + ("\t{{.Size}}" if opts["size"] else "")
    rows = [ContainerRow(c, trunc) for c in containers]
    ctx.out(render(fmt, rows, HEADERS))
    return 0
