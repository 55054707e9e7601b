"""Typed instructions: each parser node becomes a frozen dataclass, checked before anything runs.

The model is BuildKit's ``instructions.ParseInstruction`` for the classic builder: builder
flags are checked per instruction (an unknown one is ``Unknown flag: x``; BuildKit-only flags
such as ``RUN --mount`` say that they need BuildKit), argument counts and forms are checked,
and nothing is expanded yet -- words keep their quotes and ``$VAR`` until the build expands
them with the environment of their step::

    >>> from berth.builder.parser import parse
    >>> [parse_instruction(n, "\\\\") for n in parse("COPY --chown=1:2 a b /d/").nodes]
    [Copy(...sources=('a', 'b'), dest='/d/', chown='1:2'...)]

Errors are :class:`berth.builder.parser.DockerfileError` naming the line and the instruction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from berth.builder.parser import DockerfileError, Heredoc, Node, split_command
from berth.builder.words import (
    NotStringArray,
    extract_flags,
    json_or_shell,
    json_or_words,
    name_values,
    parse_words,
)
from berth.errors import InvalidParameter
from berth.graph.changes import parse_duration

BUILDKIT_ONLY = {
    "run": ("mount", "network", "security"),
    "copy": ("link", "parents", "exclude"),
    "add": ("link", "checksum", "keep-git-dir", "exclude"),
}
_FLAGS: dict[str, dict[str, str]] = {  # name -> "string" | "bool"
    "from": {"platform": "string"},
    "copy": {"from": "string", "chown": "string", "chmod": "string"},
    "add": {"chown": "string", "chmod": "string"},
    "healthcheck": {
        "interval": "string", "timeout": "string", "start-period": "string", "start-interval": "string",
        "retries": "string",
    },
}
STAGE_NAME_RE = re.compile(r"^[a-z][a-z0-9-_.]*$")
MIN_DURATION = 1_000_000  # 1 ms, Docker's container.MinimumDuration


@dataclass(frozen=True)
class Instruction:
    node: Node = field(repr=False)

    @property
    def line(self) -> int:
        return self.node.start_line

    @property
    def keyword(self) -> str:
        return self.node.keyword

    @property
    def text(self) -> str:
        """What ``Step N/M :`` prints."""
        return self.node.original


@dataclass(frozen=True)
class From(Instruction):
    image: str = ""
    stage_name: str = ""
    platform: str = ""


@dataclass(frozen=True)
class Run(Instruction):
    args: tuple[str, ...] = ()
    json_form: bool = False
    heredocs: tuple[Heredoc, ...] = ()


@dataclass(frozen=True)
class Cmd(Instruction):
    args: tuple[str, ...] = ()
    json_form: bool = False


@dataclass(frozen=True)
class Entrypoint(Instruction):
    args: tuple[str, ...] | None = ()
    json_form: bool = False


@dataclass(frozen=True)
class Env(Instruction):
    pairs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Label(Instruction):
    pairs: tuple[tuple[str, str], ...] = ()
    expand: bool = True  # --label options are taken literally


@dataclass(frozen=True)
class Arg(Instruction):
    args: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True)
class Copy(Instruction):
    sources: tuple[str, ...] = ()
    dest: str = ""
    from_: str = ""
    chown: str = ""
    chmod: str = ""
    is_add: bool = False
    json_form: bool = False
    heredocs: tuple[Heredoc, ...] = ()


@dataclass(frozen=True)
class Expose(Instruction):
    ports: tuple[str, ...] = ()


@dataclass(frozen=True)
class User(Instruction):
    user: str = ""


@dataclass(frozen=True)
class Workdir(Instruction):
    path: str = ""


@dataclass(frozen=True)
class Volume(Instruction):
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class StopSignal(Instruction):
    signal: str = ""


@dataclass(frozen=True)
class Shell(Instruction):
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Healthcheck(Instruction):
    config: dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Onbuild(Instruction):
    expression: str = ""


@dataclass(frozen=True)
class Maintainer(Instruction):
    name: str = ""


def parse_instruction(node: Node, escape: str) -> Instruction:
    try:
        return _parse(node, escape)
    except DockerfileError:
        raise
    except (ValueError, NotStringArray) as exc:
        raise DockerfileError(node.start_line, str(exc), node.keyword) from None


def _flags(node: Node) -> tuple[str, dict[str, str]]:
    rest, words = extract_flags(node.rest)
    allowed = _FLAGS.get(node.keyword, {})
    found: dict[str, str] = {}
    for word in words:
        name, eq, value = word.partition("=")
        if name in BUILDKIT_ONLY.get(node.keyword, ()):
            raise DockerfileError(
                node.start_line,
                f"the --{name} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ "
                "to learn how to build images with BuildKit enabled",
                node.keyword,
            )
        kind = allowed.get(name)
        if kind is None:
            raise DockerfileError(node.start_line, f"Unknown flag: {name}", node.keyword)
        if name in found:
            raise DockerfileError(node.start_line, f"Duplicate flag specified: {name}", node.keyword)
        if kind == "string" and not eq:
            raise DockerfileError(node.start_line, f"Missing a value on flag: {name}", node.keyword)
        found[name] = value
    return rest, found


def _need_args(node: Node, count: int, what: str = "at least one argument") -> None:
    if count == 0:
        raise DockerfileError(node.start_line, f"{node.name} requires {what}", node.keyword)


def _parse(node: Node, escape: str) -> Instruction:
    rest, flags = _flags(node)
    kw = node.keyword
    if kw == "from":
        words = rest.split()
        if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
            raise ValueError("FROM requires either one or three arguments")
        name = words[2] if len(words) == 3 else ""
        if name and not STAGE_NAME_RE.match(name.lower()):
            raise ValueError(f'invalid name for build stage: "{name}", name can\'t start with a number or contain symbols')
        return From(node, words[0], name.lower(), flags.get("platform", ""))
    if kw == "run":
        args, is_json = json_or_shell(rest)
        if not args and not node.heredocs:
            _need_args(node, 0)
        return Run(node, tuple(args), is_json, node.heredocs)
    if kw == "cmd":
        args, is_json = json_or_shell(rest)
        return Cmd(node, tuple(args), is_json)
    if kw == "entrypoint":
        args, is_json = json_or_shell(rest)
        return Entrypoint(node, tuple(args) if args else None, is_json)
    if kw in ("env", "label"):
        pairs = name_values(rest, escape, node.name)
        _need_args(node, len(pairs))
        if kw == "env":
            return Env(node, tuple(pairs))
        return Label(node, tuple(pairs))
    if kw == "arg":
        words = parse_words(rest, escape)
        _need_args(node, len(words))
        declared: list[tuple[str, str | None]] = []
        for word in words:
            key, eq, value = word.partition("=")
            if not key:
                raise ValueError("ARG names can not be blank")
            declared.append((key, value if eq else None))
        return Arg(node, tuple(declared))
    if kw in ("copy", "add"):
        words, is_json = json_or_words(rest)
        if len(words) < 2:
            if not words:
                _need_args(node, 0, "at least two arguments")
            raise ValueError(
                f"{node.name} requires at least two arguments, but only one was provided. "
                "Destination could not be determined."
            )
        if flags.get("chmod") and not re.fullmatch(r"[0-7]{3,4}", flags["chmod"]):
            raise ValueError(f"invalid chmod parameter: {flags['chmod']}")
        return Copy(
            node, tuple(words[:-1]), words[-1], flags.get("from", ""), flags.get("chown", ""),
            flags.get("chmod", ""), kw == "add", is_json, node.heredocs,
        )
    if kw == "expose":
        words = rest.split()
        _need_args(node, len(words))
        return Expose(node, tuple(words))
    if kw == "user":
        _need_args(node, len(rest), "exactly one argument")
        return User(node, rest)
    if kw == "workdir":
        _need_args(node, len(rest), "exactly one argument")
        return Workdir(node, rest)
    if kw == "volume":
        words, _ = json_or_words(rest)
        _need_args(node, len(words))
        for word in words:
            if not word.strip():
                raise ValueError("VOLUME specified can not be an empty string")
        return Volume(node, tuple(words))
    if kw == "stopsignal":
        _need_args(node, len(rest), "exactly one argument")
        return StopSignal(node, rest)
    if kw == "shell":
        args, is_json = json_or_shell(rest)
        if not is_json:
            raise ValueError("SHELL requires the arguments to be in JSON form")
        _need_args(node, len(args))
        return Shell(node, tuple(args))
    if kw == "healthcheck":
        return Healthcheck(node, _healthcheck(node, rest, flags))
    if kw == "onbuild":
        _need_args(node, len(rest))
        trigger, _ = split_command(rest)
        upper = trigger.upper()
        if upper == "ONBUILD":
            raise ValueError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if upper in ("MAINTAINER", "FROM"):
            raise ValueError(f'"{upper}" isn\'t allowed as an ONBUILD trigger')
        expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", node.original)
        return Onbuild(node, expression)
    if kw == "maintainer":
        _need_args(node, len(rest), "exactly one argument")
        return Maintainer(node, rest)
    raise DockerfileError(node.start_line, f"unknown instruction: {node.name}")


def _healthcheck(node: Node, rest: str, flags: dict[str, str]) -> dict[str, Any]:
    parts = rest.split(None, 1)
    _need_args(node, len(parts))
    kind = parts[0].upper()
    if kind == "NONE":
        if len(parts) > 1 or flags:
            raise ValueError("HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    if kind != "CMD":
        raise ValueError(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
    args, is_json = json_or_shell(parts[1] if len(parts) > 1 else "")
    if not args:
        raise ValueError("Missing command after HEALTHCHECK CMD")
    config: dict[str, Any] = {"Test": (["CMD"] if is_json else ["CMD-SHELL"]) + list(args)}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                      ("start-interval", "StartInterval")):
        value = flags.get(flag, "")
        if not value:
            continue
        try:
            duration = parse_duration(value)
        except InvalidParameter as exc:  # Go's text: time: invalid duration "x"
            raise ValueError(exc.message) from None
        if duration and duration < MIN_DURATION:
            raise ValueError(f'Interval "{flag}" cannot be less than 1ms')
        if duration:
            config[key] = duration
    if flags.get("retries"):
        try:
            retries = int(flags["retries"])
        except ValueError:
            raise ValueError(f'strconv.ParseInt: parsing "{flags["retries"]}": invalid syntax') from None
        if retries < 1:
            raise ValueError(f"--retries must be at least 1 (not {retries})")
        config["Retries"] = retries
    return config
