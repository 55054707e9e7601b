"""A small declarative command-line parser with the docker CLI's (pflag's) rules.

Model: a ``Command`` declares its ``Flag``s; ``parse(command, argv)`` returns
``(values, positionals)`` where ``values`` maps every flag's ``dest`` to its value or default.
Rules, as pflag applies them:

* ``--name value``, ``--name=value``, ``-n value``, ``-nvalue``, ``-n=value``;
* booleans take no value, but ``--rm=false`` works; ``-it`` sets both; in ``-dp 80:80`` the
  value flag takes the rest of the cluster or the next argument;
* ``list`` flags repeat (``-e A -e B``); ``int`` flags are checked;
* ``--`` ends the flags; a lone ``-`` is a positional;
* with ``interspersed=False`` (run, exec) parsing stops at the first positional, so the
  container's own flags (``run busybox ls -l``) are left alone.

Not argparse: importing argparse (with gettext, re) costs more than the whole ``ps`` budget.

    >>> RUN = Command("run", "berth run [OPTIONS] IMAGE [COMMAND] [ARG...]", "Run a command",
    ...     (Flag(("-i", "--interactive")), Flag(("-t", "--tty")), Flag(("-e", "--env"), "list")),
    ...     interspersed=False)
    >>> parse(RUN, ["-it", "-e", "A=1", "busybox", "ls", "-l"])
    ({'interactive': True, 'tty': True, 'env': ['A=1'], 'help': False}, ['busybox', 'ls', '-l'])
"""

from __future__ import annotations

from berth.errors import InvalidParameter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_TRUE = ("1", "t", "true", "TRUE", "True", "T")
_FALSE = ("0", "f", "false", "FALSE", "False", "F")


class Flag:
    """One option. ``kind``: bool | value | list | int. ``dest`` defaults to the long name.

    A plain class rather than a dataclass: ``dataclasses`` imports ``inspect`` (~8 ms)."""

    __slots__ = ("names", "kind", "help", "default", "dest", "metavar")

    def __init__(
        self,
        names: tuple[str, ...],
        kind: str = "bool",
        help: str = "",
        default: Any = None,
        dest: str = "",
        metavar: str = "",
    ) -> None:
        self.names = names
        self.kind = kind
        self.help = help
        self.default = default
        self.dest = dest
        self.metavar = metavar

    def __repr__(self) -> str:
        return f"Flag({self.names!r}, {self.kind!r})"

    @property
    def key(self) -> str:
        if self.dest:
            return self.dest
        longs = [n for n in self.names if n.startswith("--")]
        return (longs[0] if longs else self.names[0])[2 if longs else 1 :].replace("-", "_")

    @property
    def initial(self) -> Any:
        if self.default is not None:
            return list(self.default) if self.kind == "list" else self.default
        return {"bool": False, "list": []}.get(self.kind)

    @property
    def label(self) -> str:
        """How pflag names a flag in errors: ``-e, --env``."""
        return ", ".join(self.names)


HELP = Flag(("--help",), help="Print usage")


class Command:
    """A command's usage line, summary and flags; ``interspersed=False`` stops at the first positional."""

    def __init__(
        self,
        name: str,
        usage: str,
        summary: str,
        flags: tuple[Flag, ...] = (),
        interspersed: bool = True,
        min_args: int = 0,
        max_args: int | None = None,
    ) -> None:
        self.name = name
        self.usage = usage
        self.summary = summary
        self.flags = flags
        self.interspersed = interspersed
        self.min_args = min_args
        self.max_args = max_args
        self._index: dict[str, Flag] = {}

    def __repr__(self) -> str:
        return f"Command({self.name!r})"

    def lookup(self, name: str) -> Flag | None:
        if not self._index:
            for flag in (*self.flags, HELP):
                for n in flag.names:
                    self._index[n] = flag
        return self._index.get(name)

    def help_text(self) -> str:
        lines = [f"\nUsage:  {self.usage}\n", self.summary, ""]
        if self.flags:
            lines.append("Options:")
            rows = []
            for flag in self.flags:
                short = next((n for n in flag.names if not n.startswith("--")), "")
                long = next((n for n in flag.names if n.startswith("--")), "")
                left = f"{short + ', ' if short and long else short}{long}"
                if flag.kind != "bool":
                    left += f" {flag.metavar or {'int': 'int', 'list': 'list'}.get(flag.kind, 'string')}"
                rows.append((("  " if short else "      ") + left, flag.help))
            width = max(len(r[0]) for r in rows) + 3
            lines += [f"  {left.ljust(width)}{text}".rstrip() for left, text in rows]
        return "\n".join(lines) + "\n"


def _convert(flag: Flag, value: str) -> Any:
    if flag.kind == "int":
        try:
            return int(value, 0) if value.lower().startswith(("0x", "-0x")) else int(value)
        except ValueError:
            raise InvalidParameter(
                f'invalid argument "{value}" for "{flag.label}" flag: strconv.ParseInt: parsing "{value}": invalid syntax'
            ) from None
    if flag.kind == "bool":
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise InvalidParameter(
            f'invalid argument "{value}" for "{flag.label}" flag: strconv.ParseBool: parsing "{value}": invalid syntax'
        )
    return value


def _store(values: dict[str, Any], flag: Flag, value: Any) -> None:
    if flag.kind == "list":
        values[flag.key].append(value)
    else:
        values[flag.key] = value


def parse(command: Command, argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Parse ``argv`` (without the command words); InvalidParameter with pflag's text on misuse."""
    values: dict[str, Any] = {f.key: f.initial for f in command.flags}
    values["help"] = False
    positionals: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            positionals.extend(argv[i:])
            break
        if not arg.startswith("-") or arg == "-":
            positionals.append(arg)
            if not command.interspersed:
                positionals.extend(argv[i:])
                break
            continue
        if arg.startswith("--"):
            name, eq, inline = arg.partition("=")
            flag = command.lookup(name)
            if flag is None:
                raise InvalidParameter(f"unknown flag: {name}")
            if flag.kind == "bool":
                _store(values, flag, _convert(flag, inline) if eq else True)
            elif eq:
                _store(values, flag, _convert(flag, inline))
            elif i < len(argv):
                _store(values, flag, _convert(flag, argv[i]))
                i += 1
            else:
                raise InvalidParameter(f"flag needs an argument: {name}")
            continue
        # shorthand cluster: -it, -dp 80:80, -e=X, -eX
        pos = 1
        while pos < len(arg):
            letter = arg[pos]
            flag = command.lookup("-" + letter)
            if flag is None:
                if letter == "h":
                    values["help"] = True
                    pos += 1
                    continue
                raise InvalidParameter(f"unknown shorthand flag: '{letter}' in {arg}")
            rest = arg[pos + 1 :]
            if flag.kind == "bool":
                if rest.startswith("="):
                    _store(values, flag, _convert(flag, rest[1:]))
                    break
                _store(values, flag, True)
                pos += 1
                continue
            if rest:
                _store(values, flag, _convert(flag, rest[1:] if rest.startswith("=") else rest))
            elif i < len(argv):
                _store(values, flag, _convert(flag, argv[i]))
                i += 1
            else:
                raise InvalidParameter(f"flag needs an argument: '{letter}' in {arg}")
            break
    if not values["help"]:
        check_arity(command, positionals)
    return values, positionals


def check_arity(command: Command, args: list[str]) -> None:
    """docker's cobra messages for a wrong number of arguments."""
    low, high = command.min_args, command.max_args
    if high == 0 and args:
        raise InvalidParameter(f'"berth {command.name}" accepts no arguments.')
    if high is not None and high == low and len(args) != low:
        raise InvalidParameter(
            f'"berth {command.name}" requires exactly {low} argument{"s" if low != 1 else ""}.'
        )
    if len(args) < low:
        raise InvalidParameter(
            f'"berth {command.name}" requires at least {low} argument{"s" if low != 1 else ""}.'
        )
    if high is not None and len(args) > high:
        if high == 0:
            raise InvalidParameter(f'"berth {command.name}" accepts no arguments.')
        raise InvalidParameter(
            f'"berth {command.name}" requires at most {high} argument{"s" if high != 1 else ""}.'
        )
