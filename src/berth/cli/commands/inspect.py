"""``berth inspect`` (containers, then images, networks, volumes) and the typed variants.

Output as docker's: a JSON list indented by 4, ``[]`` when nothing matched; with ``-f`` each
object is rendered through the template on its own line. Misses are reported after the output
(``Error: No such object: NAME`` for the untyped chain) and make the exit status 1.
"""

from __future__ import annotations

import json

from berth.cli.options import Command, Flag
from berth.cli.reference import path_escape
from berth.cli.template import Template
from berth.errors import BerthError, InvalidParameter, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _spec(name: str, usage: str, summary: str, typed: bool) -> Command:
    flags = [
        Flag(("-f", "--format"), "value", "Format output using a custom template"),
        Flag(("-s", "--size"), help="Display total file sizes if the type is container"),
    ]
    if typed:
        flags.append(Flag(("--type",), "value", "Only inspect objects of the given type"))
    return Command(name, usage, summary, tuple(flags), min_args=1)


SPEC = _spec(
    "inspect",
    "berth inspect [OPTIONS] NAME|ID [NAME|ID...]",
    "Return low-level information on berth objects",
    True,
)
IMAGE_SPEC = _spec(
    "image inspect",
    "berth image inspect [OPTIONS] IMAGE [IMAGE...]",
    "Display detailed information on one or more images",
    False,
)
CONTAINER_SPEC = _spec(
    "container inspect",
    "berth container inspect [OPTIONS] CONTAINER [CONTAINER...]",
    "Display detailed information on one or more containers",
    False,
)

KINDS = ("container", "image", "network", "volume")


def _fetch(client: Any, kind: str, name: str, size: bool) -> Any:
    ref = path_escape(name)
    if kind == "container":
        return client.call("GET", f"/containers/{ref}/json", query={"size": "1"} if size else None)
    if kind == "image":
        return client.call("GET", f"/images/{ref}/json")
    if kind == "network":
        return client.call("GET", f"/networks/{ref}")
    return client.call("GET", f"/volumes/{ref}")


def _run(ctx: Any, opts: dict[str, Any], names: list[str], kinds: tuple[str, ...], typed: bool) -> int:
    results: list[Any] = []
    errors: list[str] = []
    for name in names:
        found = False
        last: BerthError | None = None
        for kind in kinds:
            try:
                results.append(_fetch(ctx.client, kind, name, opts["size"]))
                found = True
                break
            except NotFound as exc:
                last = exc
        if not found:
            if typed and last is not None:
                errors.append(f"Error response from daemon: {last.message}")
            else:
                errors.append(f"Error: No such object: {name}")
    fmt = opts["format"]
    if fmt:
        try:
            tmpl = Template(fmt.replace("\\t", "\t").replace("\\n", "\n"), missing_key_error=True)
            ctx.out("".join(tmpl.render(obj) + "\n" for obj in results))
        except InvalidParameter as exc:
            text = exc.message
            raise InvalidParameter(
                text if text.startswith("template parsing error") else f"template parsing error: {text}"
            ) from exc
    else:
        ctx.out((json.dumps(results, indent=4, ensure_ascii=False) if results else "[]") + "\n")
    if errors:
        ctx.stdout.flush()
        ctx.err("\n".join(errors) + "\n")
        return 1
    return 0


def inspect(ctx: Any, argv: list[str]) -> int:
    opts, args = ctx.parse(SPEC, argv)
    kind = opts.get("type")
    if kind:
        if kind not in KINDS:
            raise InvalidParameter(f'"{kind}" is not a valid value for --type')
        return _run(ctx, opts, args, (kind,), True)
    return _run(ctx, opts, args, KINDS, False)


def image_inspect(ctx: Any, argv: list[str]) -> int:
    opts, args = ctx.parse(IMAGE_SPEC, argv)
    return _run(ctx, opts, args, ("image",), True)


def container_inspect(ctx: Any, argv: list[str]) -> int:
    opts, args = ctx.parse(CONTAINER_SPEC, argv)
    return _run(ctx, opts, args, ("container",), True)
